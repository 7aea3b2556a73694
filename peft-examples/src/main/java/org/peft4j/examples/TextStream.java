package org.peft4j.examples;

import java.util.List;
import java.util.Random;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One domain's text as a stream of token ids (documents joined by a newline), cut into
 * next-character training windows: features {@code tokens [batch, time]} (ids as floats) and
 * labels {@code [batch, 1, time]}: the id of the following character (sparse), the layout an
 * {@code RnnOutputLayer} expects.
 *
 * <p>Thread-safety: immutable; {@link #randomBatch} uses the caller's {@link Random}.
 */
final class TextStream {

    private final int[] ids;
    private final int vocabSize;

    TextStream(int[] ids, int vocabSize) {
        this.ids = ids;
        this.vocabSize = vocabSize;
    }

    /** The documents joined by {@code '\n'}, encoded. */
    static TextStream of(List<String> docs, CharVocabulary vocab) {
        return new TextStream(vocab.encode(String.join("\n", docs)), vocab.size());
    }

    /** Length in characters. */
    int length() {
        return ids.length;
    }

    int[] ids() {
        return ids;
    }

    /** {@code batch} windows of {@code time + 1} characters at random offsets. */
    DataSet randomBatch(int batch, int time, Random rnd) {
        if (ids.length <= time + 1) {
            throw new IllegalArgumentException("text of " + ids.length + " characters is too short for windows of "
                    + (time + 1));
        }
        int[] starts = new int[batch];
        for (int b = 0; b < batch; b++) {
            starts[b] = rnd.nextInt(ids.length - time - 1);
        }
        return windows(starts, time);
    }

    /**
     * The first {@code count} non-overlapping windows, as batches of at most {@code batch}: the
     * same held-out data for every method.
     */
    List<DataSet> fixedBatches(int count, int batch, int time) {
        int available = (ids.length - 1) / time;
        if (available < 1) {
            throw new IllegalArgumentException("held-out text of " + ids.length + " characters is shorter than one "
                    + "window of " + (time + 1));
        }
        int n = Math.min(count, available);
        List<DataSet> out = new java.util.ArrayList<>();
        for (int from = 0; from < n; from += batch) {
            int[] starts = new int[Math.min(batch, n - from)];
            for (int i = 0; i < starts.length; i++) {
                starts[i] = (from + i) * time;
            }
            out.add(windows(starts, time));
        }
        return out;
    }

    private DataSet windows(int[] starts, int time) {
        int batch = starts.length;
        float[] feat = new float[batch * time];
        float[] lab = new float[batch * time];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < time; t++) {
                feat[b * time + t] = ids[starts[b] + t];
                int next = ids[starts[b] + t + 1];
                lab[b * time + t] = next;
            }
        }
        INDArray f = Nd4j.create(feat, new long[] {batch, time}, DataType.FLOAT);
        INDArray l = Nd4j.create(lab, new long[] {batch, 1, time}, DataType.FLOAT);
        return new DataSet(f, l);
    }
}
