package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.prefix.PrefixConfig;
import org.peft4j.core.prompt.PromptTuningConfig;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.AdapterDirs;
import org.peft4j.core.testing.TinyDecoders;
import org.peft4j.core.testing.TinyGraphs;

/**
 * Files Hugging Face PEFT reads and files it wrote: peft4j's configs hold only keys PEFT 0.13's config
 * classes accept (the field lists committed beside this test), peft4j's records live in {@code peft4j.json}
 * and are dropped when another tool rewrote the config, a PyTorch pickle is refused with the command that
 * converts it, and a name map translates between a PyTorch model's module paths and a graph's layers in
 * both directions, with PEFT's matching.
 */
class PeftFilesInteropTest {

    // ---------------------------------------------------------------- PEFT 0.13's keys

    private static Set<String> fields(String type) throws Exception {
        Set<String> out = new TreeSet<>();
        for (String line : Files.readAllLines(Path.of(PeftFilesInteropTest.class.getResource(
                "/peft-0.13-" + type + "-config-fields.txt").toURI()), StandardCharsets.UTF_8)) {
            if (!line.startsWith("#") && !line.isBlank()) {
                out.add(line.split("\t")[0]);
            }
        }
        return out;
    }

    private static Map<String, Object> config(Path dir) throws Exception {
        return PeftJson.parseObject(Files.readAllBytes(dir.resolve("adapter_config.json")), "adapter_config.json");
    }

    private static void assertPeft013Keys(Path dir, String type) throws Exception {
        Set<String> extra = new TreeSet<>(config(dir).keySet());
        extra.removeAll(fields(type));
        assertEquals(Set.of(), extra, dir + ": keys PEFT 0.13's " + type + " config does not accept");
    }

    @Test
    void writtenConfigsHoldOnlyKeysPeft013Accepts(@TempDir Path dir) throws Exception {
        ComputationGraph mlp = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 1, 4, 8, 3);
        Peft.wrap(mlp, Ia3Config.builder().targetModules("dense1", "dense2").feedforwardModules("dense2")
                .modulesToSave("output").build()).saveAdapter(dir.resolve("ia3"));
        assertPeft013Keys(dir.resolve("ia3"), "ia3");
        Peft.wrap(mlp, Ia3Config.builder().targetModulesRegex("dense\\d").excludeModules("dense0").build())
                .saveAdapter(dir.resolve("ia3-exclude"));
        assertPeft013Keys(dir.resolve("ia3-exclude"), "ia3");
        assertEquals(List.of("dense1", "dense2"), config(dir.resolve("ia3-exclude")).get("target_modules"),
                "exclude_modules (a key since 0.14) is written as the targets it leaves");

        ComputationGraph decoder = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 8, 2, 16);
        Peft.wrap(decoder, PromptTuningConfig.builder().numVirtualTokens(3).initFromTokens(4, 9).build())
                .saveAdapter(dir.resolve("prompt"));
        assertPeft013Keys(dir.resolve("prompt"), "prompt-tuning");
        Map<String, Object> prompt = config(dir.resolve("prompt"));
        assertEquals("RANDOM", prompt.get("prompt_tuning_init"), "PEFT's TEXT needs a text and tokenizer peft4j lacks");
        assertEquals("CAUSAL_LM", prompt.get("task_type"));
        assertEquals(List.of(4, 9), AdapterDirs.tunerRecords(dir.resolve("prompt")).get("init_token_ids"));
        assertEquals(PromptTuningConfig.builder().numVirtualTokens(3).initFromTokens(4, 9).build(),
                Peft.load(decoder, dir.resolve("prompt")).config(), "the token ids come back from the side file");

        Peft.wrap(decoder, PrefixConfig.builder().numVirtualTokens(2).encoderHiddenSize(5).build())
                .saveAdapter(dir.resolve("prefix"));
        assertPeft013Keys(dir.resolve("prefix"), "prefix-tuning");
    }

    // ---------------------------------------------------------------- the side file

    @Test
    void aConfigRewrittenByAnotherToolLoadsWithoutPeft4jsRecords(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 1, 4, 8, 3);
        ComputationGraph other = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 2, 4, 8, 3);
        Peft.wrap(base, Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        IncompatibleAdapterException fingerprint = assertThrows(IncompatibleAdapterException.class,
                () -> Peft.load(other, dir));
        assertTrue(fingerprint.getMessage().contains("was trained on another base model"), fingerprint.getMessage());

        // PEFT saving over the directory writes its own config (here: with peft_version) and leaves peft4j.json
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config, StandardCharsets.UTF_8);
        Files.writeString(config, json.replace("\"peft_type\": \"IA3\",", "\"peft_type\": \"IA3\",\n  \"peft_version\": "
                + "\"0.20.0\","), StandardCharsets.UTF_8);
        assertEquals(Set.of("default"), Set.copyOf(Peft.load(other, dir).adapterNames()),
                "the stale records (fingerprint, digests) describe another config and are not used");
    }

    @Test
    void theSideFileWinsOverAFormatOneObjectAndTheRecordsNameTheirFile(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 1, 4, 8, 3);
        Peft.wrap(base, Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        String json = Files.readString(dir.resolve("adapter_config.json"), StandardCharsets.UTF_8);
        AdapterDirs.replaceConfig(dir, json.replace("\"peft_type\": \"IA3\",", "\"peft4j\": {\"adapter_model_sha256\": \""
                + "0".repeat(64) + "\", \"format_version\": 1},\n  \"peft_type\": \"IA3\","));
        Peft.load(base, dir);

        AdapterDirs.replaceWeights(dir, Map.of("base_model.model.dense1.ia3_l", SafeTensor.ofFloats(new long[] {8, 1},
                new float[8])), Map.of("format", "pt"));
        Files.writeString(dir.resolve("peft4j.json"), Files.readString(dir.resolve("peft4j.json")).replaceFirst(
                "\"adapter_model_sha256\": \"[0-9a-f]{64}\"", "\"adapter_model_sha256\": \"" + "1".repeat(64) + "\""));
        AdapterFormatException torn = assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        assertTrue(torn.getMessage().contains(dir.resolve("peft4j.json") + ": \"adapter_model_sha256\" is " + "1".repeat(64)),
                torn.getMessage());
    }

    @Test
    void aPickleWeightsFileIsRefusedWithTheConversion(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 1, 4, 8, 3);
        Peft.wrap(base, Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Files.delete(dir.resolve("adapter_model.safetensors"));
        Files.write(dir.resolve("adapter_model.bin"), new byte[] {(byte) 0x80, 2});
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        assertEquals("no adapter weights in " + dir + ": there is adapter_model.bin but no adapter_model.safetensors. "
                + "peft4j does not read PyTorch pickles (loading one runs the code it holds); convert it once with "
                + "python -c \"import torch, safetensors.torch as st; sd = torch.load('adapter_model.bin', "
                + "map_location='cpu', weights_only=True); st.save_file({k: v.contiguous() for k, v in sd.items()}, "
                + "'adapter_model.safetensors', metadata={'format': 'pt'})\" in that directory", e.getMessage());
    }

    @Test
    void aFactorysMessageNamesTheFileOnce(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 1, 4, 8, 3);
        Peft.wrap(base, Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"target_modules\": [\n    \"dense1\"\n  ]",
                "\"target_modules\": 7"));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        assertEquals(config + ": \"target_modules\" must be a list of layer names or a regex string (or \"all-linear\"); "
                + "got 7 (Integer)", e.getMessage());
    }

    // ---------------------------------------------------------------- module names

    /** BERT-like paths of two layers, the layers named otherwise, and pooler.dense without a layer. */
    private static final String[][] MODULES = {
        {"encoder.layer.0.attention.self.query", "b0.q"}, {"encoder.layer.0.attention.self.value", "b0.v"},
        {"encoder.layer.0.attention.output.dense", "b0.o"}, {"encoder.layer.0.intermediate.dense", "b0.up"},
        {"encoder.layer.0.output.dense", "b0.down"},
        {"encoder.layer.1.attention.self.query", "b1.q"}, {"encoder.layer.1.attention.self.value", "b1.v"},
        {"encoder.layer.1.attention.output.dense", "b1.o"}, {"encoder.layer.1.intermediate.dense", "b1.up"},
        {"encoder.layer.1.output.dense", "b1.down"}, {"classifier", "head"},
    };

    private static ModuleNames names() {
        ModuleNames.Builder b = ModuleNames.builder().unmapped("pooler.dense").tolerate("bert.");
        for (String[] m : MODULES) {
            b.map(m[0], m[1]);
        }
        return b.build();
    }

    private static ComputationGraph encoder() {
        ComputationGraphConfiguration.GraphBuilder g = new NeuralNetConfiguration.Builder().seed(5).dataType(DataType.FLOAT)
                .updater(new Adam(1e-2)).graphBuilder().addInputs("in");
        String prev = "in";
        for (int i = 0; i < MODULES.length - 1; i++) {
            g.addLayer(MODULES[i][1], new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.TANH).build(), prev);
            prev = MODULES[i][1];
        }
        g.addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(2)
                .activation(Activation.SOFTMAX).build(), prev);
        ComputationGraph graph = new ComputationGraph(g.setOutputs("head").build());
        graph.init();
        return graph;
    }

    @Test
    void savingInModulePathsWritesTheShortestSuffixesThatChooseExactlyTheTargets(@TempDir Path dir) throws Exception {
        ComputationGraph base = encoder();
        PeftModel qv = Peft.wrap(base, Ia3Config.builder().targetModules("q", "v", "o").feedforwardModules("o")
                .modulesToSave("head").build());
        qv.saveAdapter(dir, names());
        Map<String, Object> json = config(dir);
        assertEquals(List.of("attention.output.dense", "query", "value"), json.get("target_modules"),
                "output.dense would also choose the MLP's output dense, so the attention's needs three parts");
        assertEquals(List.of("attention.output.dense"), json.get("feedforward_modules"));
        assertEquals(List.of("classifier"), json.get("modules_to_save"));
        assertEquals(new TreeSet<>(List.of("base_model.model.encoder.layer.0.attention.self.query.ia3_l",
                "base_model.model.encoder.layer.0.attention.self.value.ia3_l",
                "base_model.model.encoder.layer.0.attention.output.dense.ia3_l",
                "base_model.model.encoder.layer.1.attention.self.query.ia3_l",
                "base_model.model.encoder.layer.1.attention.self.value.ia3_l",
                "base_model.model.encoder.layer.1.attention.output.dense.ia3_l",
                "base_model.model.classifier.weight", "base_model.model.classifier.bias")),
                new TreeSet<>(Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors().keySet()));
        assertEquals("pytorch", AdapterDirs.sideFile(dir).get("module_names"));

        PeftModel back = Peft.load(base, dir, names());
        assertEquals(new TreeSet<>(qv.adaptedLayers().keySet()), new TreeSet<>(back.adaptedLayers().keySet()));
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 3, 5, 4, 2).getFeatures();
        assertEquals(qv.output(x)[0], back.output(x)[0]);
        IncompatibleAdapterException without = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base, dir));
        assertTrue(without.getMessage().endsWith("was saved in a PyTorch model's module paths (" + dir.resolve("peft4j.json")
                + ": \"module_names\"); load it with the graph's ModuleNames: Peft.load(base, dir, names)"),
                without.getMessage());

        Path down = dir.resolve("down");
        Peft.wrap(base, Ia3Config.builder().targetModules("b1.down").build()).saveAdapter(down, names());
        assertEquals(List.of("1.output.dense"), config(down).get("target_modules"),
                "the shortest suffix choosing no other module (attention.output.dense ends with output.dense too)");
    }

    @Test
    void aPeftFileWithAToleratedPrefixLoadsAndOneAdaptingAModuleWithoutALayerIsRefused(@TempDir Path dir)
            throws Exception {
        ComputationGraph base = encoder();
        Peft.wrap(base, Ia3Config.builder().targetModules("b0.up", "b1.up").build()).saveAdapter(dir, names());
        // as PEFT around BertForSequenceClassification writes it: bert. before the encoder's paths
        Map<String, SafeTensor> prefixed = new TreeMap<>();
        Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors().forEach((k, v) -> prefixed.put(
                k.replace("base_model.model.", "base_model.model.bert."), v));
        Safetensors.write(dir.resolve("adapter_model.safetensors"), prefixed, Map.of("format", "pt"));
        Files.delete(dir.resolve("peft4j.json"));
        assertEquals(Set.of("b0.up", "b1.up"), Peft.load(base, dir, names()).adaptedLayers().keySet());

        Path config = dir.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"intermediate.dense\"", "\"dense\""));
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class,
                () -> Peft.load(base, dir, names()));
        assertTrue(e.getMessage().endsWith("target_modules [dense] chose modules [pooler.dense], which have no layer in "
                + "this graph (PEFT adapted them, and this graph cannot hold their adapter)"), e.getMessage());
    }

    @Test
    void aModuleNameMapRefusesWhatCannotBeOneToOne() {
        assertThrows(IllegalArgumentException.class, () -> ModuleNames.builder().map("a.b", "x").map("a.c", "x"));
        assertThrows(IllegalArgumentException.class, () -> ModuleNames.builder().map("a.b", "x").unmapped("a.b"));
        assertThrows(IllegalArgumentException.class, () -> ModuleNames.builder().map("base_model.model.a", "x"));
        assertThrows(IllegalArgumentException.class, () -> ModuleNames.builder().map("a..b", "x"));
        assertThrows(IllegalArgumentException.class, () -> ModuleNames.builder().tolerate("bert"));
        assertThrows(IllegalStateException.class, () -> ModuleNames.builder().unmapped("x").build());
        ModuleNames n = ModuleNames.builder().map("a.b", "x").tolerate("0.auto_model.", "bert.").build();
        assertEquals(List.of("0.auto_model.", "bert.", ""), n.prefixes(), "longest first, then none");
        assertEquals(new ArrayList<>(List.of("a.b")), new ArrayList<>(n.paths()));
        assertFalse(n.pathOf("y").isPresent());
    }
}
