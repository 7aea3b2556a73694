package org.peft4j.core.ia3;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
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
 * IA3's hand-written backprop against finite differences (double precision). The scales start at
 * one; every check moves them away first so that a wrong {@code l} in the backward pass shows.
 * A layer trained in full sits below the IA3 layers, so the epsilon they pass down is checked too.
 */
class Ia3GradientCheckTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static void randomizeScales(PeftModel peft) {
        Nd4j.getRandom().setSeed(11);
        peft.adaptedLayers().keySet().forEach(name -> {
            INDArray l = peft.graph().getLayer(name).getParam(Ia3DenseLayer.IA3_KEY);
            l.assign(Nd4j.randn(DataType.DOUBLE, l.shape()).muli(0.5).addi(1.0));
        });
    }

    @Test
    void outputAndInputScalingOnHiddenAndOutputLayersMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(1);
        PeftModel peft = Peft.wrap(base, Ia3Config.builder().targetModules("dense1", "dense2", "output")
                .feedforwardModules("dense2").modulesToSave("dense0").build());
        randomizeScales(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 3, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void feedforwardOutputLayerAndFirstLayerWithoutTrainableUpstreamMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(2);
        PeftModel peft = Peft.wrap(base, Ia3Config.builder().targetModules("dense0", "output")
                .feedforwardModules("dense0", "output").build());
        randomizeScales(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void perTimeStepTargetsThroughFrozenLstmMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.sequence(DataType.DOUBLE, new NoOp(), 3, 3, 4, 2);
        PeftModel peft = Peft.wrap(base, Ia3Config.builder().targetModules("step", "output")
                .feedforwardModules("output").modulesToSave("proj").build());
        randomizeScales(peft);
        DataSet ds = TinyGraphs.sequences(DataType.DOUBLE, 8, 2, 3, 2, 4);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }
}
