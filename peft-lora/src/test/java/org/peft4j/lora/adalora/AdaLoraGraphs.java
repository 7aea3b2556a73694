package org.peft4j.lora.adalora;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.PeftModel;

/** Small graphs and helpers shared by the AdaLoRA tests. */
final class AdaLoraGraphs {

    private AdaLoraGraphs() {
    }

    /**
     * {@code in [batch, 4] → q (4 → 5, tanh) → mid (5 → 4, tanh) → v (4 → 5, tanh) → out (MSE, 2)}:
     * {@code q} and {@code v} have the sizes of the {@code adalora/allocator} fixture's layers.
     */
    static ComputationGraph qv(DataType dt, IUpdater updater, long seed) {
        ComputationGraph g = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(seed).dataType(dt)
                .updater(updater).graphBuilder().addInputs("in")
                .addLayer("q", new DenseLayer.Builder().nIn(4).nOut(5).activation(Activation.TANH).build(), "in")
                .addLayer("mid", new DenseLayer.Builder().nIn(5).nOut(4).activation(Activation.TANH).build(), "q")
                .addLayer("v", new DenseLayer.Builder().nIn(4).nOut(5).activation(Activation.TANH).build(), "mid")
                .addLayer("out", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(5).nOut(2)
                        .activation(Activation.IDENTITY).build(), "v")
                .setOutputs("out").build());
        g.init();
        return g;
    }

    /** Random {@code A}, {@code B} ({@code N(0, 0.5²)}) and {@code E} ({@code N(0, 1)}) in every AdaLoRA layer: at init E = 0 hides terms. */
    static void randomize(PeftModel peft, long seed) {
        Nd4j.getRandom().setSeed(seed);
        for (String name : peft.adaptedLayers().keySet()) {
            var layer = peft.graph().getLayer(name);
            for (String k : new String[] {AdaLoraLayer.LORA_A, AdaLoraLayer.LORA_E, AdaLoraLayer.LORA_B}) {
                INDArray p = layer.getParam(k);
                p.assign(Nd4j.randn(p.dataType(), p.shape()).muli(AdaLoraLayer.LORA_E.equals(k) ? 1.0 : 0.5));
            }
        }
    }
}
