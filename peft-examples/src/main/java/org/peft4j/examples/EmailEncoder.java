package org.peft4j.examples;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Turns e-mail texts into the encoder's input with the model's own Hugging Face tokenizer
 * ({@code tokenizer.json} of all-MiniLM-L6-v2: BERT WordPiece, lower-casing, {@code [CLS] ... [SEP]}),
 * run by DJL's {@code tokenizers} (Rust, its JNI library bundled in the jar, no network): each text
 * is truncated to {@code maxLength} tokens ({@code [CLS]} and {@code [SEP]} included) and a batch is
 * padded with id 0 to its longest member, with the attention mask marking the real tokens.
 *
 * <p>A batch is a DL4J {@link MultiDataSet}: features {@code tokens [b, T]} (ids as floats),
 * feature mask {@code [b, T]} (1 real, 0 padding), labels one-hot {@code [b, 2]} (column 1 = spam),
 * which is what the encoder graph with a {@code classifier} head fits and scores.
 *
 * <p>Thread-safety: not thread-safe (the native tokenizer is one object); {@link #close()} frees it.
 */
final class EmailEncoder implements AutoCloseable {

    /** Class index of spam in the labels and in DL4J's {@code Evaluation}. */
    static final int SPAM = 1;

    private final HuggingFaceTokenizer tokenizer;
    private final int maxLength;

    /**
     * A tokenizer from {@code tokenizerJson} truncating to {@code maxLength} tokens.
     *
     * @throws IllegalArgumentException if {@code maxLength < 3} (room for one word between the specials)
     */
    EmailEncoder(Path tokenizerJson, int maxLength) {
        if (maxLength < 3) {
            throw new IllegalArgumentException("maxLength must be at least 3 ([CLS], one token, [SEP]); got "
                    + maxLength);
        }
        this.maxLength = maxLength;
        try {
            this.tokenizer = HuggingFaceTokenizer.builder().optTokenizerPath(tokenizerJson).optMaxLength(maxLength)
                    .optTruncation(true).optPadding(true).optAddSpecialTokens(true).build();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load the tokenizer " + tokenizerJson, e);
        }
    }

    int maxLength() {
        return maxLength;
    }

    /** Token ids of one text, truncated, specials included (for tests and inspection). */
    long[] ids(String text) {
        return tokenizer.encode(text).getIds();
    }

    /**
     * One batch: {@code texts} tokenized and padded to the longest, labels from {@code spam}.
     *
     * @throws IllegalArgumentException if the lists are empty or differ in size
     */
    MultiDataSet batch(List<String> texts, List<Boolean> spam) {
        if (texts.isEmpty() || texts.size() != spam.size()) {
            throw new IllegalArgumentException("need as many labels as texts, at least one; got " + texts.size()
                    + " texts and " + spam.size() + " labels");
        }
        Encoding[] enc = tokenizer.batchEncode(texts);
        int t = enc[0].getIds().length;
        float[][] ids = new float[texts.size()][t];
        float[][] mask = new float[texts.size()][t];
        float[][] labels = new float[texts.size()][2];
        for (int i = 0; i < enc.length; i++) {
            long[] e = enc[i].getIds();
            long[] m = enc[i].getAttentionMask();
            if (e.length != t) {
                throw new IllegalStateException("the tokenizer padded row " + i + " to " + e.length + " tokens, row 0 to "
                        + t + "; expected one length per batch");
            }
            for (int j = 0; j < t; j++) {
                ids[i][j] = e[j];
                mask[i][j] = m[j];
            }
            labels[i][spam.get(i) ? SPAM : 1 - SPAM] = 1f;
        }
        INDArray x = Nd4j.createFromArray(ids).castTo(DataType.FLOAT);
        INDArray fm = Nd4j.createFromArray(mask).castTo(DataType.FLOAT);
        INDArray y = Nd4j.createFromArray(labels).castTo(DataType.FLOAT);
        return new org.nd4j.linalg.dataset.MultiDataSet(new INDArray[] {x}, new INDArray[] {y},
                new INDArray[] {fm}, null);
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
