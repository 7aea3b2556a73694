package org.peft4j.core.adapter;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;

/**
 * The bottleneck adapter's hand-written backprop against finite differences (double precision).
 * The up-projection starts at zero, which would make the down-projection's gradient trivially
 * zero, so every check first gives it (and the biases) random values. A layer trained in full
 * sits below the adapters, so the epsilon they pass down through frozen layers is checked too.
 */
class AdapterGradientCheckTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static void randomizeUp(PeftModel peft) {
        Nd4j.getRandom().setSeed(13);
        peft.tunerLayers().keySet().forEach(name -> {
            for (String k : new String[] {BottleneckAdapterLayer.UP_W, BottleneckAdapterLayer.UP_B, BottleneckAdapterLayer.DOWN_B}) {
                INDArray p = peft.graph().getLayer(name).getParam(k);
                p.assign(Nd4j.randn(DataType.DOUBLE, p.shape()).muli(0.5));
            }
        });
    }

    @Test
    void adaptersBetweenFrozenDenseLayersMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(1);
        PeftModel peft = Peft.wrap(base, AdapterConfig.builder().insertAfter("dense1", "dense2").bottleneckSize(3)
                .nonlinearity(Activation.TANH).modulesToSave("dense0").build());
        randomizeUp(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 3, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void firstAdapterWithNothingTrainableUpstreamMatchesFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(2);
        PeftModel peft = Peft.wrap(base, AdapterConfig.builder().insertAfter("dense0").reductionFactor(2)
                .nonlinearity(Activation.SIGMOID).build());
        randomizeUp(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void adaptersOnSequenceRowsAndOnLstmOutputMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.sequence(DataType.DOUBLE, new NoOp(), 3, 3, 4, 2);
        // after "lstm": [batch, d, time] input; after "step": per-time-step rows [batch*time, d]
        PeftModel peft = Peft.wrap(base, AdapterConfig.builder().insertAfter("lstm", "step").bottleneckSize(2)
                .nonlinearity(Activation.TANH).modulesToSave("proj").build());
        randomizeUp(peft);
        DataSet ds = TinyGraphs.sequences(DataType.DOUBLE, 8, 2, 3, 2, 4);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }
}
