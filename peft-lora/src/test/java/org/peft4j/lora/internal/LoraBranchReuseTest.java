package org.peft4j.lora.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.LoraDenseLayer;

/**
 * The LoRA layer's backward pass reuses {@code d(x)·A} from the training forward pass only for the
 * input that pass saw: a backward pass for another input computes the product again, so its
 * gradients are those of a forward and backward pass on that input, bit for bit. The batch is large
 * enough for the BLAS branch (not {@link SmallBatchBranch}), in float32 and float64, with and without
 * LoRA dropout (pinned, so that every pass draws the same mask).
 */
class LoraBranchReuseTest {
    private static final int WIDTH = 64;
    private static final int ROWS = 80;

    private static LoraDenseLayerImpl layer(DataType type, double dropout) {
        ComputationGraph base = TinyGraphs.mlp(type, new Adam(1e-2), 5, WIDTH, WIDTH, 4);
        // dense0 trains too, so that dense1 passes an input gradient down
        LoraConfig cfg = LoraConfig.builder().rank(8).alpha(16).dropout(dropout)
                .targetModules("dense0", "dense1").build();
        ComputationGraph g = Peft.wrap(base, cfg).graph();
        DataSet ds = TinyGraphs.classification(type, 3, ROWS, WIDTH, 4);
        for (int i = 0; i < 3; i++) {
            g.fit(ds); // B away from zero, so that dL/dA and the input gradient depend on A
        }
        LoraTestHooks.pinDropoutMasks(g, true);
        Layer l = g.getLayer("dense1");
        l = l instanceof FrozenLayer ? ((FrozenLayer) l).getInsideLayer() : l;
        assertTrue(l instanceof LoraDenseLayerImpl, l.getClass().getName());
        return (LoraDenseLayerImpl) l;
    }

    /** Every element, exactly; none for an input gradient the layer does not compute. */
    private static double[] values(INDArray a) {
        return a == null ? new double[0] : a.dup('c').data().asDouble();
    }

    /** {dL/dA, dL/dB, input gradient} of a backward pass for {@code x}, after the forward passes given. */
    private static double[][] backward(LoraDenseLayerImpl l, INDArray eps, INDArray x, INDArray... forwardOn) {
        LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
        for (INDArray f : forwardOn) {
            l.setInput(f, mgr);
            l.activate(true, mgr);
        }
        l.setInput(x, mgr);
        Pair<Gradient, INDArray> p = l.backpropGradient(eps, mgr);
        return new double[][] {
            values(p.getFirst().gradientForVariable().get(LoraDenseLayer.LORA_A)),
            values(p.getFirst().gradientForVariable().get(LoraDenseLayer.LORA_B)),
            values(p.getSecond())};
    }

    private static void check(DataType type, double dropout) {
        LoraDenseLayerImpl l = layer(type, dropout);
        Nd4j.getRandom().setSeed(17);
        INDArray x1 = Nd4j.randn(type, ROWS, WIDTH);
        INDArray x2 = Nd4j.randn(type, ROWS, WIDTH);
        INDArray eps = Nd4j.randn(type, ROWS, WIDTH);
        String what = type + ", dropout " + dropout;
        double[][] reference = backward(l, eps, x2, x2);
        double[][] again = backward(l, eps, x2, x2);
        double[][] stale = backward(l, eps, x2, x1);
        double[][] noForward = backward(l, eps, x2);
        String[] names = {"dL/dA", "dL/dB", "input gradient"};
        assertTrue(reference[2].length == ROWS * WIDTH, "dense1 computes its input gradient");
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(reference[i], again[i], what + ": " + names[i] + " after a forward pass on x");
            assertArrayEquals(reference[i], stale[i], what + ": " + names[i] + " after a forward pass on another input");
            assertArrayEquals(reference[i], noForward[i], what + ": " + names[i] + " without a forward pass");
        }
    }

    @Test
    void backwardForAnotherInputThanTheForwardPassesComputesTheBranchAgain() {
        check(DataType.FLOAT, 0.0);
        check(DataType.DOUBLE, 0.0);
        check(DataType.FLOAT, 0.1);
    }
}
