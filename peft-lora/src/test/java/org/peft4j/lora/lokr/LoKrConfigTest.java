package org.peft4j.lora.lokr;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.lycoris.LycorisLayer;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FamilyGraphs;

/**
 * {@link LoKrConfig}'s builder refuses what it cannot honour at once, with a message naming the
 * option; configs are values that round-trip through {@code adapter_config.json} (the three values
 * of {@code init_weights}, {@code rank_dropout_scale} written only when set); the factory reads
 * PEFT's files, takes any {@code decompose_factor} as PEFT does and refuses options it cannot
 * honour naming the key; the factors have PEFT's shapes and follow its full/low-rank rules.
 */
class LoKrConfigTest {

    private static <T extends Throwable> void rejects(Class<T> type, String phrase, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage().contains(phrase), "message should contain \"" + phrase + "\": " + e.getMessage());
    }

    @Test
    void settersRefuseWhatLoKrCannotHonour() {
        rejects(IllegalArgumentException.class, "rank must be positive; got -1", () -> LoKrConfig.builder().rank(-1));
        rejects(IllegalArgumentException.class, "alpha must be positive and finite; got 0.0", () -> LoKrConfig.builder().alpha(0));
        rejects(IllegalArgumentException.class, "rankDropout must be in [0, 1); got 1.0", () -> LoKrConfig.builder().rankDropout(1));
        rejects(IllegalArgumentException.class, "moduleDropout must be in [0, 1); got 2.0",
                () -> LoKrConfig.builder().moduleDropout(2));
        rejects(IllegalArgumentException.class, "decomposeFactor must be -1 (split near the square root) or a positive "
                + "factor; got 0", () -> LoKrConfig.builder().decomposeFactor(0));
        rejects(IllegalArgumentException.class, "got -2", () -> LoKrConfig.builder().decomposeFactor(-2));
        rejects(NullPointerException.class, "init must not be null", () -> LoKrConfig.builder().init(null));
        rejects(IllegalStateException.class, "targetModules must be set", () -> LoKrConfig.builder().build());
    }

    @Test
    void configsAreValuesThatShowEveryField() {
        LoKrConfig a = LoKrConfig.builder().rank(4).alpha(2).rankDropout(0.1).rankDropoutScale(true).moduleDropout(0.2)
                .decomposeBoth(true).decomposeFactor(8).init(LoKrInit.ZERO_W2).targetModules("q").build();
        assertEquals(a, a.toBuilder().build());
        assertEquals(a.hashCode(), a.toBuilder().build().hashCode());
        assertNotEquals(a, a.toBuilder().init(LoKrInit.ZERO_W1).build());
        assertNotEquals(a.layoutSignature(), a.toBuilder().decomposeFactor(4).build().layoutSignature());
        assertNotEquals(a.layoutSignature(), a.toBuilder().decomposeBoth(false).build().layoutSignature());
        assertEquals(a.layoutSignature(), a.toBuilder().alpha(9).init(LoKrInit.RANDOM).build().layoutSignature());
        assertEquals("LoKrConfig(rank=4, alpha=2.0, rankDropout=0.1, rankDropoutScale=true, moduleDropout=0.2, "
                + "useEffectiveConv2d=false, decomposeBoth=true, decomposeFactor=8, init=ZERO_W2, targetModules=[q], "
                + "targetTypes=[], modulesToSave=[])", a.toString());
    }

    @Test
    void adapterConfigRoundTripsThroughTheFactory() {
        for (LoKrConfig c : List.of(
                LoKrConfig.builder().targetModules("q", "v").build(),
                LoKrConfig.builder().rank(3).alpha(1.5).rankDropout(0.25).rankDropoutScale(true).moduleDropout(0.1)
                        .useEffectiveConv2d(true).decomposeBoth(true).decomposeFactor(4).init(LoKrInit.ZERO_W2)
                        .rankPattern("q", 2).alphaPattern("block1\\..*", 0.5)
                        .targetModulesRegex("block\\d+\\.(q|v)").modulesToSave("head").build(),
                LoKrConfig.builder().init(LoKrInit.RANDOM).targetModules("q").build())) {
            Map<String, Object> json = c.toAdapterConfig();
            assertEquals("LOKR", json.get("peft_type"));
            assertEquals(c.init().jsonValue(), json.get("init_weights"));
            assertEquals(c.rankDropoutScale(), json.containsKey("rank_dropout_scale"),
                    "rank_dropout_scale is written only when true: PEFT 0.13 refuses the key");
            assertFalse(json.containsKey("bias"), "PEFT's LoKrConfig has no bias key");
            PeftConfig back = new LoKrConfigFactory().fromAdapterConfig(
                    PeftJson.parseObject(PeftJson.write(json).getBytes(), "adapter_config.json"));
            assertEquals(c, back);
        }
    }

    @Test
    void peftsFileReadsWithItsValues() throws IOException {
        LoKrConfig c = (LoKrConfig) new LoKrConfigFactory().fromAdapterConfig(FamilyCase.of("lokr/dense_decompose_both")
                .adapterConfig());
        assertEquals(LoKrConfig.builder().rank(2).alpha(3).decomposeBoth(true).decomposeFactor(5).targetModules("dense")
                .build(), c);
    }

    @Test
    void factoryRefusesOptionsItCannotHonourNamingTheKey() throws IOException {
        Map<String, Object> peft = FamilyCase.of("lokr/dense").adapterConfig();
        for (Object[] bad : new Object[][] {
                {"rank_pattern", Map.of("dense", 0), "rankPattern \"dense\": rank must be positive; got 0"},
                {"alpha_pattern", Map.of("dense", true), "\"alpha_pattern\" value of \"dense\" must be a number"},
                {"layers_to_transform", 0, "\"layers_to_transform\""},
                {"init_weights", "gaussian", "init_weights must be true, false or \"lycoris\"; got gaussian"},
                {"decompose_factor", 2.5, "\"decompose_factor\" must be an integer"},
                {"decompose_both", "yes", "\"decompose_both\" must be true or false"}}) {
            Map<String, Object> json = new TreeMap<>(peft);
            json.put((String) bad[0], bad[1]);
            rejects(AdapterFormatException.class, (String) bad[2], () -> new LoKrConfigFactory().fromAdapterConfig(json));
        }
    }

    private static Map<String, long[]> shapes(PeftModel peft, String layer) {
        return ((LycorisLayer) peft.graph().getLayer(layer).conf().getLayer()).adapter().paramShapes();
    }

    @Test
    void aDecomposeFactorPeftWouldTakeSplitsNothingAsInPeft() throws IOException {
        Map<String, Object> json = new TreeMap<>(FamilyCase.of("lokr/dense").adapterConfig());
        json.put("decompose_factor", 0);
        json.put("target_modules", List.of("dense1"));
        LoKrConfig c = (LoKrConfig) new LoKrConfigFactory().fromAdapterConfig(json);
        assertEquals(0, c.decomposeFactor());
        PeftModel peft = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 1, 8, 16, 4), c);
        // (1, 16) both ways; r = 2 < 16 / 2, so w2 is a product
        assertArrayEquals(new long[] {1, 1}, shapes(peft, "dense1").get("lokrW1"));
        assertArrayEquals(new long[] {16, 2}, shapes(peft, "dense1").get("lokrW2a"));
        assertArrayEquals(new long[] {2, 16}, shapes(peft, "dense1").get("lokrW2b"));
    }

    @Test
    void factorsFollowPeftsFullAndLowRankRules() {
        // dense1 16 -> 16 splits (4, 4) both ways: w2 is full iff r >= 4 / 2, w1 (with decomposeBoth) likewise
        PeftModel full = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 1, 8, 16, 4),
                LoKrConfig.builder().rank(2).decomposeBoth(true).targetModules("dense1").build());
        assertEquals(List.of("lokrW1", "lokrW2"), List.copyOf(shapes(full, "dense1").keySet()));
        PeftModel low = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 1, 8, 16, 4),
                LoKrConfig.builder().rank(1).decomposeBoth(true).targetModules("dense1").build());
        assertEquals(List.of("lokrW1a", "lokrW1b", "lokrW2a", "lokrW2b"), List.copyOf(shapes(low, "dense1").keySet()));

        // conv: 3 -> 4 channels, 3×3: in (1, 3), out (2, 2); w2 full iff r >= 1.5
        PeftModel conv = Peft.wrap(FamilyGraphs.cnn2d(DataType.FLOAT, new Adam(1e-3), 1),
                LoKrConfig.builder().rank(2).targetModules("conv").build());
        assertArrayEquals(new long[] {2, 3, 3, 3}, shapes(conv, "conv").get("lokrW2"));
        PeftModel effective = Peft.wrap(FamilyGraphs.cnn2d(DataType.FLOAT, new Adam(1e-3), 1),
                LoKrConfig.builder().rank(1).useEffectiveConv2d(true).targetModules("conv").build());
        assertArrayEquals(new long[] {1, 1, 3, 3}, shapes(effective, "conv").get("lokrT2"));
        assertArrayEquals(new long[] {1, 2}, shapes(effective, "conv").get("lokrW2a"));
        assertArrayEquals(new long[] {1, 3}, shapes(effective, "conv").get("lokrW2b"));
        PeftModel flat = Peft.wrap(FamilyGraphs.cnn2d(DataType.FLOAT, new Adam(1e-3), 1),
                LoKrConfig.builder().rank(1).targetModules("conv").build());
        assertArrayEquals(new long[] {1, 27}, shapes(flat, "conv").get("lokrW2b"), "[r, inN·kH·kW]");
        PeftModel conv1d = Peft.wrap(FamilyGraphs.cnn1d(DataType.FLOAT, new Adam(1e-3), 1),
                LoKrConfig.builder().rank(2).targetModules("conv").build());
        assertArrayEquals(new long[] {2, 3, 3}, shapes(conv1d, "conv").get("lokrW2"), "PEFT's 3-d lokr_w2 for Conv1d");
    }
}
