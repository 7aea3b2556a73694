package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.Map;
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
import org.nd4j.linalg.learning.config.Nesterovs;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.testing.TinyGraphs;

/** What LoRA on a DL4J graph must guarantee (issue #2, items 1–3 and 5–7). */
class LoraBehaviourTest {

    private static ComputationGraph baseMlp() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    private static LoraConfig lora(String... targets) {
        return LoraConfig.builder().rank(4).alpha(8).targetModules(targets).build();
    }

    private static double maxAbsDiff(INDArray a, INDArray b) {
        return a.castTo(DataType.DOUBLE).sub(b.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
    }

    /** Trains B away from zero so merge tests see a real update. */
    private static void train(PeftModel peft, DataSet ds, int steps) {
        for (int i = 0; i < steps; i++) {
            peft.graph().fit(ds);
        }
    }

    @Test
    void freshAdapterReproducesBaseOutputs() {
        ComputationGraph base = baseMlp();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 1, 16, 8, 4).getFeatures();
        PeftModel peft = Peft.wrap(base, lora("dense0", "dense1", "dense2", "output"));
        assertTrue(maxAbsDiff(base.outputSingle(x), peft.graph().outputSingle(x)) <= 1e-6);
    }

    @Test
    void freshAdapterReproducesBaseOutputsOnSequences() {
        ComputationGraph base = TinyGraphs.sequence(DataType.FLOAT, new Adam(1e-2), 3, 5, 8, 3);
        INDArray x = TinyGraphs.sequences(DataType.FLOAT, 2, 3, 5, 3, 6).getFeatures();
        PeftModel peft = Peft.wrap(base, lora("proj", "step", "output"));
        INDArray expected = base.outputSingle(x);
        INDArray actual = peft.graph().outputSingle(x);
        assertArrayEquals(expected.shape(), actual.shape());
        assertTrue(maxAbsDiff(expected, actual) <= 1e-6);
    }

    @Test
    void outputAfterFitAcceptsAnotherBatchSizeOnSequences() {
        ComputationGraph base = TinyGraphs.sequence(DataType.FLOAT, new Adam(1e-2), 3, 5, 8, 3);
        PeftModel peft = Peft.wrap(base, lora("proj", "step", "output"));
        peft.graph().fit(TinyGraphs.sequences(DataType.FLOAT, 2, 4, 5, 3, 6));
        INDArray out = peft.output(TinyGraphs.sequences(DataType.FLOAT, 2, 3, 5, 3, 6).getFeatures())[0];
        assertArrayEquals(new long[] {3, 3, 6}, out.shape());
    }

    @Test
    void fitLeavesFrozenWeightsBitForBitAndChangesAdapters() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, lora("dense1", "output"));
        Map<String, INDArray> frozenBefore = frozenArrays(peft);
        assertEquals(java.util.Set.of("dense0", "dense1", "dense2", "output-dense"), frozenBefore.keySet(),
                "every layer with weights is held frozen");
        INDArray adaptersBefore = peft.graph().params().dup();

        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 5);

        Map<String, INDArray> frozenAfter = frozenArrays(peft);
        for (Map.Entry<String, INDArray> e : frozenBefore.entrySet()) {
            assertEquals(e.getValue(), frozenAfter.get(e.getKey()), "frozen weights of " + e.getKey());
        }
        for (String name : peft.adaptedLayers().keySet()) {
            Layer l = peft.graph().getLayer(name);
            assertNotEquals(0.0, l.getParam(LoraDenseLayer.LORA_B).norm2Number().doubleValue(), "B of " + name + " trained");
        }
        assertNotEquals(adaptersBefore, peft.graph().params());
    }

    /** The frozen arrays of every frozen layer, copied, by vertex name. */
    private static Map<String, INDArray> frozenArrays(PeftModel peft) {
        Map<String, INDArray> m = new java.util.HashMap<>();
        for (Layer l : peft.graph().getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenDenseLayer) {
                m.put(c.getLayerName(), ((FrozenDenseLayer) c).frozenWeight().dup());
            } else if (c instanceof org.peft4j.core.FrozenParamsLayer) {
                m.put(c.getLayerName(), ((org.peft4j.core.FrozenParamsLayer) c).frozenParams().dup());
            }
        }
        return m;
    }

    @Test
    void parametersGradientsAndAdamStateCountTrainableOnly() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, lora("dense1", "dense2"));
        long r = 4;
        long expected = 2 * (16 * r + r * 16);
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 8, 8, 4), 1);
        ComputationGraph g = peft.graph();
        assertEquals(expected, g.numParams());
        assertEquals(expected, g.getFlattenedGradients().length());
        assertEquals(2 * expected, g.getUpdater().getStateViewArray().length(), "Adam keeps m and v per trainable parameter");
        assertEquals(base.numParams() + expected, peft.allParameters());
        assertEquals(String.format(java.util.Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f",
                expected, base.numParams() + expected, 100.0 * expected / (base.numParams() + expected)),
                peft.trainableParametersSummary());
    }

    @Test
    void mergeThenUnmergeRestoresBaseWeightsExactly() {
        PeftModel peft = Peft.wrap(baseMlp(), lora("dense1", "output"));
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 3);
        Map<String, INDArray> before = new java.util.HashMap<>();
        peft.adaptedLayers().forEach((n, f) -> before.put(n, f.effectiveWeight().dup()));
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray unmergedOut = peft.graph().outputSingle(x);

        peft.merge();
        assertTrue(peft.isMerged());
        peft.adaptedLayers().forEach((n, f) -> assertNotEquals(before.get(n), f.effectiveWeight(), n + " merged"));
        INDArray mergedOut = peft.graph().outputSingle(x);
        assertTrue(maxAbsDiff(unmergedOut, mergedOut) <= 1e-5 * Math.max(1, unmergedOut.amaxNumber().doubleValue()));

        peft.unmerge();
        assertFalse(peft.isMerged());
        peft.adaptedLayers().forEach((n, f) -> assertEquals(before.get(n), f.effectiveWeight(), n + " restored"));
        assertEquals(unmergedOut, peft.graph().outputSingle(x));
    }

    @Test
    void trainingWhileMergedIsRefused() {
        PeftModel peft = Peft.wrap(baseMlp(), lora("dense1"));
        peft.merge();
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 8, 8, 4);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> peft.graph().fit(ds));
        assertTrue(e.getMessage().contains("unmerge()"), e.getMessage());
        assertThrows(IllegalStateException.class, peft::merge);
    }

    @Test
    void mergeAndUnloadGivesStockLayersWithTheSameOutputs() {
        ComputationGraph base = baseMlp();
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(4).alpha(8)
                .targetModules(TargetModules.ALL_LINEAR).modulesToSave("output").build());
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 3);
        ComputationGraph merged = peft.mergeAndUnload();
        for (Layer l : merged.getLayers()) {
            Class<?> c = l.conf().getLayer().getClass();
            assertTrue(c == DenseLayer.class || c == OutputLayer.class, "stock layer, got " + c);
        }
        assertEquals(base.numParams(), merged.numParams());
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray expected = peft.graph().outputSingle(x);
        INDArray actual = merged.outputSingle(x);
        double rel = maxAbsDiff(expected, actual) / Math.max(1e-12, expected.amaxNumber().doubleValue());
        assertTrue(rel <= 1e-5, "relative difference " + rel);
    }

    /** LoRA r 4 on dense0 and dense2 of {@code base}, trained three steps. */
    private static PeftModel trainedOnDense0And2(ComputationGraph base) {
        PeftModel peft = Peft.wrap(base, lora("dense0", "dense2"));
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 3);
        return peft;
    }

    /**
     * Switching away to an adapter of another layout and back rebuilds the graph twice; the adapter's
     * optimizer state (here Nesterovs' momentum, which no fit of the rebuilt graph has created yet)
     * comes back with it instead of restarting from zero.
     */
    @Test
    void switchingLayoutsAndBackKeepsTheOptimizerState() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Nesterovs(1e-2, 0.9), 42, 8, 16, 4);
        PeftModel peft = Peft.wrap(base, lora("dense0", "dense2"));
        peft.addAdapter("wider", LoraConfig.builder().rank(6).alpha(12).targetModules("dense0", "dense2").build());
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 3);
        INDArray momentum = peft.graph().getUpdater().getStateViewArray().dup();
        assertTrue(momentum.amaxNumber().doubleValue() > 0, "three steps leave a momentum");

        peft.setAdapter("wider");
        peft.setAdapter(PeftModel.DEFAULT_ADAPTER);

        assertEquals(momentum, peft.graph().getUpdater().getStateViewArray());
    }

    @Test
    void disableAdapterGivesExactBaseOutputsInsideTheScope() {
        ComputationGraph base = baseMlp();
        PeftModel peft = trainedOnDense0And2(base);
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray adapted = peft.graph().outputSingle(x);
        var off = peft.disableAdapter();
        try (off) {
            assertEquals(base.outputSingle(x), peft.graph().outputSingle(x));
        }
        assertEquals(adapted, peft.graph().outputSingle(x));
    }

    /**
     * What would break "exactly the base outputs" in a disableAdapter() scope is refused: disabling
     * while merged, merging inside the scope, and switching to an adapter of another layout inside it
     * (it would build enabled layers). Switching within one layout keeps the scope. The default adapter,
     * which saveAdapter writes at the directory's root, cannot be deleted.
     */
    @Test
    void disableAdapterScopeAndDefaultAdapterRefuseWhatWouldBreakThem() {
        ComputationGraph base = baseMlp();
        PeftModel peft = trainedOnDense0And2(base);
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        peft.addAdapter("same", lora("dense0", "dense2"));
        peft.addAdapter("wider", LoraConfig.builder().rank(6).alpha(12).targetModules("dense0", "dense2").build());

        peft.merge();
        IllegalStateException merged = assertThrows(IllegalStateException.class, peft::disableAdapter);
        assertEquals("adapters are merged, so disabling them would not restore the base outputs; call unmerge() first",
                merged.getMessage());
        peft.unmerge();

        var off = peft.disableAdapter();
        try (off) {
            assertEquals("merge() inside a disableAdapter() scope would merge nothing; close the scope first",
                    assertThrows(IllegalStateException.class, peft::merge).getMessage());
            assertEquals("adapter \"wider\" has another layout, so switching to it builds new layers that a "
                    + "disableAdapter() scope does not cover; close the scope first",
                    assertThrows(IllegalStateException.class, () -> peft.setAdapter("wider")).getMessage());
            assertEquals(PeftModel.DEFAULT_ADAPTER, peft.activeAdapter());
            peft.setAdapter("same");
            assertEquals(base.outputSingle(x), peft.graph().outputSingle(x), "same layout: still the base outputs");
            peft.setAdapter(PeftModel.DEFAULT_ADAPTER);
        }
        peft.setAdapter("wider");
        assertEquals("adapter \"default\" cannot be deleted: saveAdapter writes it at the directory's root, where "
                + "Peft.load looks for it",
                assertThrows(IllegalArgumentException.class, () -> peft.deleteAdapter(PeftModel.DEFAULT_ADAPTER)).getMessage());
    }

    @Test
    void userGraphIsNeverModified() {
        ComputationGraph base = baseMlp();
        INDArray params = base.params().dup();
        String json = base.getConfiguration().toJson();
        PeftModel peft = Peft.wrap(base, lora("dense1", "output"));
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 3);
        peft.merge();
        peft.mergeAndUnload();
        peft.unmerge();
        assertEquals(params, base.params());
        assertEquals(json, base.getConfiguration().toJson());
        assertNotSameArrays(base, peft);
    }

    private static void assertNotSameArrays(ComputationGraph base, PeftModel peft) {
        for (FrozenBaseLayer f : peft.adaptedLayers().values()) {
            String baseName = f.baseLayerName();
            assertFalse(base.getLayer(baseName).getParam("W") == f.frozenWeight(), "frozen weight is a copy");
        }
    }

    @Test
    void cloneJsonRoundTripAndModelSerializerKeepOutputs(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(baseMlp(), LoraConfig.builder().rank(4).alpha(8).dropout(0.1)
                .targetModules("dense1", "output").build());
        train(peft, TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4), 3);
        ComputationGraph g = peft.graph();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray expected = g.outputSingle(x);

        assertEquals(expected, g.clone().outputSingle(x), "clone()");

        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        fromJson.init(g.params().dup(), false);
        assertEquals(expected, fromJson.outputSingle(x), "configuration JSON round trip");

        File f = dir.resolve("model.zip").toFile();
        ModelSerializer.writeModel(g, f, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(f, true);
        assertEquals(expected, restored.outputSingle(x), "ModelSerializer");
        assertEquals(g.getUpdater().getStateViewArray(), restored.getUpdater().getStateViewArray());
        restored.fit(TinyGraphs.classification(DataType.FLOAT, 6, 8, 8, 4));
    }

    @Test
    void multiLayerNetworkIsAcceptedThroughItsGraphForm() {
        org.deeplearning4j.nn.multilayer.MultiLayerNetwork mln = new org.deeplearning4j.nn.multilayer.MultiLayerNetwork(
                new org.deeplearning4j.nn.conf.NeuralNetConfiguration.Builder().seed(1).updater(new Adam(1e-2)).list()
                        .layer(new DenseLayer.Builder().nIn(8).nOut(16).activation(org.nd4j.linalg.activations.Activation.TANH).build())
                        .layer(new OutputLayer.Builder().nIn(16).nOut(4).activation(org.nd4j.linalg.activations.Activation.SOFTMAX).build())
                        .build());
        mln.init();
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 1, 16, 8, 4).getFeatures();
        String first = TinyGraphs.layerNames(mln.toComputationGraph()).get(0);
        PeftModel peft = Peft.wrap(mln, LoraConfig.builder().rank(2).targetModules(TargetModules.ALL_LINEAR).build());
        assertTrue(peft.adaptedLayers().containsKey(first), "targets " + peft.adaptedLayers().keySet());
        assertTrue(maxAbsDiff(mln.output(x), peft.graph().outputSingle(x)) <= 1e-6);
    }
}
