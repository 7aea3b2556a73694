package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraAdapters.Combination;

/** Weighted combinations of adapters, checked through the weight change they produce. */
class LoraAdaptersTest {

    private static final LoraConfig CFG = LoraConfig.builder().rank(3).alpha(6).targetModules("dense1", "dense2").build();

    /** A model with two trained adapters "default" and "other" of ranks 3 and 2. */
    private static PeftModel twoAdapters() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(5e-2), 42, 8, 16, 4);
        PeftModel peft = Peft.wrap(base, CFG);
        for (int i = 0; i < 4; i++) {
            peft.graph().fit(TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4));
        }
        peft.addAdapter("other", CFG.toBuilder().rank(2).alpha(3).build());
        peft.setAdapter("other");
        for (int i = 0; i < 4; i++) {
            peft.graph().fit(TinyGraphs.classification(DataType.FLOAT, 6, 32, 8, 4));
        }
        peft.setAdapter("default");
        return peft;
    }

    /** ΔW of adapter {@code name} on layer dense1, as double. */
    private static INDArray delta(PeftModel peft, String name) {
        Map<String, INDArray> p = peft.adapterParameters(name).get("dense1");
        LoraConfig c = (LoraConfig) peft.adapterConfig(name);
        return p.get(LoraDenseLayer.LORA_A).castTo(DataType.DOUBLE).mmul(p.get(LoraDenseLayer.LORA_B).castTo(DataType.DOUBLE))
                .muli(c.scaling());
    }

    private static double maxDiff(INDArray a, INDArray b) {
        return a.sub(b).amaxNumber().doubleValue();
    }

    @Test
    void aWeightThatIsNotAFiniteNumberIsRefusedByItsIndex() {
        PeftModel peft = twoAdapters();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraAdapters.addWeightedAdapter(
                peft, List.of("default", "other"), new double[] {0.5, Double.NaN}, Combination.CAT, "cat", 0));
        assertEquals("weight 1 (of adapter \"other\") is NaN; weights must be finite numbers", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> LoraAdapters.addWeightedAdapter(
                peft, List.of("default"), new double[] {Double.POSITIVE_INFINITY}, Combination.SVD, "svd", 2));
        assertEquals(List.of("default", "other"), peft.adapterNames());
    }

    /** Sources are compared by the layers they adapt, not by how their configs name them. */
    @Test
    void sourcesNamingTheSameLayersDifferentlyCombineAndOtherLayersAreRefused() {
        PeftModel peft = twoAdapters();
        peft.addAdapter("regex", LoraConfig.builder().rank(3).alpha(6).targetModulesRegex("dense[12]").build());
        LoraAdapters.addWeightedAdapter(peft, List.of("default", "regex"), new double[] {1, 1}, Combination.LINEAR, "sum", 0);
        assertEquals(peft.adapterParameters("default").keySet(), peft.adapterParameters("sum").keySet());

        peft.addAdapter("one", LoraConfig.builder().rank(3).alpha(6).targetModules("dense1").build());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraAdapters.addWeightedAdapter(
                peft, List.of("default", "one"), new double[] {1, 1}, Combination.CAT, "cat", 0));
        assertEquals("adapters \"default\" and \"one\" adapt different layers ([dense1, dense2] vs [dense1])",
                e.getMessage());
    }

    @Test
    void catAddsTheWeightedUpdatesExactly() {
        PeftModel peft = twoAdapters();
        LoraAdapters.addWeightedAdapter(peft, List.of("default", "other"), new double[] {0.7, 0.4}, Combination.CAT, "cat", 0);
        assertEquals(5, ((LoraConfig) peft.adapterConfig("cat")).rank());
        INDArray expected = delta(peft, "default").mul(0.7).add(delta(peft, "other").mul(0.4));
        assertTrue(maxDiff(expected, delta(peft, "cat")) < 1e-5, "max diff " + maxDiff(expected, delta(peft, "cat")));
    }

    @Test
    void linearOfOneAdapterWithWeightOneKeepsItsUpdate() {
        PeftModel peft = twoAdapters();
        LoraAdapters.addWeightedAdapter(peft, List.of("default"), new double[] {1.0}, Combination.LINEAR, "same", 0);
        assertTrue(maxDiff(delta(peft, "default"), delta(peft, "same")) < 1e-5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraAdapters.addWeightedAdapter(
                peft, List.of("default", "other"), new double[] {1, 1}, Combination.LINEAR, "x", 0));
        assertTrue(e.getMessage().contains("LINEAR needs sources of equal rank; got ranks [3, 2]"), e.getMessage());
    }

    @Test
    void svdIsExactAtFullRankAndTheBestApproximationBelowIt() {
        PeftModel peft = twoAdapters();
        LoraAdapters.addWeightedAdapter(peft, List.of("default", "other"), new double[] {1.0, -0.5}, Combination.SVD, "svd5", 5);
        INDArray expected = delta(peft, "default").sub(delta(peft, "other").mul(0.5));
        assertTrue(maxDiff(expected, delta(peft, "svd5")) < 1e-4, "rank 5 holds the whole sum");

        LoraAdapters.addWeightedAdapter(peft, List.of("default", "other"), new double[] {1.0, -0.5}, Combination.SVD, "svd1", 1);
        double err = expected.sub(delta(peft, "svd1")).norm2Number().doubleValue();
        // Eckart–Young: the error of the best rank-1 approximation is √(σ2² + σ3² + …) of ΔW
        INDArray m = expected.dup('f');
        INDArray s = org.nd4j.linalg.factory.Nd4j.create(DataType.DOUBLE, 16);
        org.nd4j.linalg.factory.Nd4j.getBlasWrapper().lapack().gesvd(m, s, null, null);
        double tail = Math.sqrt(s.mul(s).sumNumber().doubleValue() - s.getDouble(0) * s.getDouble(0));
        assertEquals(tail, err, 1e-4 * Math.max(1, tail));
    }

    @Test
    void combinedAdapterRunsAfterSwitching() {
        PeftModel peft = twoAdapters();
        LoraAdapters.addWeightedAdapter(peft, List.of("default", "other"), new double[] {1, 1}, Combination.CAT, "both", 0);
        peft.setAdapter("both");
        assertEquals("both", peft.activeAdapter());
        peft.merge();
        INDArray merged = peft.adaptedLayers().get("dense1").effectiveWeight().castTo(DataType.DOUBLE);
        INDArray base = peft.adaptedLayers().get("dense1").frozenWeight().castTo(DataType.DOUBLE);
        INDArray expected = delta(peft, "default").add(delta(peft, "other"));
        assertTrue(maxDiff(merged.sub(base), expected) < 1e-5);
    }

    @Test
    void doraSourcesAreRefusedNamingTheAdapter() {
        PeftModel peft = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(5e-2), 42, 8, 16, 4),
                CFG.toBuilder().useDora(true).build());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraAdapters.addWeightedAdapter(
                peft, List.of("default"), new double[] {1}, Combination.LINEAR, "x", 0));
        assertTrue(e.getMessage().startsWith("adapter \"default\" is DoRA; weighted combinations take plain LoRA"),
                e.getMessage());
        assertEquals(List.of("default"), peft.adapterNames());
    }

    /** ΔW of adapter {@code name} on {@code layer} in the layer's own layout, from the layer's merged weight. */
    private static INDArray update(PeftModel peft, String name, String layer) {
        peft.setAdapter(name);
        org.peft4j.core.FrozenBaseLayer f = peft.adaptedLayers().get(layer);
        INDArray w = f.frozenWeight().castTo(DataType.DOUBLE);
        return f.mergedWeight(w, peft.graph().getLayer(layer).paramTable()).sub(w);
    }

    /** CAT and full-rank SVD of a convolution's and an embedding's adapters (rank 3 and 2) add their updates. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"conv", "embed"})
    void convolutionAndEmbeddingAdaptersCombineTheirUpdates(String layer) {
        boolean conv = layer.equals("conv");
        ComputationGraph base = conv
                ? KindGraphs.conv2d(DataType.DOUBLE, new Adam(1e-2), 3, org.deeplearning4j.nn.conf.CNN2DFormat.NCHW)
                : KindGraphs.embedding(DataType.DOUBLE, new Adam(1e-2), 3, true);
        LoraConfig cfg = LoraConfig.builder().rank(3).alpha(6).targetModules(layer).build();
        PeftModel peft = Peft.wrap(base, cfg);
        peft.addAdapter("other", cfg.toBuilder().rank(2).alpha(3).build());
        org.nd4j.linalg.factory.Nd4j.getRandom().setSeed(4);
        for (String name : List.of("other", "default")) {
            peft.setAdapter(name);
            for (INDArray p : peft.graph().getLayer(layer).paramTable().values()) {
                p.assign(org.nd4j.linalg.factory.Nd4j.randn(DataType.DOUBLE, p.shape()));
            }
        }
        INDArray expected = update(peft, "default", layer).mul(0.7).add(update(peft, "other", layer).mul(0.4));
        LoraAdapters.addWeightedAdapter(peft, List.of("default", "other"), new double[] {0.7, 0.4}, Combination.CAT,
                "cat", 0);
        assertTrue(maxDiff(expected, update(peft, "cat", layer)) < 1e-10, layer + " CAT");
        LoraAdapters.addWeightedAdapter(peft, List.of("default", "other"), new double[] {0.7, 0.4}, Combination.SVD,
                "svd", 4);
        assertTrue(maxDiff(expected, update(peft, "svd", layer)) < 1e-10, layer + " SVD at full rank");
    }
}
