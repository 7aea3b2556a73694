package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/** {@link Peft#wrap} on a network whose {@code init()} was never called: the promised exception, not an NPE. */
class PeftWrapTest {

    private static final PeftConfig TRANSFER = FineTuningConfig.transferLearning("output");

    @Test
    void wrappingAGraphBeforeInitIsAnIllegalStateExceptionSayingToCallInit() {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().graphBuilder()
                .addInputs("in")
                .addLayer("dense", new DenseLayer.Builder().nIn(4).nOut(3).build(), "in")
                .addLayer("output", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(3).nOut(2)
                        .activation(Activation.IDENTITY).build(), "dense")
                .setOutputs("output")
                .build();
        ComputationGraph notInitialized = new ComputationGraph(conf);

        for (PeftConfig cfg : new PeftConfig[] {TRANSFER, FineTuningConfig.full()}) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> Peft.wrap(notInitialized, cfg));
            assertTrue(e.getMessage().contains("call init()"), e.getMessage());
        }
    }

    @Test
    void wrappingAMultiLayerNetworkBeforeInitIsAnIllegalStateExceptionSayingToCallInit() {
        MultiLayerConfiguration conf = new NeuralNetConfiguration.Builder().list()
                .layer(new DenseLayer.Builder().nIn(4).nOut(3).build())
                .layer(new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(3).nOut(2)
                        .activation(Activation.IDENTITY).build())
                .build();
        MultiLayerNetwork notInitialized = new MultiLayerNetwork(conf);

        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Peft.wrap(notInitialized, FineTuningConfig.transferLearning("layer1")));
        assertTrue(e.getMessage().contains("call init()"), e.getMessage());
    }
}
