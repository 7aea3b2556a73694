package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.TinyGraphs;

/**
 * The same bad adapter directory is refused the same way whichever entry point reads it
 * ({@link Peft#load} or {@link PeftModel#loadAdapter}): one exception type, one message naming the
 * directory and the file. (A config whose targets the base lacks was an
 * {@link IncompatibleAdapterException} naming the directory from {@code Peft.load} and a bare
 * {@link IllegalArgumentException} naming neither from {@code loadAdapter}.)
 */
class OneRefusalPerProblemTest {

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    /** The exception each entry point throws for {@code dir}; the model it loads into is left unchanged. */
    private static List<RuntimeException> refusals(Path dir) throws Exception {
        RuntimeException viaLoad = assertThrows(RuntimeException.class, () -> Peft.load(base(), dir));
        PeftModel model = Peft.wrap(base(), Ia3Config.builder().targetModules("dense0").build());
        RuntimeException viaLoadAdapter = assertThrows(RuntimeException.class, () -> model.loadAdapter(dir, "other"));
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), model.adapterNames(), "the model is unchanged");
        return List.of(viaLoad, viaLoadAdapter);
    }

    private static Path saved(Path dir) throws Exception {
        Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        return dir;
    }

    /** Replaces the value of {@code target_modules} in {@code config} by the JSON {@code value}. */
    private static void retarget(Path config, String value) throws Exception {
        String json = Files.readString(config);
        String edited = json.replaceFirst("\"target_modules\": \\[[^\\]]*\\]", "\"target_modules\": " + value);
        assertFalse(edited.equals(json), json);
        Files.writeString(config, edited);
    }

    @Test
    void targetsTheBaseLacksAreOneIncompatibleAdapterExceptionNamingDirectoryAndFile(@TempDir Path tmp)
            throws Exception {
        Path dir = saved(tmp.resolve("a"));
        Path config = dir.resolve("adapter_config.json");
        retarget(config, "[\"q_proj\"]");
        List<RuntimeException> r = refusals(dir);
        for (RuntimeException e : r) {
            assertSame(IncompatibleAdapterException.class, e.getClass(), e.toString());
            assertTrue(e.getMessage().startsWith("the adapter in " + dir + " does not fit the base model: "
                    + "adapter_config.json: no layer matched targetModules [q_proj]; layers are: dense0 (DenseLayer)"),
                    e.getMessage());
        }
        assertEquals(r.get(0).getMessage(), r.get(1).getMessage());
    }

    @Test
    void aMalformedConfigIsOneAdapterFormatExceptionThatNamesTheFileOnce(@TempDir Path tmp) throws Exception {
        Path dir = saved(tmp.resolve("a"));
        Path config = dir.resolve("adapter_config.json");
        retarget(config, "7");
        List<RuntimeException> r = refusals(dir);
        for (RuntimeException e : r) {
            assertSame(AdapterFormatException.class, e.getClass(), e.toString());
            assertTrue(e.getMessage().startsWith(config + ": \"target_modules\" must be"), e.getMessage());
            assertFalse(e.getMessage().contains("adapter_config.json: adapter_config.json"), e.getMessage());
        }
        assertEquals(r.get(0).getMessage(), r.get(1).getMessage());
    }

    @Test
    void tensorsThatDoNotFitAreOneIncompatibleAdapterExceptionNamingTheWeightsFile(@TempDir Path tmp)
            throws Exception {
        Path dir = saved(tmp.resolve("a"));
        Path config = dir.resolve("adapter_config.json");
        // The config now asks for dense2 while the weights hold dense1's scales.
        retarget(config, "[\"dense2\"]");
        List<RuntimeException> r = refusals(dir);
        for (RuntimeException e : r) {
            assertSame(IncompatibleAdapterException.class, e.getClass(), e.toString());
            assertTrue(e.getMessage().startsWith("the adapter in " + dir + " does not fit the base model: "
                    + "adapter_model.safetensors: 1 unknown tensors [base_model.model.dense1.ia3_l]; "
                    + "adapter_model.safetensors: 1 missing tensors [base_model.model.dense2.ia3_l]"), e.getMessage());
        }
        assertEquals(r.get(0).getMessage(), r.get(1).getMessage());
    }
}
