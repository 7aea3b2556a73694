package org.peft4j.core.testing;

import org.deeplearning4j.gradientcheck.GradientCheckUtil;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.blocks.Transformers;

/**
 * Tiny peft4j decoders and token data for the tuner tests: a "domain" is a noisy modular
 * progression {@code next = (cur + step) mod V} (with probability {@code 1 − noise}, else a
 * uniformly random token), so two steps make two domains with the same vocabulary.
 */
public final class TinyDecoders {

    private TinyDecoders() {
    }

    /** A decoder of vocabulary {@code vocab}, width {@code d}, 2 heads, {@code layers} blocks, MLP ratio 2. */
    public static ComputationGraph decoder(DataType dt, IUpdater updater, long seed, int vocab, int d, int layers,
                                           int maxLength) {
        return Transformers.decoder().vocabSize(vocab).maxLength(maxLength).dModel(d).heads(2).layers(layers)
                .mlpRatio(2).seed(seed).updater(updater).dataType(dt).build();
    }

    /** Double precision, no-op updater: for gradient checks. Vocabulary 5, d 4, 1 block, max length 8. */
    public static ComputationGraph forGradientCheck(long seed) {
        return decoder(DataType.DOUBLE, new NoOp(), seed, 5, 4, 1, 8);
    }

    /** Token sequences {@code [batch, time]} and next-token labels {@code [batch, 1, time]} of one domain. */
    public static DataSet domain(DataType dt, long seed, int batch, int time, int vocab, int step, double noise) {
        java.util.Random r = new java.util.Random(seed);
        INDArray x = Nd4j.create(dt, batch, time);
        INDArray y = Nd4j.create(dt, batch, 1, time);
        for (int b = 0; b < batch; b++) {
            int cur = r.nextInt(vocab);
            for (int t = 0; t < time; t++) {
                int next = r.nextDouble() < noise ? r.nextInt(vocab) : Math.floorMod(cur + step, vocab);
                x.putScalar(b, t, cur);
                y.putScalar(new int[] {b, 0, t}, next);
                cur = next;
            }
        }
        return new DataSet(x, y);
    }

    /** GradientChecks with feature and label masks. */
    public static boolean gradientsPass(ComputationGraph g, INDArray input, INDArray labels, INDArray mask) {
        return GradientCheckUtil.checkGradients(new GradientCheckUtil.GraphConfig()
                .net(g)
                .inputs(new INDArray[] {input})
                .labels(new INDArray[] {labels})
                .inputMask(mask == null ? null : new INDArray[] {mask})
                .labelMask(mask == null ? null : new INDArray[] {mask})
                .epsilon(1e-6)
                .maxRelError(1e-5)
                .minAbsoluteError(1e-9)
                .print(GradientCheckUtil.PrintMode.FAILURES_ONLY)
                .exitOnFirstError(false));
    }
}
