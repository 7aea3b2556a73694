package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyGraphs;

/**
 * Per-layer ranks and alphas ({@code rank_pattern}, {@code alpha_pattern}) with Hugging Face
 * PEFT's key matching, saved in and read back from {@code adapter_config.json}.
 */
class LoraPatternTest {

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    private static LoraConfig patterned() {
        return LoraConfig.builder().rank(4).alpha(8).targetModules(TargetModules.ALL_LINEAR)
                .rankPattern("dense[12]", 2).rankPattern("dense2", 6).alphaPattern("dense0", 32).build();
    }

    @Test
    void patternKeysMatchAtADotBoundaryAndTheFirstSortedKeyWins() {
        LoraConfig c = patterned();
        assertEquals(2, c.rankFor("dense1"));
        assertEquals(6, c.rankFor("dense2"), "\"dense2\" sorts before \"dense[12]\", so it is tried first");
        assertEquals(4, c.rankFor("dense0"));
        assertEquals(2, c.rankFor("block3.dense1"), "a key matches the end of the name at a '.'");
        assertEquals(4, c.rankFor("xdense1"), "but not inside a segment");
        assertEquals(32.0 / 4, c.scalingFor("dense0"), 0.0);
        assertEquals(8.0 / 2, c.scalingFor("dense1"), 0.0);
        LoraConfig rs = c.toBuilder().useRsLora(true).build();
        assertEquals(8.0 / Math.sqrt(2), rs.scalingFor("dense1"), 1e-15);
        assertEquals(c, c.toBuilder().build());
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.builder().rankPattern("a", 0));
        assertThrows(IllegalArgumentException.class, () -> LoraConfig.builder().rankPattern("a", 2).rankPattern("a", 3));
        IllegalArgumentException re2 = assertThrows(IllegalArgumentException.class,
                () -> LoraConfig.builder().alphaPattern("(a)\\1", 2));
        assertTrue(re2.getMessage().contains("\"(a)\\1\""), re2.getMessage());
    }

    @Test
    void twoModulesGetDifferentRanksAndScalings() {
        PeftModel peft = Peft.wrap(base(), patterned());
        Map<String, Map<String, INDArray>> p = peft.adapterParameters(PeftModel.DEFAULT_ADAPTER);
        assertArrayEquals(new long[] {8, 4}, p.get("dense0").get(LoraDenseLayer.LORA_A).shape());
        assertArrayEquals(new long[] {16, 2}, p.get("dense1").get(LoraDenseLayer.LORA_A).shape());
        assertArrayEquals(new long[] {6, 16}, p.get("dense2").get(LoraDenseLayer.LORA_B).shape());
        LoraDenseLayer dense0 = (LoraDenseLayer) peft.adaptedLayers().get("dense0");
        assertEquals(8.0, dense0.scaling(), 0.0);
        assertEquals(4.0, ((LoraDenseLayer) peft.adaptedLayers().get("dense1")).scaling(), 0.0);
    }

    @Test
    void patternsRoundTripThroughTheAdapterFile(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(base(), patterned());
        DataSet d = TinyGraphs.classification(DataType.FLOAT, 3, 32, 8, 4);
        for (int i = 0; i < 5; i++) {
            peft.graph().fit(d);
        }
        peft.saveAdapter(dir);
        Map<String, Object> json = PeftJson.parseObject(Files.readString(dir.resolve("adapter_config.json"),
                StandardCharsets.UTF_8).getBytes(StandardCharsets.UTF_8), "test");
        assertEquals(Map.of("dense2", 6, "dense[12]", 2), json.get("rank_pattern"));
        assertEquals(Map.of("dense0", 32.0), json.get("alpha_pattern"));
        PeftModel loaded = Peft.load(base(), dir);
        assertEquals(patterned(), loaded.config());
        assertEquals(peft.graph().outputSingle(d.getFeatures()), loaded.graph().outputSingle(d.getFeatures()));

        Path config = dir.resolve("adapter_config.json");
        String good = Files.readString(config, StandardCharsets.UTF_8);
        Files.writeString(config, good.replace("\"dense[12]\": 2", "\"dense[12]\": 2.5"));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertTrue(e.getMessage().contains("\"rank_pattern\" value of \"dense[12]\" must be an integer"), e.getMessage());
    }
}
