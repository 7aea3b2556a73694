package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.Peft;
import org.peft4j.core.testing.TinyGraphs;

/**
 * LoRA configs read from files: values the float arithmetic cannot carry are refused naming the key,
 * and refusals stay short whatever the file lists.
 */
class LoraConfigFileLimitsTest {

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    /**
     * lora_alpha 1e300 once loaded, and the float scale (Infinity) turned every output into NaN or
     * Infinity. The message names the file once (it used to read {@code <path>: adapter_config.json: ...}).
     */
    @Test
    void anAlphaBeyondTheFloatRangeInAFileIsRefusedNamingTheKey(@TempDir Path dir) throws Exception {
        Peft.wrap(base(), LoraConfig.builder().rank(4).alpha(8).targetModules("dense1").build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config);
        assertTrue(json.contains("\"lora_alpha\": 8.0"), json);
        Files.writeString(config, json.replace("\"lora_alpha\": 8.0", "\"lora_alpha\": 1e300"));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals(config + ": alpha must be positive and at most 3.4028235E38, the largest "
                + "float, because the update is scaled by lora_alpha / r in float; got 1.0E300", e.getMessage());
    }

    @Test
    void theBuilderRefusesAnAlphaOrScaleThatFloatCannotCarry() {
        IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                () -> LoraConfig.builder().alpha(1e39));
        assertTrue(big.getMessage().contains("lora_alpha"), big.getMessage());
        LoraConfig.builder().alpha(Float.MAX_VALUE).rank(1).targetModules("d").build();

        IllegalArgumentException tiny = assertThrows(IllegalArgumentException.class,
                () -> LoraConfig.builder().alpha(1e-33).rank(1 << 20).targetModules("d").build());
        assertTrue(tiny.getMessage().startsWith("the scale alpha / r = ") && tiny.getMessage().contains(
                " (lora_alpha 1.0E-33, r 1048576) is below the smallest normal float"), tiny.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> LoraConfig.builder().alpha(1e-45).rank(1).targetModules("d").build());
        LoraConfig.builder().alpha(1e-33).rank(1 << 20).useRsLora(true).targetModules("d").build(); // / 1024
    }

    /** Per-layer alphas and ranks (alpha_pattern, rank_pattern) get the same bounds as lora_alpha and r. */
    @Test
    void patternAlphasAndRanksAreBoundedAsTheDefaultsAre() {
        IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                () -> LoraConfig.builder().alphaPattern("dense1", 1e300));
        assertTrue(big.getMessage().startsWith("alphaPattern \"dense1\": alpha must be positive and at most "
                + "3.4028235E38"), big.getMessage());
        IllegalArgumentException tiny = assertThrows(IllegalArgumentException.class, () -> LoraConfig.builder()
                .alpha(8).rank(4).alphaPattern("dense1", 1e-33).rankPattern("dense2", 1 << 20).targetModules("d").build());
        assertTrue(tiny.getMessage().contains("(lora_alpha 1.0E-33, r 1048576) is below the smallest normal float"),
                tiny.getMessage());
        LoraConfig.builder().alpha(8).rank(4).alphaPattern("dense1", 1e-20).rankPattern("dense2", 16)
                .targetModules("d").build();
    }

    /** A target list of thousands of layers the base lacks: the refusal quotes the list shortened. */
    @Test
    void thousandsOfUnknownTargetsGetAShortMessage(@TempDir Path dir) throws Exception {
        Peft.wrap(base(), LoraConfig.builder().rank(4).alpha(8).targetModules("dense1").build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        StringBuilder names = new StringBuilder("\"target_modules\": [");
        for (int i = 0; i < 3000; i++) {
            names.append(i == 0 ? "" : ", ").append("\"layer").append(i).append('"');
        }
        String json = Files.readString(config);
        String edited = json.replaceFirst("\"target_modules\": \\[[^\\]]*\\]", names.append(']').toString());
        assertTrue(edited.length() > json.length() + 20_000, "edited");
        Files.writeString(config, edited);
        Exception e = assertThrows(Exception.class, () -> Peft.load(base(), dir));
        assertTrue(e.getMessage().startsWith("the adapter in " + dir + " does not fit the base model: adapter_config.json: "
                + "no layer matched targetModules [layer0, layer1, "), e.getMessage());
        assertTrue(e.getMessage().length() < 2000, e.getMessage().length() + " characters");
    }
}
