package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;

/**
 * The float32-only paths of a training step (the erf GELU that keeps its derivative from the forward
 * pass, in {@code Dense} and in frozen dense layers; the bias written before the product; masked
 * rows zeroed) give the gradients of the double-precision step, whose code the gradient checks
 * validate, to float rounding: on a padded batch through an encoder, fully fine-tuned (every
 * {@code Dense} trains) and with IA3 on {@code attn.k|v} (the frozen {@code mlp.up} passes the
 * gradient down to the scales of the block below it), and with only the embedding LayerNorm and the
 * classifier trained (every dense layer frozen, passing its input gradient).
 */
class FloatTrainingMatchesDoubleTest {

    private static final INDArray TOKENS = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4, 5}, {2, 6, 1, 0, 3}});
    private static final INDArray MASK = Nd4j.createFromArray(new double[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
    private static final INDArray LABELS = Nd4j.createFromArray(new double[][] {{0, 1, 0}, {0, 0, 1}});

    private static ComputationGraph encoder(DataType t) {
        return Transformers.encoder().vocabSize(7).maxLength(6).dModel(8).heads(2).layers(2).mlpRatio(2).classes(3)
                .dataType(t).updater(new NoOp()).seed(11).build();
    }

    /** The double encoder and a float one with the same weights. */
    private static ComputationGraph[] bases() {
        ComputationGraph d = encoder(DataType.DOUBLE);
        ComputationGraph f = encoder(DataType.FLOAT);
        // larger weights push the GELU inputs over its whole curve
        d.setParams(d.params().mul(3));
        f.setParams(d.params().castTo(DataType.FLOAT));
        return new ComputationGraph[] {d, f};
    }

    private static Map<String, INDArray> gradients(ComputationGraph g) {
        DataType t = g.params().dataType();
        g.setInputs(TOKENS.castTo(t));
        g.setLabels(LABELS.castTo(t));
        g.setLayerMaskArrays(new INDArray[] {MASK.castTo(t)}, null);
        g.computeGradientAndScore();
        return g.gradient().gradientForVariable();
    }

    private static void assertSameGradients(ComputationGraph d, ComputationGraph f, String what) {
        Map<String, INDArray> gd = gradients(d);
        Map<String, INDArray> gf = gradients(f);
        assertEquals(gd.keySet(), gf.keySet(), what);
        assertTrue(gd.size() > 0, what);
        double largest = 0;
        for (INDArray g : gd.values()) {
            largest = Math.max(largest, g.amaxNumber().doubleValue());
        }
        for (Map.Entry<String, INDArray> e : gd.entrySet()) {
            INDArray ref = e.getValue();
            // a gradient that is zero in exact arithmetic (the key bias: softmax ignores it) is
            // float rounding of the others
            double scale = Math.max(ref.amaxNumber().doubleValue(), 1e-2 * largest);
            double diff = gf.get(e.getKey()).castTo(DataType.DOUBLE).sub(ref).amaxNumber().doubleValue();
            assertTrue(diff <= 2e-4 * scale, what + " " + e.getKey() + ": float differs by " + diff + " at scale "
                    + scale);
        }
        assertEquals(d.score(), f.score(), 1e-5 * Math.max(1, d.score()), what);
    }

    @Test
    void fullFineTuningInFloatHasTheDoubleGradients() {
        ComputationGraph[] b = bases();
        assertSameGradients(Peft.wrap(b[0], FineTuningConfig.full()).graph(),
                Peft.wrap(b[1], FineTuningConfig.full()).graph(), "full");
    }

    /**
     * Only the embedding LayerNorm and the classifier train, so every dense layer of both blocks is
     * frozen and passes its input gradient down: the float forward ({@code x·W} onto the bias rows)
     * and input-gradient ({@code delta·Wᵀ}) products of the frozen layers, direct {@code cblas_sgemm}
     * calls on the CPU backend, must give the double step's gradients, random biases included.
     */
    @Test
    void frozenDenseProductsInFloatPassTheDoubleGradients() {
        ComputationGraph[] b = bases();
        // every parameter moved off its initial value, so that the biases (zero at initialisation) count
        Nd4j.getRandom().setSeed(5);
        b[0].setParams(b[0].params().add(Nd4j.rand(DataType.DOUBLE, b[0].params().shape()).subi(0.5)));
        b[1].setParams(b[0].params().castTo(DataType.FLOAT));
        FineTuningConfig cfg = FineTuningConfig.transferLearning(Transformers.EMBEDDING_NORM, Transformers.CLASSIFIER);
        assertSameGradients(Peft.wrap(b[0], cfg).graph(), Peft.wrap(b[1], cfg).graph(), "frozen");
    }

    @Test
    void gradientsThroughFrozenGeluLayersInFloatAreTheDoubleOnes() {
        ComputationGraph[] b = bases();
        Ia3Config cfg = Ia3Config.builder().targetModulesRegex("block\\d+\\.attn\\.(k|v)").build();
        assertSameGradients(Peft.wrap(b[0], cfg).graph(), Peft.wrap(b[1], cfg).graph(), "ia3");
    }
}
