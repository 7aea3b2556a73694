package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;

/**
 * LoRA dropout: every training forward pass draws a new mask, and the backward pass uses the mask
 * of the forward pass it follows. With one input feature equal to 1 the dropped-out input of a row
 * is its mask value, which the forward output reveals: {@code z - x·W = s · mask · (A·B)}.
 */
class LoraDropoutTest {
    private static final int ROWS = 64;

    @Test
    void eachTrainingForwardDrawsAMaskAndTheBackwardUsesIt() {
        ComputationGraph base = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(3).dataType(DataType.DOUBLE)
                .updater(new Sgd(0.1)).graphBuilder().addInputs("in")
                .addLayer("dense0", new DenseLayer.Builder().nIn(1).nOut(3).activation(Activation.IDENTITY).build(), "in")
                .addLayer("output", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(3).nOut(2)
                        .activation(Activation.IDENTITY).build(), "dense0")
                .setOutputs("output").build());
        base.init();
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(2).dropout(0.5).targetModules("dense0").build());
        peft.graph().initGradientsView();
        Layer layer = peft.graph().getLayer("dense0");
        layer.getParam(LoraDenseLayer.LORA_B).assign(Nd4j.rand(DataType.DOUBLE, 2, 3).addi(0.5));
        INDArray w = base.getLayer("dense0").getParam("W");
        INDArray b = base.getLayer("dense0").getParam("b");
        INDArray ab = layer.getParam(LoraDenseLayer.LORA_A).mmul(layer.getParam(LoraDenseLayer.LORA_B));
        INDArray x = Nd4j.ones(DataType.DOUBLE, ROWS, 1);
        LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();

        layer.setInput(x, mgr);
        double[] first = masks(layer.activate(true, mgr), w, b, ab);
        double[] second = masks(layer.activate(true, mgr), w, b, ab);
        assertNotEquals(java.util.Arrays.toString(first), java.util.Arrays.toString(second),
                "a second training forward pass draws a new mask");
        double[] inference = masks(layer.activate(false, mgr), w, b, ab);
        for (double m : inference) {
            assertEquals(1.0, m, 1e-9, "no dropout at inference");
        }

        layer.activate(true, mgr);
        INDArray z = layer.activate(true, mgr);
        double[] mask = masks(z, w, b, ab);
        INDArray eps = Nd4j.rand(DataType.DOUBLE, ROWS, 3);
        Gradient g = layer.backpropGradient(eps, mgr).getFirst();
        // dL/dB = s · (x_d · A)ᵀ · eps with x_d = mask (one feature equal to 1), s = alpha / rank = 1
        INDArray xd = Nd4j.createFromArray(mask).reshape(ROWS, 1);
        INDArray expected = xd.mmul(layer.getParam(LoraDenseLayer.LORA_A)).transpose().mmul(eps);
        INDArray actual = g.getGradientFor(LoraDenseLayer.LORA_B);
        assertTrue(expected.equalsWithEps(actual, 1e-9), "gradient of B uses the last forward's mask: expected "
                + expected + " got " + actual);
    }

    /** Each row's mask value, from {@code z - x·W - b = s · mask · (A·B)} with x = 1 and s = 1. */
    private static double[] masks(INDArray z, INDArray w, INDArray b, INDArray ab) {
        INDArray lora = z.sub(Nd4j.ones(DataType.DOUBLE, ROWS, 1).mmul(w).addRowVector(b));
        double[] m = new double[ROWS];
        for (int r = 0; r < ROWS; r++) {
            m[r] = lora.getDouble(r, 0) / ab.getDouble(0, 0);
        }
        return m;
    }
}
