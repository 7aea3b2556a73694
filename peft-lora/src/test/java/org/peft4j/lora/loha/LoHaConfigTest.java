package org.peft4j.lora.loha;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.lora.lycoris.LycorisLayer;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FamilyGraphs;

/**
 * {@link LoHaConfig}'s builder refuses what it cannot honour at once, with a message naming the
 * option; configs are values that round-trip through {@code adapter_config.json}; the factory reads
 * PEFT's files, refuses options it cannot honour naming the key (and leaves the base model alone),
 * and the factors have PEFT's shapes on every kind of target.
 */
class LoHaConfigTest {

    private static <T extends Throwable> void rejects(Class<T> type, String phrase, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage().contains(phrase), "message should contain \"" + phrase + "\": " + e.getMessage());
    }

    @Test
    void settersRefuseWhatLoHaCannotHonour() {
        rejects(IllegalArgumentException.class, "rank must be positive; got 0", () -> LoHaConfig.builder().rank(0));
        rejects(IllegalArgumentException.class, "alpha must be positive and finite; got NaN",
                () -> LoHaConfig.builder().alpha(Double.NaN));
        rejects(IllegalArgumentException.class, "alpha must be positive and finite; got Infinity",
                () -> LoHaConfig.builder().alpha(Double.POSITIVE_INFINITY));
        rejects(IllegalArgumentException.class, "rankDropout must be in [0, 1); got 1.0",
                () -> LoHaConfig.builder().rankDropout(1.0));
        rejects(IllegalArgumentException.class, "moduleDropout must be in [0, 1); got -0.5",
                () -> LoHaConfig.builder().moduleDropout(-0.5));
        rejects(IllegalStateException.class, "targetModules must be set", () -> LoHaConfig.builder().build());
        rejects(IllegalArgumentException.class, "targeting of scope TARGETS_AND_BIAS given to a config of scope TARGETS",
                () -> LoHaConfig.builder().targeting(org.peft4j.core.Targeting.builder(org.peft4j.core.Targeting.Scope.TARGETS_AND_BIAS)
                        .targetModules(org.peft4j.core.TargetModules.names("a")).build()));
    }

    @Test
    void configsAreValuesThatShowEveryField() {
        LoHaConfig a = LoHaConfig.builder().rank(4).alpha(2).rankDropout(0.1).moduleDropout(0.2).useEffectiveConv2d(true)
                .targetModules("q").modulesToSave("head").build();
        assertEquals(a, a.toBuilder().build());
        assertEquals(a.hashCode(), a.toBuilder().build().hashCode());
        assertNotEquals(a, a.toBuilder().alpha(3).build());
        assertNotEquals(a.layoutSignature(), a.toBuilder().rank(5).build().layoutSignature());
        assertEquals(a.layoutSignature(), a.toBuilder().alpha(3).rankDropout(0).build().layoutSignature(),
                "alpha and dropout do not change the layout");
        assertEquals("LoHaConfig(rank=4, alpha=2.0, rankDropout=0.1, moduleDropout=0.2, useEffectiveConv2d=true, "
                + "initWeights=true, targetModules=[q], targetTypes=[], modulesToSave=[head])", a.toString());
        assertEquals(0.5, a.scaling());
    }

    @Test
    void adapterConfigRoundTripsThroughTheFactory() {
        for (LoHaConfig c : List.of(
                LoHaConfig.builder().targetModules("q", "v").build(),
                LoHaConfig.builder().rank(3).alpha(1.5).rankDropout(0.25).moduleDropout(0.1).useEffectiveConv2d(true)
                        .initWeights(false).rankPattern("block0\\.v", 4).alphaPattern("v", 16)
                        .targetModulesRegex("block\\d+\\.(q|v)").excludeModules("block0.q")
                        .modulesToSave("head").build())) {
            Map<String, Object> json = c.toAdapterConfig();
            assertEquals("LOHA", json.get("peft_type"));
            assertFalse(json.containsKey("bias"), "PEFT's LoHaConfig has no bias key");
            PeftConfig back = new LoHaConfigFactory().fromAdapterConfig(
                    PeftJson.parseObject(PeftJson.write(json).getBytes(), "adapter_config.json"));
            assertEquals(c, back);
        }
    }

    @Test
    void peftsFileReadsWithItsValues() throws IOException {
        LoHaConfig c = (LoHaConfig) new LoHaConfigFactory().fromAdapterConfig(FamilyCase.of("loha/conv2d_effective")
                .adapterConfig());
        assertEquals(LoHaConfig.builder().rank(2).alpha(2).useEffectiveConv2d(true).targetModules("conv").build(), c);
    }

    @Test
    void factoryRefusesOptionsItCannotHonourNamingTheKey() throws IOException {
        Map<String, Object> peft = FamilyCase.of("loha/dense").adapterConfig();
        for (Object[] bad : new Object[][] {
                {"rank_pattern", Map.of("dense", "4"), "\"rank_pattern\" value of \"dense\" must be an integer; got 4 (String)"},
                {"rank_pattern", List.of(4), "\"rank_pattern\" must be an object of pattern to value"},
                {"alpha_pattern", Map.of("dense[", 4.0), "alphaPattern: key \"dense[\" is not a regular expression"},
                {"layers_to_transform", List.of(0), "\"layers_to_transform\""},
                {"init_weights", "lycoris", "\"init_weights\" must be true or false"},
                {"r", 0, "rank must be positive; got 0"},
                {"r", "8", "\"r\" must be an integer"},
                {"rank_dropout", 1.5, "rankDropout must be in [0, 1); got 1.5"}}) {
            Map<String, Object> json = new TreeMap<>(peft);
            json.put((String) bad[0], bad[1]);
            rejects(AdapterFormatException.class, (String) bad[2], () -> new LoHaConfigFactory().fromAdapterConfig(json));
        }
    }

    @Test
    void aRefusedFileLeavesTheBaseModelAlone(@TempDir Path dir) throws IOException {
        FamilyCase c = FamilyCase.of("loha/dense");
        ComputationGraph base = c.base(DataType.FLOAT);
        INDArray params = base.params().dup();
        String conf = base.getConfiguration().toJson();
        for (Object[] change : new Object[][] {
                {"init_weights", "lycoris", AdapterFormatException.class, "\"init_weights\" must be true or false"},
                {"rank_pattern", Map.of("dense", 4), AdapterFormatException.class, "the config does not match its weights"},
                {"rank_pattern", Map.of("dense", 1), IncompatibleAdapterException.class,
                        "base_model.model.dense.hada_w1_a has shape [4, 2], expected [4, 1]"}}) {
            for (String f : new String[] {"adapter_config.json", "adapter_model.safetensors"}) {
                Files.copy(c.dir().resolve(f), dir.resolve(f), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
            Map<String, Object> json = c.adapterConfig();
            json.put((String) change[0], change[1]);
            Files.writeString(dir.resolve("adapter_config.json"), PeftJson.write(json));
            @SuppressWarnings("unchecked")
            Class<? extends Exception> type = (Class<? extends Exception>) change[2];
            rejects(type, (String) change[3], () -> Peft.load(base, dir));
            assertEquals(params, base.params());
            assertEquals(conf, base.getConfiguration().toJson());
        }
    }

    private static Map<String, long[]> shapes(PeftModel peft, String layer) {
        return ((LycorisLayer) peft.graph().getLayer(layer).conf().getLayer()).adapter().paramShapes();
    }

    @Test
    void factorsHavePeftsShapesOnEveryKindOfTarget() {
        PeftModel conv2d = Peft.wrap(FamilyGraphs.cnn2d(DataType.FLOAT, new Adam(1e-3), 1),
                LoHaConfig.builder().rank(2).useEffectiveConv2d(true).targetModules("pre", "conv", "conv1x1").build());
        // pre: 2 -> 3 channels, 2×2; conv: 3 -> 4, 3×3; conv1x1: 4 -> 4, where the effective form does not apply
        assertArrayEquals(new long[] {2, 2, 2, 2}, shapes(conv2d, "pre").get("hadaT1"));
        assertArrayEquals(new long[] {2, 4}, shapes(conv2d, "conv").get("hadaW1a"));
        assertArrayEquals(new long[] {2, 3}, shapes(conv2d, "conv").get("hadaW2b"));
        assertEquals(List.of("hadaW1a", "hadaW1b", "hadaW2a", "hadaW2b"), List.copyOf(shapes(conv2d, "conv1x1").keySet()));
        assertArrayEquals(new long[] {4, 2}, shapes(conv2d, "conv1x1").get("hadaW1a"));
        assertArrayEquals(new long[] {2, 4}, shapes(conv2d, "conv1x1").get("hadaW1b"));

        PeftModel conv1d = Peft.wrap(FamilyGraphs.cnn1d(DataType.FLOAT, new Adam(1e-3), 1),
                LoHaConfig.builder().rank(2).useEffectiveConv2d(true).targetModules("conv").build());
        assertArrayEquals(new long[] {2, 2, 3, 1}, shapes(conv1d, "conv").get("hadaT2"), "PEFT's 4-d core for Conv1d");
        PeftModel flat1d = Peft.wrap(FamilyGraphs.cnn1d(DataType.FLOAT, new Adam(1e-3), 1),
                LoHaConfig.builder().rank(2).targetModules("conv").build());
        assertArrayEquals(new long[] {2, 9}, shapes(flat1d, "conv").get("hadaW2b"), "[r, in·k]");
    }
}
