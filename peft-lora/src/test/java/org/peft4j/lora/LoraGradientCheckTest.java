package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.BiasMode;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;

/**
 * LoRA's hand-written backprop against finite differences (double precision). {@code B} starts at
 * zero, which would make the gradient of {@code A} trivially zero, so every check first gives
 * {@code B} random values. A trainable layer sits below the LoRA layers in every graph, so the
 * epsilon the LoRA layers pass down is checked through that layer's gradient.
 */
class LoraGradientCheckTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static void randomizeB(PeftModel peft) {
        Nd4j.getRandom().setSeed(7);
        peft.adaptedLayers().keySet().forEach(name -> {
            INDArray b = peft.graph().getLayer(name).getParam(LoraDenseLayer.LORA_B);
            b.assign(Nd4j.randn(DataType.DOUBLE, b.shape()).muli(0.5));
        });
    }

    @Test
    void loraOnHiddenAndOutputLayersMatchesFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(1);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(4)
                .targetModules("dense1", "dense2", "output").modulesToSave("dense0").build());
        randomizeB(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 3, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void trainableBiasesAndRsLoraMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(2);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(3).alpha(2).useRsLora(true)
                .initLoraWeights(LoraInit.GAUSSIAN).bias(BiasMode.ALL)
                .targetModulesRegex("dense[12]").modulesToSave("dense0").build());
        randomizeB(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void loraOnlyTargetWithoutTrainableUpstreamMatchesFiniteDifferences() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(5);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(2).bias(BiasMode.LORA_ONLY)
                .targetModules("dense0", "output").build());
        randomizeB(peft);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 6, 4, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void perTimeStepDenseAndRnnOutputThroughFrozenLstmMatchFiniteDifferences() {
        ComputationGraph base = TinyGraphs.sequence(DataType.DOUBLE, new NoOp(), 3, 3, 4, 2);
        // proj trains in full below a frozen LSTM: its gradient checks the epsilon that the LoRA
        // layers and the frozen LSTM pass down.
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(3)
                .targetModules("step", "output").modulesToSave("proj").build());
        randomizeB(peft);
        DataSet ds = TinyGraphs.sequences(DataType.DOUBLE, 8, 2, 3, 2, 4);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }
}
