package org.peft4j.core.prefix;

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
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.prefix.internal.PrefixEncoderLayerImpl;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyDecoders;

/** Prefix tuning saved in Hugging Face PEFT's PREFIX_TUNING layout and loaded back. */
class PrefixTuningFilesTest {

    private static final int VOCAB = 11;
    private static final int D = 8;

    /** The same weights on every call (fixed seed): a "fresh copy" of one base model. */
    private static ComputationGraph base(int layers) {
        return TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 7, VOCAB, D, layers, 16);
    }

    private static PeftModel trained(PrefixConfig config) {
        PeftModel peft = Peft.wrap(base(2), config);
        DataSet train = TinyDecoders.domain(DataType.FLOAT, 3, 4, 6, VOCAB, 2, 0.1);
        for (int i = 0; i < 4; i++) {
            peft.graph().fit(train);
        }
        return peft;
    }

    private static INDArray tokens() {
        return TinyDecoders.domain(DataType.FLOAT, 5, 4, 6, VOCAB, 2, 0.1).getFeatures();
    }

    private static Map<String, Object> json(Path dir) throws Exception {
        return PeftJson.parseObject(Files.readAllBytes(dir.resolve("adapter_config.json")), "config");
    }

    private static INDArray columns(INDArray m, long from, long to) {
        return m.get(NDArrayIndex.all(), NDArrayIndex.interval(from, to));
    }

    @Test
    void plainPrefixesReloadOntoAFreshBaseWithIdenticalOutputs(@TempDir Path dir) throws Exception {
        PrefixConfig config = PrefixConfig.builder().numVirtualTokens(3).build();
        PeftModel peft = trained(config);
        INDArray x = tokens();
        INDArray expected = peft.output(x)[0];
        peft.saveAdapter(dir);

        PeftModel back = Peft.load(base(2), dir);
        assertEquals(config, back.config());
        assertEquals(expected, back.output(x)[0]);
    }

    @Test
    void plainPrefixesAreOneRowPerVirtualTokenWithKeysThenValuesPerLayer(@TempDir Path dir) throws Exception {
        PeftModel peft = trained(PrefixConfig.builder().numVirtualTokens(3).build());
        peft.saveAdapter(dir);

        Map<String, Object> json = json(dir);
        assertEquals("PREFIX_TUNING", json.get("peft_type"));
        assertEquals(3, json.get("num_virtual_tokens"));
        assertEquals(D, json.get("token_dim"));
        assertEquals(2, json.get("num_layers"));
        assertEquals(2, json.get("num_attention_heads"));
        assertEquals(1, json.get("num_transformer_submodules"));
        assertEquals(false, json.get("prefix_projection"));
        assertTrue(json.containsKey("encoder_hidden_size"));
        assertNull(json.get("encoder_hidden_size"));

        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(Set.of("prompt_embeddings"), f.tensors().keySet());
        INDArray all = f.get("prompt_embeddings").toINDArray(DataType.FLOAT);
        assertArrayEquals(new long[] {3, 2 * 2 * D}, all.shape(), "[num_virtual_tokens, num_layers * 2 * token_dim]");
        for (int layer = 0; layer < 2; layer++) {
            org.deeplearning4j.nn.api.Layer l = peft.graph().getLayer("block" + layer + ".attn.prefix");
            long at = 2L * D * layer;
            assertEquals(l.getParam(PrefixEncoderLayer.PREFIX_K).transpose(), columns(all, at, at + D), "keys, layer " + layer);
            assertEquals(l.getParam(PrefixEncoderLayer.PREFIX_V).transpose(), columns(all, at + D, at + 2 * D),
                    "values, layer " + layer);
        }
    }

    @Test
    void aLiveMlpIsSavedWithItsOutputAndTrainingResumesFromIt(@TempDir Path dir) throws Exception {
        PrefixConfig config = PrefixConfig.builder().numVirtualTokens(3).encoderHiddenSize(4).build();
        PeftModel peft = trained(config);
        INDArray x = tokens();
        INDArray expected = peft.output(x)[0];
        peft.saveAdapter(dir);

        Map<String, Object> json = json(dir);
        assertEquals(true, json.get("prefix_projection"));
        assertEquals(4, json.get("encoder_hidden_size"));
        assertEquals(true, ((Map<?, ?>) json.get("peft4j")).get("prefix_encoder_saved"));
        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        String mlp = "base_model.model.block1.attn.core.prefix_encoder.";
        assertArrayEquals(new long[] {3, D}, f.get(mlp + "embedding.weight").shape());
        assertArrayEquals(new long[] {4, D}, f.get(mlp + "transform.0.weight").shape());
        assertArrayEquals(new long[] {4}, f.get(mlp + "transform.0.bias").shape());
        assertArrayEquals(new long[] {2 * D, 4}, f.get(mlp + "transform.2.weight").shape());
        assertArrayEquals(new long[] {2 * D}, f.get(mlp + "transform.2.bias").shape());
        assertEquals(11, f.tensors().size(), "5 MLP tensors per layer and prompt_embeddings");
        INDArray prefix1 = ((PrefixEncoderLayerImpl) peft.graph().getLayer("block1.attn.prefix")).prefix();
        INDArray all = f.get("prompt_embeddings").toINDArray(DataType.FLOAT);
        assertEquals(prefix1.transpose(), columns(all, 2 * D, 4 * D), "the MLP's output of layer 1");

        PeftModel back = Peft.load(base(2), dir);
        assertEquals(config, back.config());
        assertEquals(expected, back.output(x)[0]);
        INDArray w1 = back.graph().getLayer("block0.attn.prefix").getParam(PrefixEncoderLayer.PREFIX_W1).dup();
        back.graph().fit(TinyDecoders.domain(DataType.FLOAT, 3, 4, 6, VOCAB, 2, 0.1));
        assertNotEquals(w1, back.graph().getLayer("block0.attn.prefix").getParam(PrefixEncoderLayer.PREFIX_W1),
                "the reloaded MLP trains");
    }

    @Test
    void aFoldedModelSavesOnlyThePrefixesAndLoadsAsPlainPrefixes(@TempDir Path dir) throws Exception {
        PeftModel peft = trained(PrefixConfig.builder().numVirtualTokens(3).encoderHiddenSize(4).build());
        assertEquals(2, PrefixConfig.foldReparameterization(peft));
        INDArray x = tokens();
        INDArray expected = peft.output(x)[0];
        peft.saveAdapter(dir);

        assertEquals(false, ((Map<?, ?>) json(dir).get("peft4j")).get("prefix_encoder_saved"));
        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(Set.of("prompt_embeddings"), f.tensors().keySet());

        PeftModel back = Peft.load(base(2), dir);
        assertEquals(PrefixConfig.builder().numVirtualTokens(3).build(), back.config());
        assertTrue(expected.sub(back.output(x)[0]).amaxNumber().doubleValue() <= 1e-6);
    }

    @Test
    void prefixesForAnotherNumberOfLayersAreRefusedAndLeaveTheBaseAlone(@TempDir Path dir) throws Exception {
        trained(PrefixConfig.builder().numVirtualTokens(3).build()).saveAdapter(dir);
        ComputationGraph shallow = base(1);
        INDArray before = shallow.params().dup();
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class,
                () -> Peft.load(shallow, dir, true));
        assertTrue(e.getMessage().contains("adapter_config.json has num_layers=2 but the base model has num_layers=1"),
                e.getMessage());
        assertTrue(e.getMessage().contains("prompt_embeddings has shape [3, 32], expected [3, 16]"), e.getMessage());
        assertEquals(before, shallow.params());

        PeftModel target = Peft.wrap(base(1), PrefixConfig.builder().numVirtualTokens(3).build());
        assertThrows(IncompatibleAdapterException.class, () -> target.loadAdapter(dir, "deep", true));
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), target.adapterNames());
    }
}
