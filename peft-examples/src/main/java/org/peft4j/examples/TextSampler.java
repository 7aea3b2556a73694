package org.peft4j.examples;

import java.util.Random;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Generates text from a character model by sampling one character at a time (temperature
 * sampling with a seeded generator, so base and adapted models draw the same random numbers).
 * Each step reruns the model on the last {@code window} characters; there is no cache.
 *
 * <p>Thread-safety: stateless; do not run the same graph on two threads.
 */
final class TextSampler {

    private TextSampler() {
    }

    /** {@code prompt} followed by {@code count} sampled characters. */
    static String sample(ComputationGraph graph, CharVocabulary vocab, String prompt, int count, int window,
                         double temperature, long seed) {
        Random rnd = new Random(seed);
        int[] enc = vocab.encode(prompt);
        int[] ids = new int[enc.length + count];
        System.arraycopy(enc, 0, ids, 0, enc.length);
        int n = enc.length;
        for (int step = 0; step < count; step++) {
            int from = Math.max(0, n - window);
            int len = n - from;
            float[] f = new float[len];
            for (int i = 0; i < len; i++) {
                f[i] = ids[from + i];
            }
            graph.clear(); // DL4J's batchSize() would otherwise prefer the labels of the last fit
            INDArray out = graph.outputSingle(false, Nd4j.create(f, new long[] {1, len}, DataType.FLOAT));
            double[] p = out.get(org.nd4j.linalg.indexing.NDArrayIndex.point(0),
                    org.nd4j.linalg.indexing.NDArrayIndex.all(),
                    org.nd4j.linalg.indexing.NDArrayIndex.point(len - 1)).castTo(DataType.DOUBLE).toDoubleVector();
            ids[n++] = draw(p, temperature, rnd);
        }
        return vocab.decode(ids, 0, n);
    }

    private static int draw(double[] p, double temperature, Random rnd) {
        double[] w = new double[p.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            w[i] = Math.pow(Math.max(p[i], 0), 1.0 / temperature);
            sum += w[i];
        }
        double u = rnd.nextDouble() * sum;
        for (int i = 0; i < w.length; i++) {
            u -= w[i];
            if (u <= 0) {
                return i;
            }
        }
        return w.length - 1;
    }
}
