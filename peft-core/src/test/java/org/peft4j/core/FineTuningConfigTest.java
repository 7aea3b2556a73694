package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;

/** Full fine-tuning and transfer learning through the same {@link Peft#wrap} API. */
class FineTuningConfigTest {

    private static ComputationGraph mlp() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    @Test
    void transferLearningTrainsOnlyTheNamedLayersAndFreezesTheRestOutsideTheParameterVector() {
        ComputationGraph base = mlp();
        PeftModel peft = Peft.wrap(base, FineTuningConfig.transferLearning("output"));
        long head = base.getLayer("output").numParams();
        assertEquals(head, peft.trainableParameters());
        assertEquals(base.numParams(), peft.allParameters());
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 1, 16, 8, 4).getFeatures();
        assertEquals(base.outputSingle(x), peft.graph().outputSingle(x));

        Map<String, INDArray> frozenBefore = Map.of("dense1",
                ((FrozenDenseLayer) peft.graph().getLayer("dense1").conf().getLayer()).frozenWeight().dup());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < 5; i++) {
            peft.graph().fit(ds);
        }
        assertEquals(frozenBefore.get("dense1"),
                ((FrozenDenseLayer) peft.graph().getLayer("dense1").conf().getLayer()).frozenWeight());
        assertNotEquals(base.getLayer("output").params(), peft.graph().getLayer("output").params());
        assertEquals(2 * head, peft.graph().getUpdater().getStateViewArray().length());

        ComputationGraph unloaded = peft.mergeAndUnload();
        assertEquals(peft.graph().outputSingle(x), unloaded.outputSingle(x));
        assertEquals(base.getLayer("dense1").params(), unloaded.getLayer("dense1").params());
    }

    @Test
    void layersUpstreamOfEverythingTrainableAreSkippedInBackprop() {
        PeftModel peft = Peft.wrap(mlp(), FineTuningConfig.transferLearning("output"));
        for (String n : new String[] {"dense0", "dense1", "dense2"}) {
            Layer l = peft.graph().getLayer(n);
            assertInstanceOf(org.deeplearning4j.nn.layers.FrozenLayer.class, l, n + " is skipped by DL4J's backprop");
        }
    }

    @Test
    void frozenLayerBetweenTrainableLayersPassesTheCorrectGradient() {
        GradientChecks.useDoublePrecision();
        try {
            ComputationGraph base = TinyGraphs.sequence(DataType.DOUBLE, new NoOp(), 3, 3, 4, 2);
            PeftModel peft = Peft.wrap(base, FineTuningConfig.transferLearning("proj", "output"));
            assertInstanceOf(org.peft4j.core.internal.DetachedParamsLayer.class, peft.graph().getLayer("lstm"));
            DataSet ds = TinyGraphs.sequences(DataType.DOUBLE, 8, 2, 3, 2, 4);
            assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
        } finally {
            org.nd4j.linalg.factory.Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        }
    }

    @Test
    void fullFineTuningTrainsACopyOfEveryParameter() {
        ComputationGraph base = mlp();
        INDArray before = base.params().dup();
        PeftModel peft = Peft.wrap(base, FineTuningConfig.full());
        assertEquals(base.numParams(), peft.trainableParameters());
        peft.graph().fit(TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4));
        assertEquals(before, base.params(), "the base model is not trained");
        assertNotEquals(before, peft.graph().params());
        assertEquals(peft.graph().params(), peft.mergeAndUnload().params());
    }

    @Test
    void badTransferLearningInputIsRefused() {
        assertThrows(IllegalArgumentException.class, FineTuningConfig::transferLearning);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Peft.wrap(mlp(), FineTuningConfig.transferLearning("head")));
        assertTrue(e.getMessage().startsWith("modulesToSave [head]: no layer matched; layers are: dense0 (DenseLayer)"),
                e.getMessage());
    }
}
