package org.peft4j.core.ia3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.FrozenParamsLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;

/** What IA3 on a DL4J graph must guarantee: identity at init, frozen base, exact merge, validation. */
class Ia3BehaviourTest {

    private static ComputationGraph baseMlp() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(2e-2), 42, 8, 16, 4);
    }

    private static Ia3Config ia3() {
        return Ia3Config.builder().targetModules("dense1", "dense2", "output").feedforwardModules("dense2").build();
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
    void freshScalesReproduceBaseOutputs() {
        ComputationGraph base = baseMlp();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 1, 16, 8, 4).getFeatures();
        PeftModel peft = Peft.wrap(base, ia3());
        assertEquals(Set.of("dense1", "dense2", "output-dense"), peft.adaptedLayers().keySet());
        assertTrue(maxAbsDiff(base.outputSingle(x), peft.graph().outputSingle(x)) <= 1e-6);
    }

    @Test
    void scalesHaveOutputOrInputSizeAndAreTheOnlyTrainableParameters() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, ia3());
        assertEquals(16, peft.graph().getLayer("dense1").getParam(Ia3DenseLayer.IA3_KEY).length(), "output scaling: nOut");
        assertEquals(16, peft.graph().getLayer("dense2").getParam(Ia3DenseLayer.IA3_KEY).length(), "input scaling: nIn");
        assertEquals(4, peft.graph().getLayer("output-dense").getParam(Ia3DenseLayer.IA3_KEY).length());
        assertEquals(36, peft.trainableParameters());
        assertEquals(base.numParams() + 36, peft.allParameters());
        train(peft, 1);
        assertEquals(2 * 36, peft.graph().getUpdater().getStateViewArray().length(), "Adam state for the scales only");
    }

    @Test
    void fitLeavesFrozenWeightsBitForBitAndMovesTheScales() {
        PeftModel peft = Peft.wrap(baseMlp(), ia3());
        Map<String, INDArray> before = frozenArrays(peft);
        INDArray scalesBefore = peft.graph().params().dup();
        train(peft, 5);
        Map<String, INDArray> after = frozenArrays(peft);
        assertEquals(Set.of("dense0", "dense1", "dense2", "output-dense"), before.keySet());
        before.forEach((k, v) -> assertEquals(v, after.get(k), "frozen weights of " + k));
        assertNotEquals(scalesBefore, peft.graph().params());
        for (String n : peft.adaptedLayers().keySet()) {
            INDArray l = peft.graph().getLayer(n).getParam(Ia3DenseLayer.IA3_KEY);
            assertTrue(maxAbsDiff(l, l.like().assign(1)) > 1e-4, "scales of " + n + " trained");
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
    void mergeScalesWeightsAndBiasAndUnmergeRestoresThemExactly() {
        PeftModel peft = Peft.wrap(baseMlp(), ia3());
        train(peft, 5);
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray unmerged = peft.graph().outputSingle(x);
        Map<String, INDArray> weights = new HashMap<>();
        peft.adaptedLayers().forEach((n, f) -> weights.put(n, f.effectiveWeight().dup()));

        peft.merge();
        FrozenBaseLayer outputScaled = peft.adaptedLayers().get("dense1");
        Map<String, INDArray> scaledParams = peft.graph().getLayer("dense1").paramTable();
        assertNotSame(outputScaled.frozenBias(), outputScaled.effectiveBias(scaledParams),
                "output scaling folds l into the bias");
        FrozenBaseLayer inputScaled = peft.adaptedLayers().get("dense2");
        assertSame(inputScaled.frozenBias(), inputScaled.effectiveBias(peft.graph().getLayer("dense2").paramTable()),
                "input scaling leaves the bias");
        INDArray merged = peft.graph().outputSingle(x);
        assertTrue(maxAbsDiff(unmerged, merged) <= 1e-5, "merged outputs differ by " + maxAbsDiff(unmerged, merged));

        peft.unmerge();
        peft.adaptedLayers().forEach((n, f) -> assertEquals(weights.get(n), f.effectiveWeight(), n));
        assertEquals(unmerged, peft.graph().outputSingle(x));
    }

    @Test
    void mergeAndUnloadGivesStockLayersWithTheSameOutputs() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, ia3());
        train(peft, 5);
        ComputationGraph plain = peft.mergeAndUnload();
        for (Layer l : plain.getLayers()) {
            Class<?> c = l.conf().getLayer().getClass();
            assertTrue(c == DenseLayer.class || c == OutputLayer.class, "stock layer, got " + c);
        }
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        assertTrue(maxAbsDiff(peft.graph().outputSingle(x), plain.outputSingle(x)) <= 1e-5);
        assertNotEquals(base.outputSingle(x), plain.outputSingle(x));
    }

    @Test
    void disableAdapterGivesExactBaseOutputs() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, ia3());
        train(peft, 3);
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray adapted = peft.graph().outputSingle(x);
        var off = peft.disableAdapter();
        try (off) {
            assertEquals(base.outputSingle(x), peft.graph().outputSingle(x));
        }
        assertEquals(adapted, peft.graph().outputSingle(x));
    }

    @Test
    void cloneJsonRoundTripAndModelSerializerKeepOutputs(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(baseMlp(), ia3());
        train(peft, 3);
        ComputationGraph g = peft.graph();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray expected = g.outputSingle(x);
        assertEquals(expected, g.clone().outputSingle(x), "clone()");
        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        fromJson.init(g.params().dup(), false);
        assertEquals(expected, fromJson.outputSingle(x), "configuration JSON round trip");
        File f = dir.resolve("ia3.zip").toFile();
        ModelSerializer.writeModel(g, f, true);
        assertEquals(expected, ModelSerializer.restoreComputationGraph(f, true).outputSingle(x), "ModelSerializer");
    }

    @Test
    void configIsAValueWithEveryFieldInToString() {
        Ia3Config a = Ia3Config.builder().targetModulesRegex("block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down")
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down").modulesToSave("head").build();
        assertEquals(a, a.toBuilder().build());
        assertEquals(a.hashCode(), a.toBuilder().build().hashCode());
        assertNotEquals(a, ia3());
        assertEquals("Ia3Config(targetModules=regex(block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down), targetTypes=[], "
                + "modulesToSave=[head], feedforwardModules=regex(block\\d+\\.mlp\\.down))", a.toString());
        assertTrue(a.isFeedforward("block3.mlp.down"));
        assertFalse(a.isFeedforward("block3.attn.k"));
    }

    @Test
    void badConfigurationsAreRefusedWithTheReason() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Ia3Config.builder().targetModules("dense1").feedforwardModules("dense2").build());
        assertTrue(e.getMessage().contains("feedforwardModules must be a subset of targetModules [dense1]; not targets: [dense2]"),
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> Ia3Config.builder().build());
        assertThrows(IllegalStateException.class, () -> Ia3Config.builder().feedforwardModules("a").feedforwardModules("b"));
        ComputationGraph g = baseMlp();
        INDArray params = g.params().dup();
        e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(g,
                Ia3Config.builder().targetModulesRegex("dense[01]").feedforwardModulesRegex("dense[12]").build()));
        assertTrue(e.getMessage().contains("these feedforward modules are not targets: [dense2]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(g,
                Ia3Config.builder().targetModulesRegex("dense.*|mlp\\.down").feedforwardModules("mlp.down").build()));
        assertTrue(e.getMessage().contains("no layer matched feedforwardModules [mlp.down]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(g, Ia3Config.builder().targetModules("q").build()));
        assertTrue(e.getMessage().contains("layers are: dense0 (DenseLayer)"), e.getMessage());
        assertEquals(params, g.params());
    }

    /**
     * Two IA3 adapters on the same targets that differ only in which of them scale their input:
     * switching between them must give what wrapping with each gives, not keep the first one's layers.
     */
    @Test
    void adaptersThatDifferInFeedforwardModulesSwitchCorrectly() {
        ComputationGraph base = baseMlp();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 1, 16, 8, 4).getFeatures();
        Ia3Config scaleOut = Ia3Config.builder().targetModules("dense0", "dense2").build();
        Ia3Config scaleIn = Ia3Config.builder().targetModules("dense0", "dense2").feedforwardModules("dense0").build();
        PeftModel a = Peft.wrap(base, scaleOut);
        train(a, 3);
        PeftModel b = Peft.wrap(base, scaleIn);
        train(b, 3);
        INDArray expectedB = b.graph().outputSingle(x);

        a.addAdapter("in", scaleIn, b.adapterParameters(PeftModel.DEFAULT_ADAPTER));
        a.setAdapter("in");
        assertTrue(maxAbsDiff(expectedB, a.output(x)[0]) <= 1e-6, "switched to the input-scaling adapter");
        assertEquals(8, a.graph().getLayer("dense0").getParam(Ia3DenseLayer.IA3_KEY).length(), "dense0 scales its input (nIn 8)");
        a.setAdapter(PeftModel.DEFAULT_ADAPTER);
        assertEquals(16, a.graph().getLayer("dense0").getParam(Ia3DenseLayer.IA3_KEY).length(), "and back to its output");
    }

    /** An adapter named like a file saveAdapter writes would make the save fail half-way: refused up front. */
    @Test
    void adapterNamesThatAreFileNamesAreRefused() {
        PeftModel peft = Peft.wrap(baseMlp(), ia3());
        for (String name : new String[] {"adapter_model.safetensors", "adapter_config.json", "training_state.safetensors"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> peft.addAdapter(name, ia3()));
            assertEquals("adapter name \"" + name + "\" is the name of a file saveAdapter and saveCheckpoint write next "
                    + "to the adapters' directories; choose another name", e.getMessage());
        }
        assertEquals(java.util.List.of(PeftModel.DEFAULT_ADAPTER), java.util.List.copyOf(peft.adapterNames()));
    }
}
