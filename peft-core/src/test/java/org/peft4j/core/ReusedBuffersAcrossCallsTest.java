package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
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
 * The buffers that layers keep from call to call (the GELU derivative of Dense and frozen dense
 * layers, the attention probabilities) do not leak one call into another: a float model that has
 * been through a step on another batch size and sequence length, an inference pass and a training
 * forward pass without backward gives the gradients of a fresh model, and the activations a
 * training forward pass returned to the user are not changed by the steps after it.
 */
class ReusedBuffersAcrossCallsTest {

    private static final INDArray TOKENS = Nd4j.createFromArray(new float[][] {{1, 3, 0, 4, 5}, {2, 6, 1, 0, 3}});
    private static final INDArray MASK = Nd4j.createFromArray(new float[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
    private static final INDArray LABELS = Nd4j.createFromArray(new float[][] {{0, 1, 0}, {0, 0, 1}});
    private static final INDArray TOKENS3 = Nd4j.createFromArray(new float[][] {{4, 3, 2, 1}, {6, 5, 0, 0}, {1, 1, 2, 6}});
    private static final INDArray MASK3 = Nd4j.createFromArray(new float[][] {{1, 1, 1, 1}, {1, 1, 0, 0}, {1, 1, 1, 0}});
    private static final INDArray LABELS3 = Nd4j.createFromArray(new float[][] {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}});

    private static ComputationGraph base() {
        ComputationGraph g = Transformers.encoder().vocabSize(7).maxLength(6).dModel(8).heads(2).layers(2).mlpRatio(2)
                .classes(3).dataType(DataType.FLOAT).updater(new NoOp()).seed(11).build();
        g.setParams(g.params().mul(3));
        return g;
    }

    private static INDArray gradient(ComputationGraph g, INDArray tokens, INDArray mask, INDArray labels) {
        g.setInputs(tokens);
        g.setLabels(labels);
        g.setLayerMaskArrays(new INDArray[] {mask}, null);
        g.computeGradientAndScore();
        INDArray grad = g.gradient().gradient().dup();
        // ComputationGraph.batchSize() prefers the labels of the last step: forget them
        g.clear();
        return grad;
    }

    private static void check(PeftConfig cfg, String what) {
        ComputationGraph used = Peft.wrap(base(), cfg).graph();
        ComputationGraph fresh = Peft.wrap(base(), cfg).graph();

        gradient(used, TOKENS3, MASK3, LABELS3);
        used.output(false, new INDArray[] {TOKENS3}, new INDArray[] {MASK3});
        used.setLayerMaskArrays(new INDArray[] {MASK}, null);
        Map<String, INDArray> returned = used.feedForward(new INDArray[] {TOKENS}, true, false);
        Map<String, INDArray> copies = new HashMap<>();
        returned.forEach((k, v) -> copies.put(k, v == null ? null : v.dup()));
        used.output(false, new INDArray[] {TOKENS3}, new INDArray[] {MASK3});
        INDArray gu = gradient(used, TOKENS, MASK, LABELS);
        INDArray gf = gradient(fresh, TOKENS, MASK, LABELS);
        double scale = gf.amaxNumber().doubleValue();
        double diff = gu.sub(gf).amaxNumber().doubleValue();
        assertTrue(diff <= 1e-6 * scale, what + ": gradients after other calls differ from a fresh model's by " + diff
                + " at scale " + scale);

        gradient(used, TOKENS3, MASK3, LABELS3);
        gradient(used, TOKENS, MASK, LABELS);
        for (Map.Entry<String, INDArray> e : copies.entrySet()) {
            if (e.getValue() == null) {
                continue;
            }
            double d = returned.get(e.getKey()).sub(e.getValue()).amaxNumber().doubleValue();
            assertTrue(d == 0, what + ": activation \"" + e.getKey() + "\" returned by feedForward changed by " + d
                    + " after later steps");
        }
    }

    @Test
    void fullFineTuningDenseGeluKeepsNoStateBetweenCalls() {
        check(FineTuningConfig.full(), "full");
    }

    @Test
    void frozenGeluLayersKeepNoStateBetweenCalls() {
        check(Ia3Config.builder().targetModulesRegex("block\\d+\\.attn\\.(k|v)").build(), "ia3");
    }
}
