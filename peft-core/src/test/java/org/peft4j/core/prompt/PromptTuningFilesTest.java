package org.peft4j.core.prompt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyDecoders;

/** Prompt tuning saved in Hugging Face PEFT's PROMPT_TUNING layout and loaded back. */
class PromptTuningFilesTest {

    private static final int VOCAB = 11;

    /** The same weights on every call (fixed seed): a "fresh copy" of one base model. */
    private static ComputationGraph base(int d) {
        return TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 7, VOCAB, d, 1, 16);
    }

    private static PeftModel trained(PromptTuningConfig config) {
        PeftModel peft = Peft.wrap(base(8), config);
        DataSet train = TinyDecoders.domain(DataType.FLOAT, 3, 4, 6, VOCAB, 2, 0.1);
        for (int i = 0; i < 4; i++) {
            peft.graph().fit(train);
        }
        return peft;
    }

    private static INDArray tokens() {
        return TinyDecoders.domain(DataType.FLOAT, 5, 4, 6, VOCAB, 2, 0.1).getFeatures();
    }

    @Test
    void savedPromptReloadsOntoAFreshBaseWithIdenticalOutputs(@TempDir Path dir) throws Exception {
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(3).initFromTokens(4, 9).build();
        PeftModel fresh = Peft.wrap(base(8), config);
        INDArray initial = fresh.graph().getLayer("embed.tokens.prompt").getParam(PromptEmbeddingLayer.PROMPT_KEY).dup();
        PeftModel peft = trained(config);
        assertNotEquals(initial, peft.graph().getLayer("embed.tokens.prompt").getParam(PromptEmbeddingLayer.PROMPT_KEY),
                "training moved the prompt");
        INDArray x = tokens();
        INDArray expected = peft.output(x)[0];
        peft.saveAdapter(dir);

        PeftModel back = Peft.load(base(8), dir);
        assertEquals(config, back.config());
        assertEquals(expected, back.output(x)[0]);

        PeftModel other = Peft.wrap(base(8), PromptTuningConfig.builder().numVirtualTokens(3).build());
        other.loadAdapter(dir, "text");
        other.setAdapter("text");
        assertEquals(expected, other.output(x)[0]);
    }

    @Test
    void filesHoldPeftKeysAndPromptEmbeddingsOfVirtualTokensByWidth(@TempDir Path dir) throws Exception {
        PeftModel peft = trained(PromptTuningConfig.builder().numVirtualTokens(3).build());
        peft.saveAdapter(dir);

        Map<String, Object> json = PeftJson.parseObject(Files.readAllBytes(dir.resolve("adapter_config.json")), "config");
        assertEquals("PROMPT_TUNING", json.get("peft_type"));
        assertEquals(3, json.get("num_virtual_tokens"));
        assertEquals(8, json.get("token_dim"));
        assertEquals(1, json.get("num_transformer_submodules"));
        assertEquals("RANDOM", json.get("prompt_tuning_init"));
        assertTrue(json.containsKey("prompt_tuning_init_text"));
        assertNull(json.get("prompt_tuning_init_text"));
        Map<?, ?> ext = (Map<?, ?>) json.get("peft4j");
        assertEquals("embed.tokens", ext.get("embedding_layer"));
        assertEquals("head", ext.get("output_layer"));

        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(Set.of("prompt_embeddings"), f.tensors().keySet());
        assertArrayEquals(new long[] {3, 8}, f.get("prompt_embeddings").shape(), "[num_virtual_tokens, token_dim]");
        INDArray e = peft.graph().getLayer("embed.tokens.prompt").getParam(PromptEmbeddingLayer.PROMPT_KEY);
        assertEquals(e.transpose(), f.get("prompt_embeddings").toINDArray(DataType.FLOAT), "row j is virtual token j");
    }

    /**
     * An edited {@code num_virtual_tokens} is refused when the files are read: planning the
     * graph computes an initial prompt of that many columns, which for 10^9 failed with
     * "Allocation failed: [std::bad_alloc]" before any size check.
     */
    @Test
    void anEditedNumberOfVirtualTokensIsRefusedBeforePlanning(@TempDir Path dir) throws Exception {
        trained(PromptTuningConfig.builder().numVirtualTokens(3).build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config);
        assertTrue(json.contains("\"num_virtual_tokens\": 3,"), json);
        Files.writeString(config, json.replace("\"num_virtual_tokens\": 3,", "\"num_virtual_tokens\": 1000000000,"));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(8), dir));
        assertEquals(config + ": \"num_virtual_tokens\" is 1000000000 but adapter_model.safetensors's prompt_embeddings "
                + "has shape [3, 8]; the config does not match its weights", e.getMessage());
    }

    @Test
    void aPromptForAnotherEmbeddingWidthIsRefusedAndLeavesTheBaseAlone(@TempDir Path dir) throws Exception {
        trained(PromptTuningConfig.builder().numVirtualTokens(3).build()).saveAdapter(dir);
        ComputationGraph wider = base(12);
        INDArray before = wider.params().dup();
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class,
                () -> Peft.load(wider, dir, true));
        assertTrue(e.getMessage().contains("adapter_config.json has token_dim=8 but the base model has token_dim=12"),
                e.getMessage());
        assertTrue(e.getMessage().contains("prompt_embeddings has shape [3, 8], expected [3, 12]"), e.getMessage());
        assertEquals(before, wider.params());

        PeftModel target = Peft.wrap(base(12), PromptTuningConfig.builder().numVirtualTokens(3).build());
        assertThrows(IncompatibleAdapterException.class, () -> target.loadAdapter(dir, "narrow", true));
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), target.adapterNames());
    }
}
