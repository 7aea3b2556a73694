package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.prefix.PrefixConfig;
import org.peft4j.core.prompt.PromptTuningConfig;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyDecoders;

/**
 * Adapters saved by peft4j before issue 26 (format 1: peft4j's records in a {@code "peft4j"} object
 * inside {@code adapter_config.json}, a LayerNorm saved under DL4J's keys {@code g} and {@code b}) still
 * load and resume: the committed checkpoint {@code legacy-format-1/checkpoint} (its README says how it was
 * made) is a LoRA adapter with a LayerNorm to save, a prompt-tuning adapter with peft4j's token-id init
 * and a prefix-tuning adapter with its reparameterisation MLP, plus the optimizer state.
 */
class LegacyFormatTest {

    /** The base the files were saved over: the same seeded decoder. */
    private static ComputationGraph base() {
        return TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 7, 11, 8, 1, 16);
    }

    private static Path fixture(String name) throws Exception {
        return Path.of(LegacyFormatTest.class.getResource("/legacy-format-1/" + name).toURI());
    }

    @SuppressWarnings("unchecked")
    private static INDArray recorded(String key, long... shape) throws Exception {
        Map<String, Object> expected = PeftJson.parseObject(Files.readAllBytes(fixture("expected-outputs.json")),
                "expected-outputs.json");
        List<Number> v = (List<Number>) expected.get(key);
        float[] f = new float[v.size()];
        for (int i = 0; i < f.length; i++) {
            f[i] = v.get(i).floatValue();
        }
        return Nd4j.create(f, shape, 'c');
    }

    @Test
    void aFormatOneCheckpointLoadsEveryAdapterWithItsOutputs() throws Exception {
        Path dir = fixture("checkpoint");
        assertTrue(Files.readString(dir.resolve("adapter_config.json"), StandardCharsets.UTF_8).contains("\"peft4j\": {"),
                "the fixture is of format 1");
        assertFalse(Files.exists(dir.resolve("peft4j.json")));
        PeftModel m = Peft.load(base(), dir);
        assertEquals(List.of("default", "prefix", "prompt"), m.adapterNames());
        assertInstanceOf(LoraConfig.class, m.adapterConfig("default"));
        assertEquals(List.of("block0.ln1"), m.adapterConfig("default").modulesToSave());
        PromptTuningConfig prompt = assertInstanceOf(PromptTuningConfig.class, m.adapterConfig("prompt"));
        assertEquals(PromptTuningConfig.builder().numVirtualTokens(3).initFromTokens(4, 9).build(), prompt,
                "peft4j's token-id init came back from the \"peft4j\" object");
        PrefixConfig prefix = assertInstanceOf(PrefixConfig.class, m.adapterConfig("prefix"));
        assertTrue(prefix.prefixProjection(), "the saved MLP is rebuilt (prefix_encoder_saved in the \"peft4j\" object)");

        INDArray x = recorded("tokens", 2, 6);
        for (String adapter : List.of("default", "prefix", "prompt")) {
            m.setAdapter(adapter);
            INDArray y = m.output(x)[0];
            assertEquals(recorded(adapter, y.shape()), y.castTo(DataType.FLOAT), adapter + ": the outputs it was saved with");
        }
    }

    @Test
    void aFormatOneCheckpointResumesWhereItStopped() throws Exception {
        PeftModel resumed = PeftModel.resume(base(), fixture("checkpoint"));
        assertEquals("default", resumed.activeAdapter());
        assertTrue(resumed.graph().getConfiguration().getIterationCount() > 0, "the counters were restored");
        resumed.graph().fit(TinyDecoders.domain(DataType.FLOAT, 3, 4, 6, 11, 2, 0.1));
    }

    /** Saving what was loaded writes format 2: PEFT's keys only in the config, the records and the tuner's keys beside it. */
    @Test
    void savingALoadedFormatOneAdapterWritesTheCurrentFormat(@TempDir Path out) throws Exception {
        PeftModel m = Peft.load(base(), fixture("checkpoint"));
        m.saveAdapter(out);
        for (Path config : List.of(out.resolve("adapter_config.json"), out.resolve("prompt").resolve("adapter_config.json"),
                out.resolve("prefix").resolve("adapter_config.json"))) {
            assertFalse(Files.readString(config, StandardCharsets.UTF_8).contains("peft4j"), config.toString());
            assertTrue(Files.isRegularFile(config.resolveSibling("peft4j.json")), config + "'s side file");
        }
        assertTrue(Safetensors.read(out.resolve("adapter_model.safetensors")).tensors()
                .containsKey("base_model.model.block0.ln1.weight"), "the LayerNorm under PyTorch's parameter name");
        PeftModel again = Peft.load(base(), out);
        INDArray x = recorded("tokens", 2, 6);
        for (String adapter : List.of("default", "prefix", "prompt")) {
            m.setAdapter(adapter);
            again.setAdapter(adapter);
            assertEquals(m.output(x)[0], again.output(x)[0], adapter);
        }
        try (Stream<Path> files = Files.list(out)) {
            assertEquals(List.of("adapter_config.json", "adapter_model.safetensors", "peft4j.json", "prefix", "prompt"),
                    files.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }
}
