package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.wrapper.BaseWrapperLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.blocks.Normalization;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;

/**
 * {@link NormalizationImpl} keeps the row statistics of a float32 training forward pass only for
 * the input that pass saw (a backward pass for another input gives, bit for bit, the gradients of
 * a forward and backward pass on that input), and a frozen LayerNorm (under a tuner) gives the same
 * input gradient as a trainable one while leaving the discarded gain and bias gradients alone.
 */
class NormalizationReuseTest {
    private static final int D = 16;
    private static final int ROWS = 30;

    private static ComputationGraph encoder() {
        ComputationGraph g = Transformers.encoder().vocabSize(7).maxLength(6).dModel(D).heads(2).layers(1).mlpRatio(2)
                .classes(3).dataType(DataType.FLOAT).updater(new NoOp()).seed(3).build();
        g.initGradientsView();
        return g;
    }

    private static NormalizationImpl unwrap(Layer l) {
        while (l instanceof BaseWrapperLayer) {
            l = ((BaseWrapperLayer) l).getUnderlying();
        }
        assertTrue(l instanceof NormalizationImpl, l.getClass().getName());
        return (NormalizationImpl) l;
    }

    private static double[] values(INDArray a) {
        return a.dup('c').data().asDouble();
    }

    /** {input gradient, gain gradient, bias gradient} of a backward pass for {@code x} after the forward passes given. */
    private static double[][] backward(Layer l, INDArray eps, INDArray x, INDArray... forwardOn) {
        LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
        for (INDArray f : forwardOn) {
            l.setInput(f, mgr);
            l.activate(true, mgr);
        }
        l.setInput(x, mgr);
        Pair<Gradient, INDArray> p = l.backpropGradient(eps, mgr);
        INDArray gain = p.getFirst().gradientForVariable().get(Normalization.GAIN_KEY);
        INDArray bias = p.getFirst().gradientForVariable().get(Normalization.BIAS_KEY);
        return new double[][] {values(p.getSecond()), gain == null ? null : values(gain),
            bias == null ? null : values(bias)};
    }

    @Test
    void backwardForAnotherInputThanTheForwardPassComputesTheStatisticsAgain() {
        Layer l = unwrap(encoder().getLayer(Transformers.EMBEDDING_NORM));
        Nd4j.getRandom().setSeed(5);
        INDArray x1 = Nd4j.randn(DataType.FLOAT, ROWS, D).muli(3).addi(1);
        INDArray x2 = Nd4j.randn(DataType.FLOAT, ROWS, D);
        INDArray eps = Nd4j.randn(DataType.FLOAT, ROWS, D);
        double[][] reference = backward(l, eps, x2, x2);
        double[][] stale = backward(l, eps, x2, x1);
        double[][] noForward = backward(l, eps, x2);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(reference[i], stale[i], "gradient " + i + " after a forward pass on another input");
            assertArrayEquals(reference[i], noForward[i], "gradient " + i + " without a forward pass");
        }
    }

    @Test
    void frozenLayerNormGivesTheTrainableInputGradientAndNoParameterGradient() {
        ComputationGraph base = encoder();
        NormalizationImpl trainable = unwrap(base.getLayer("block0.ln1"));
        // IA3 on attn.k|v freezes every LayerNorm and passes the gradient down through them
        ComputationGraph tuned = Peft.wrap(base,
                Ia3Config.builder().targetModulesRegex("block\\d+\\.attn\\.(k|v)").build()).graph();
        tuned.initGradientsView();
        Layer frozen = tuned.getLayer("block0.ln1");
        Nd4j.getRandom().setSeed(8);
        INDArray x = Nd4j.randn(DataType.FLOAT, ROWS, D);
        INDArray eps = Nd4j.randn(DataType.FLOAT, ROWS, D);
        double[][] full = backward(trainable, eps, x, x);
        assertNotEquals(0.0, java.util.Arrays.stream(full[1]).map(Math::abs).sum(), "the trainable gain has a gradient");
        backward(frozen, eps, x, x); // the first backward pass sets the frozen layer up
        NormalizationImpl inner = unwrap(frozen);
        INDArray scratch = inner.getGradientsViewArray();
        scratch.assign(7);
        double[][] only = backward(frozen, eps, x, x);
        assertArrayEquals(full[0], only[0], "input gradient");
        assertEquals(7.0 * scratch.length(), scratch.sumNumber().doubleValue(), "frozen: gain and bias gradients skipped");
    }

    @Test
    void anFOrderedGradientGivesTheSameGradientsAsItsCopyInCOrder() {
        Layer l = unwrap(encoder().getLayer("block0.ln2"));
        Nd4j.getRandom().setSeed(9);
        INDArray x = Nd4j.randn(DataType.FLOAT, ROWS, D).muli(2).addi(0.5);
        INDArray eps = Nd4j.randn(DataType.FLOAT, ROWS, D);
        INDArray epsF = eps.dup('f');
        double[][] c = backward(l, eps, x, x);
        double[][] f = backward(l, epsF, x, x);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(c[i], f[i], "gradient " + i);
        }
        assertEquals(eps, epsF, "the caller's gradient is left as it was");
    }
}
