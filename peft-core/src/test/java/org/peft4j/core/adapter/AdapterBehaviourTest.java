package org.peft4j.core.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.FrozenParamsLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;

/** What bottleneck adapters on a DL4J graph must guarantee: identity at init, frozen base, no merge. */
class AdapterBehaviourTest {

    private static ComputationGraph baseMlp() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(2e-2), 42, 8, 16, 4);
    }

    private static AdapterConfig adapters() {
        return AdapterConfig.builder().insertAfter("dense1", "dense2").reductionFactor(4).build();
    }

    private static double maxAbsDiff(INDArray a, INDArray b) {
        return a.castTo(DataType.DOUBLE).sub(b.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
    }

    private static void train(PeftModel peft, int steps) {
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < steps; i++) {
            peft.graph().fit(ds);
        }
    }

    @Test
    void freshAdaptersReproduceBaseOutputs() {
        ComputationGraph base = baseMlp();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 1, 16, 8, 4).getFeatures();
        PeftModel peft = Peft.wrap(base, adapters());
        assertEquals(Set.of("dense1.adapter", "dense2.adapter"), peft.tunerLayers().keySet());
        assertEquals(base.outputSingle(x), peft.graph().outputSingle(x));
    }

    @Test
    void freshAdaptersReproduceBaseOutputsOnMaskedSequences() {
        ComputationGraph base = TinyGraphs.sequence(DataType.FLOAT, new Adam(1e-2), 3, 5, 8, 3);
        DataSet ds = TinyGraphs.sequences(DataType.FLOAT, 2, 3, 5, 3, 6);
        INDArray mask = Nd4j.ones(DataType.FLOAT, 3, 6);
        mask.putScalar(0, 5, 0);
        mask.putScalar(2, 4, 0);
        mask.putScalar(2, 5, 0);
        PeftModel peft = Peft.wrap(base, AdapterConfig.builder().insertAfter("proj", "lstm", "step").bottleneckSize(2).build());
        INDArray expected = base.output(false, new INDArray[] {ds.getFeatures()}, new INDArray[] {mask})[0];
        INDArray actual = peft.graph().output(false, new INDArray[] {ds.getFeatures()}, new INDArray[] {mask})[0];
        assertArrayEquals(expected.shape(), actual.shape());
        assertTrue(maxAbsDiff(expected, actual) <= 1e-6);
    }

    @Test
    void onlyAdapterParametersTrainAndFrozenWeightsStayBitForBit() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, adapters());
        long m = 16 / 4;
        long expected = 2 * (16 * m + m + m * 16 + 16);
        assertEquals(expected, peft.trainableParameters());
        assertEquals(base.numParams() + expected, peft.allParameters());
        Map<String, INDArray> before = frozenArrays(peft);
        assertEquals(Set.of("dense0", "dense1", "dense2", "output-dense"), before.keySet());
        train(peft, 5);
        Map<String, INDArray> after = frozenArrays(peft);
        before.forEach((k, v) -> assertEquals(v, after.get(k), "frozen weights of " + k));
        assertEquals(2 * expected, peft.graph().getUpdater().getStateViewArray().length());
        for (String n : peft.tunerLayers().keySet()) {
            assertNotEquals(0.0, peft.graph().getLayer(n).getParam(BottleneckAdapterLayer.UP_W).norm2Number().doubleValue(),
                    "up-projection of " + n + " trained");
        }
    }

    private static Map<String, INDArray> frozenArrays(PeftModel peft) {
        Map<String, INDArray> m = new HashMap<>();
        for (Layer l : peft.graph().getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenDenseLayer) {
                m.put(c.getLayerName(), ((FrozenDenseLayer) c).frozenWeight().dup());
            } else if (c instanceof FrozenParamsLayer) {
                m.put(c.getLayerName(), ((FrozenParamsLayer) c).frozenParams().dup());
            }
        }
        return m;
    }

    @Test
    void trainingReducesTheLoss() {
        PeftModel peft = Peft.wrap(baseMlp(), adapters());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        double before = peft.graph().score(ds);
        train(peft, 30);
        double after = peft.graph().score(ds);
        assertTrue(after < 0.8 * before, "loss " + before + " -> " + after);
    }

    @Test
    void mergeAndUnloadAndMergeAreRefusedWithTheReason() {
        PeftModel peft = Peft.wrap(baseMlp(), adapters());
        IllegalStateException e = assertThrows(IllegalStateException.class, peft::mergeAndUnload);
        assertTrue(e.getMessage().contains("mergeAndUnload(): BOTTLENECK adds layers that no stock DL4J layer "
                + "can absorb [dense1.adapter, dense2.adapter]"), e.getMessage());
        e = assertThrows(IllegalStateException.class, peft::merge);
        assertTrue(e.getMessage().startsWith("merge(): "), e.getMessage());
    }

    @Test
    void disableAdapterGivesExactBaseOutputs() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, adapters());
        train(peft, 3);
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray adapted = peft.graph().outputSingle(x);
        assertNotEquals(base.outputSingle(x), adapted);
        var off = peft.disableAdapter();
        try (off) {
            assertEquals(base.outputSingle(x), peft.graph().outputSingle(x));
        }
        assertEquals(adapted, peft.graph().outputSingle(x));
    }

    @Test
    void cloneJsonRoundTripAndModelSerializerKeepOutputs(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(baseMlp(), adapters());
        train(peft, 3);
        ComputationGraph g = peft.graph();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray expected = g.outputSingle(x);
        assertEquals(expected, g.clone().outputSingle(x), "clone()");
        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        fromJson.init(g.params().dup(), false);
        assertEquals(expected, fromJson.outputSingle(x), "configuration JSON round trip");
        File f = dir.resolve("adapters.zip").toFile();
        ModelSerializer.writeModel(g, f, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(f, true);
        assertEquals(expected, restored.outputSingle(x), "ModelSerializer");
        restored.fit(TinyGraphs.classification(DataType.FLOAT, 6, 8, 8, 4));
    }

    @Test
    void configIsAValueWithEveryFieldInToString() {
        AdapterConfig h = AdapterConfig.builder().houlsby().build();
        assertEquals("AdapterConfig(architecture=HOULSBY, insertAfter=regex(block\\d+\\.(attn\\.o|mlp\\.down)), "
                + "reductionFactor=16, bottleneckSize=0, nonlinearity=RELU, modulesToSave=[])", h.toString());
        assertEquals(h, h.toBuilder().build());
        assertEquals(h.hashCode(), h.toBuilder().build().hashCode());
        assertNotEquals(h, AdapterConfig.builder().pfeiffer().build());
        assertEquals(4, h.bottleneckFor(64));
        assertEquals(1, h.bottleneckFor(8));
        assertEquals(8, AdapterConfig.builder().pfeiffer().bottleneckSize(8).build().bottleneckFor(64));
    }

    @Test
    void badConfigurationsAreRefusedWithTheReason() {
        assertTrue(assertThrows(IllegalStateException.class, () -> AdapterConfig.builder().build())
                .getMessage().contains("houlsby(), pfeiffer(), insertAfter(...)"));
        assertTrue(assertThrows(IllegalStateException.class, () -> AdapterConfig.builder().houlsby().pfeiffer())
                .getMessage().contains("insert points were already set to HOULSBY"));
        assertTrue(assertThrows(IllegalStateException.class, () -> AdapterConfig.builder().reductionFactor(8).bottleneckSize(4))
                .getMessage().contains("reductionFactor was already set to 8; set either reductionFactor or bottleneckSize"));
        assertTrue(assertThrows(IllegalStateException.class, () -> AdapterConfig.builder().bottleneckSize(4).reductionFactor(8))
                .getMessage().contains("bottleneckSize was already set to 4"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> AdapterConfig.builder().bottleneckSize(0))
                .getMessage().contains("bottleneckSize must be positive; got 0"));

        ComputationGraph g = baseMlp();
        INDArray params = g.params().dup();
        String json = g.getConfiguration().toJson();
        for (Map.Entry<AdapterConfig, String> c : Map.of(
                AdapterConfig.builder().houlsby().build(),
                "adapter (HOULSBY): no layer matched insertAfter regex(block\\d+\\.(attn\\.o|mlp\\.down)); layers are: dense0 (DenseLayer)",
                AdapterConfig.builder().insertAfter("dense9").build(),
                "adapter: no layer named \"dense9\" to insert after; layers are: dense0 (DenseLayer)",
                AdapterConfig.builder().insertAfter("output").build(),
                "\"output\" is a network output; insert before it instead").entrySet()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(g, c.getKey()));
            assertTrue(e.getMessage().contains(c.getValue()), e.getMessage());
        }
        assertEquals(params, g.params());
        assertEquals(json, g.getConfiguration().toJson());
        PeftModel wrapped = Peft.wrap(g, adapters());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(wrapped.graph(), adapters()));
        assertTrue(e.getMessage().contains("the graph is already wrapped"), e.getMessage());
        assertEquals(List.of("dense0", "dense1", "dense2", "output"), TinyGraphs.layerNames(g));
    }

    @Test
    void nonlinearityIsTheConfiguredOne() {
        PeftModel peft = Peft.wrap(baseMlp(), AdapterConfig.builder().insertAfter("dense1").nonlinearity(Activation.GELU).build());
        BottleneckAdapterLayer l = (BottleneckAdapterLayer) peft.tunerLayers().get("dense1.adapter");
        assertEquals(Activation.GELU.getActivationFunction(), l.getActivationFn());
        assertEquals(1, l.bottleneckSize());
    }
}
