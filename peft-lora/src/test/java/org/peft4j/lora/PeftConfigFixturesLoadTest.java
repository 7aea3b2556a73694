package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemNotFoundException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToRnnPreProcessor;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftException;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyDecoders;

/**
 * Every real {@code adapter_config.json} of peft-core's fixture set ({@code peft-configs/}, see its
 * {@code SOURCES.md}) is loaded with {@code Peft.load} onto a small graph whose layers carry the PyTorch
 * module paths of the model the file was written for ({@code model.layers.0.self_attn.q_proj}, ...),
 * beside a weights file holding what PEFT saves for that config. The expected files and targets come
 * from this test's own reading of PEFT's rules ({@code check_target_module_exists}, {@code _set_trainable},
 * {@code get_pattern_key}, written with {@code java.util.regex}), not from peft4j's. A file either loads
 * (the adapted layers are the expected ones, and saving the model again gives the same tensors) or is
 * refused with a message naming the key that makes it unloadable, leaving the base as it was.
 */
class PeftConfigFixturesLoadTest {

    private static final int W = 4;

    // ---------------------------------------------------------------- what each fixture should do

    /**
     * Fixtures refused, with the key their message must name. The key's row in docs/peft-key-policy.md
     * says why (AdaLoRA's {@code total_step} null: PEFT 0.6 wrote it, current PEFT refuses it too, and
     * peft4j's AdaLoRA schedules its budget by it).
     */
    private static final Map<String, String> REFUSED = new TreeMap<>(Map.ofEntries(
            Map.entry("adalora/opt350m-0.6.json", "\"total_step\" must be an integer; got null"),
            Map.entry("vera/mt0-large-example.json", "peft_type"),
            Map.entry("derived/lora-alora.json", "alora_invocation_tokens"),
            Map.entry("derived/lora-bias.json", "lora_bias"),
            Map.entry("derived/lora-future-key-set.json", "some_future_scaling"),
            Map.entry("derived/lora-layer-replication.json", "layer_replication"),
            Map.entry("derived/lora-megatron-config.json", "megatron_config"),
            Map.entry("derived/lora-target-parameters.json", "target_parameters"),
            Map.entry("derived/lora-trainable-token-indices.json", "trainable_token_indices"),
            Map.entry("derived/lora-use-qalora.json", "use_qalora"),
            // inits that rewrote the base weights when PEFT created the adapter
            Map.entry("derived/lora-init-corda.json", "init_lora_weights"),
            Map.entry("derived/lora-init-loftq.json", "init_lora_weights"),
            Map.entry("derived/lora-init-pissa-niter.json", "init_lora_weights"),
            Map.entry("lora/qwen35-olora-rlmath.json", "init_lora_weights"),
            Map.entry("lora/qwen35-pissa-rlmath.json", "init_lora_weights"),
            // PEFT fills a null target_modules from a table of architectures; a file must name its modules
            Map.entry("lora/llama32-dora-mmqa.json", "target_modules"),
            Map.entry("lora/llama32-mica-mmqa.json", "target_modules"),
            Map.entry("lora/llama32-rslora-mmqa.json", "target_modules"),
            Map.entry("ia3/llama32-mmqa-default.json", "target_modules"),
            // a prefix for both stacks of an encoder-decoder
            Map.entry("prefix_tuning/flan-t5-xl-seq2seq-0.3.json", "num_transformer_submodules")));

    /** The model each fixture was written for, by the start of its file name (first match wins). */
    private static final List<String[]> ARCHITECTURE = List.of(
            new String[] {"lora/qwen25vl-full-path-targets", "qwen2-28"},
            new String[] {"lora/gpt2-seqcls", "gpt2-seqcls"},
            new String[] {"lora/gpt2", "gpt2"},
            new String[] {"derived/ia3-fan-in-fan-out", "gpt2"},
            new String[] {"lora/bert", "bert"},
            new String[] {"derived/lora", "bert"},
            new String[] {"lora/roberta", "roberta"},
            new String[] {"lora/distilbert", "distilbert"},
            new String[] {"lora/flan-t5", "t5"},
            new String[] {"lora/mt0", "t5"},
            new String[] {"ia3/mt0", "t5"},
            new String[] {"vera/", "t5"},
            new String[] {"lora/opt", "opt"},
            new String[] {"ia3/opt", "opt"},
            new String[] {"adalora/", "opt"},
            new String[] {"lora/chatglm", "chatglm"},
            new String[] {"lora/open-calm", "gptneox"},
            new String[] {"lora/blip", "blip"},
            new String[] {"lora/segformer", "segformer"},
            new String[] {"lora/vit", "vit"},
            new String[] {"lora/mlp", "mlp"},
            new String[] {"ia3/mlp", "mlp"},
            new String[] {"lora/conv2d", "conv"},
            new String[] {"lora/emb-conv1d", "emb-conv1d"},
            new String[] {"prompt_tuning/", "prompt"},
            new String[] {"derived/prompt", "prompt"},
            new String[] {"prefix_tuning/", "prefix"},
            new String[] {"derived/prefix", "prefix"},
            new String[] {"", "llama"});

    /** The module paths (each a dense layer, in a chain; the last is the output) of a model family. */
    private static List<String> modules(String arch) {
        List<String> m = new ArrayList<>();
        switch (arch) {
            case "llama", "qwen2-28" -> {
                for (int i = 0; i < (arch.equals("llama") ? 2 : 28); i++) {
                    for (String p : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")) {
                        m.add("model.layers." + i + "." + p);
                    }
                }
                m.add("lm_head");
            }
            case "gpt2", "gpt2-seqcls" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")) {
                        m.add("transformer.h." + i + "." + p);
                    }
                }
                m.add(arch.equals("gpt2") ? "lm_head" : "score");
            }
            case "bert", "roberta", "vit" -> {
                String root = arch.equals("vit") ? "vit" : arch;
                String self = arch.equals("vit") ? "attention.attention." : "attention.self.";
                for (int i = 0; i < (arch.equals("bert") ? 12 : 2); i++) {
                    String l = root + ".encoder.layer." + i + ".";
                    for (String p : List.of(self + "query", self + "key", self + "value", "attention.output.dense",
                            "intermediate.dense", "output.dense")) {
                        m.add(l + p);
                    }
                }
                if (arch.equals("bert")) {
                    m.add("bert.pooler.dense");
                }
                m.addAll(arch.equals("roberta") ? List.of("classifier.dense", "classifier.out_proj") : List.of("classifier"));
            }
            case "distilbert" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
                            "ffn.lin1", "ffn.lin2")) {
                        m.add("distilbert.transformer.layer." + i + "." + p);
                    }
                }
                m.add("pre_classifier");
                m.add("classifier");
            }
            case "t5" -> {
                for (String stack : List.of("encoder", "decoder")) {
                    for (int i = 0; i < 2; i++) {
                        String b = stack + ".block." + i + ".layer.";
                        for (String p : List.of("0.SelfAttention.q", "0.SelfAttention.k", "0.SelfAttention.v", "0.SelfAttention.o")) {
                            m.add(b + p);
                        }
                        if (stack.equals("decoder")) {
                            for (String p : List.of("q", "k", "v", "o")) {
                                m.add(b + "1.EncDecAttention." + p);
                            }
                        }
                        String ff = b + (stack.equals("encoder") ? "1" : "2") + ".DenseReluDense.";
                        m.addAll(List.of(ff + "wi_0", ff + "wi_1", ff + "wo"));
                    }
                }
                m.add("lm_head");
            }
            case "opt" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                            "fc1", "fc2")) {
                        m.add("model.decoder.layers." + i + "." + p);
                    }
                }
                m.add("lm_head");
            }
            case "chatglm" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h",
                            "mlp.dense_4h_to_h")) {
                        m.add("transformer.encoder.layers." + i + "." + p);
                    }
                }
                m.add("transformer.output_layer");
            }
            case "gptneox" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h",
                            "mlp.dense_4h_to_h")) {
                        m.add("gpt_neox.layers." + i + "." + p);
                    }
                }
                m.add("embed_out");
            }
            case "blip" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("self_attn.qkv", "self_attn.projection", "mlp.fc1", "mlp.fc2")) {
                        m.add("vision_model.encoder.layers." + i + "." + p);
                    }
                    for (String p : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "intermediate.dense", "output.dense")) {
                        m.add("text_decoder.bert.encoder.layer." + i + "." + p);
                    }
                }
                m.add("text_decoder.cls.predictions.decoder");
            }
            case "segformer" -> {
                for (int i = 0; i < 2; i++) {
                    for (String p : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "mlp.dense1", "mlp.dense2")) {
                        m.add("segformer.encoder.block.0." + i + "." + p);
                    }
                }
                m.addAll(List.of("decode_head.linear_c.0.proj", "decode_head.linear_c.1.proj", "decode_head.classifier"));
            }
            case "mlp" -> m.addAll(List.of("lin0", "lin1"));
            default -> throw new IllegalArgumentException(arch);
        }
        return m;
    }

    private static String architecture(String fixture) {
        for (String[] a : ARCHITECTURE) {
            if (fixture.startsWith(a[0])) {
                return a[1];
            }
        }
        throw new AssertionError(fixture);
    }

    // ---------------------------------------------------------------- fixtures

    /**
     * The fixture directory of peft-core's test resources: a directory when the reactor runs the
     * tests ({@code test}), an entry of peft-core's test jar when it has packaged it first
     * ({@code verify}), read then through a zip file system kept open for the tests of this JVM.
     */
    private static synchronized Path root() throws URISyntaxException, IOException {
        URI uri = PeftConfigFixturesLoadTest.class.getResource("/peft-configs/SOURCES.md").toURI();
        if ("jar".equals(uri.getScheme())) {
            try {
                FileSystems.getFileSystem(uri);
            } catch (FileSystemNotFoundException e) {
                FileSystems.newFileSystem(uri, Map.of());
            }
        }
        return Path.of(uri).getParent();
    }

    static Stream<String> fixtures() throws IOException, URISyntaxException {
        Path root = root();
        try (Stream<Path> s = Files.walk(root)) {
            return s.filter(p -> p.toString().endsWith(".json")).map(p -> root.relativize(p).toString().replace('\\', '/'))
                    .sorted().toList().stream();
        }
    }

    static Stream<String> bertFixtures() throws IOException, URISyntaxException {
        return fixtures().filter(f -> architecture(f).equals("bert") && !REFUSED.containsKey(f));
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> json(String fixture) throws Exception {
        return PeftJson.parseObject(Files.readAllBytes(root().resolve(fixture)), fixture);
    }

    // ---------------------------------------------------------------- PEFT's rules, as this test reads them

    /** PEFT's modules_to_save with the heads its SEQ_CLS model adds. */
    private static List<String> modulesToSave(Map<String, Object> json, Set<String> targets) {
        Set<String> names = new LinkedHashSet<>();
        if (json.get("modules_to_save") instanceof List<?> l) {
            l.forEach(o -> names.add((String) o));
        }
        if ("SEQ_CLS".equals(json.get("task_type"))) {
            // an adapted head (a target itself) is kept as a target here: see gpt2-seqcls-targets-score-0.9
            for (String head : List.of("classifier", "score")) {
                if (targets.stream().noneMatch(t -> t.equals(head) || t.endsWith("." + head))) {
                    names.add(head);
                }
            }
        }
        return new ArrayList<>(names);
    }

    /** {@code _set_trainable}: a module (or a module containing it) whose name ends with an entry. */
    private static boolean saved(List<String> entries, String module) {
        for (String e : entries) {
            String m = module;
            while (true) {
                if (m.endsWith(e)) {
                    return true;
                }
                int dot = m.lastIndexOf('.');
                if (dot < 0) {
                    break;
                }
                m = m.substring(0, dot);
            }
        }
        return false;
    }

    /** {@code check_target_module_exists} for one module name. */
    private static boolean targeted(Map<String, Object> json, String key) {
        Object exclude = json.get("exclude_modules");
        if (exclude instanceof String s && key.matches(s)
                || exclude instanceof List<?> l && l.stream().anyMatch(e -> key.equals(e) || key.endsWith("." + e))) {
            return false;
        }
        Object tm = json.get("target_modules");
        if (tm instanceof String s) {
            return key.matches(s);
        }
        List<?> list = (List<?>) tm;
        if (list.contains(key)) {
            return true;
        }
        if (list.stream().noneMatch(e -> key.endsWith("." + e))) {
            return false;
        }
        Object layers = json.get("layers_to_transform");
        if (layers == null || layers instanceof List<?> l && l.isEmpty()) {
            return true;
        }
        Object pattern = json.get("layers_pattern");
        Matcher m = Pattern.compile(pattern == null ? ".*?\\.[^.]*\\.(\\d+)\\." : ".*?\\." + pattern + "\\.(\\d+)\\.")
                .matcher(key);
        if (!m.lookingAt()) {
            return false;
        }
        int index = Integer.parseInt(m.group(1));
        return layers instanceof List<?> l ? l.contains(index) : ((Number) layers).intValue() == index;
    }

    /** {@code get_pattern_key}: the value of the first key whose pattern ends the name at a '.'. */
    private static Object patternValue(Object patterns, String name, Object dflt) {
        if (patterns instanceof Map<?, ?> p) {
            for (Map.Entry<?, ?> e : p.entrySet()) {
                if (Pattern.compile("(.*\\.)?(" + e.getKey() + ")").matcher(name).matches()) {
                    return e.getValue();
                }
            }
        }
        return dflt;
    }

    /** What PEFT saves for {@code json} on {@code modules}, and the targets. */
    private record Expected(Set<String> targets, Set<String> saved, Map<String, long[]> tensors) {
    }

    /**
     * A module of the base: its kind ({@code dense}, {@code conv} with a square kernel {@code k},
     * {@code embedding} with {@code in} rows) and sizes.
     */
    private record Module(String kind, int in, int out, int k) {
        static final Module DENSE = new Module("dense", W, W, 0);
    }

    private static Expected expected(Map<String, Object> json, List<String> modules, Map<String, Module> kinds) {
        String type = (String) json.get("peft_type");
        Map<String, long[]> tensors = new TreeMap<>();
        if (type.equals("PROMPT_TUNING") || type.equals("PREFIX_TUNING")) {
            long width = ((Number) json.get("token_dim")).longValue()
                    * (type.equals("PREFIX_TUNING") ? 2L * ((Number) json.get("num_layers")).longValue() : 1);
            tensors.put("prompt_embeddings", new long[] {((Number) json.get("num_virtual_tokens")).longValue(), width});
            return new Expected(Set.of(), Set.of(), tensors);
        }
        Set<String> first = new TreeSet<>();
        for (String m : modules) {
            if (targeted(json, m)) {
                first.add(m);
            }
        }
        List<String> save = modulesToSave(json, first);
        Set<String> saved = new TreeSet<>();
        Set<String> targets = new TreeSet<>();
        for (String m : modules) {
            if (saved(save, m)) {
                saved.add(m);
            } else if (first.contains(m)) {
                targets.add(m);
            }
        }
        String p = "base_model.model.";
        for (String t : targets) {
            Module m = kinds.getOrDefault(t, Module.DENSE);
            if (type.equals("LORA")) {
                long r = ((Number) patternValue(json.get("rank_pattern"), t, json.get("r"))).longValue();
                switch (m.kind()) {
                    case "embedding" -> {
                        tensors.put(p + t + ".lora_embedding_A", new long[] {r, m.in()});
                        tensors.put(p + t + ".lora_embedding_B", new long[] {m.out(), r});
                    }
                    case "conv" -> {
                        tensors.put(p + t + ".lora_A.weight", new long[] {r, m.in(), m.k(), m.k()});
                        tensors.put(p + t + ".lora_B.weight", new long[] {m.out(), r, 1, 1});
                    }
                    default -> {
                        tensors.put(p + t + ".lora_A.weight", new long[] {r, m.in()});
                        tensors.put(p + t + ".lora_B.weight", new long[] {m.out(), r});
                    }
                }
                if (Boolean.TRUE.equals(json.get("use_dora"))) {
                    tensors.put(p + t + ".lora_magnitude_vector", new long[] {m.out()});
                }
                if ("lora_only".equals(json.get("bias"))) {
                    tensors.put(p + t + ".bias", new long[] {m.out()});
                }
            } else {
                Object ff = json.get("feedforward_modules");
                boolean input = ff instanceof List<?> l && l.stream().anyMatch(e -> t.equals(e) || t.endsWith("." + e));
                tensors.put(p + t + ".ia3_l", input ? new long[] {1, m.in()} : new long[] {m.out(), 1});
            }
        }
        for (String s : saved) {
            Module m = kinds.getOrDefault(s, Module.DENSE);
            tensors.put(p + s + ".weight", new long[] {m.out(), m.in()});
            tensors.put(p + s + ".bias", new long[] {m.out()});
        }
        return new Expected(targets, saved, tensors);
    }

    // ---------------------------------------------------------------- graphs and files

    /** A chain of dense layers named {@code layerNames}, the last an output layer. */
    private static ComputationGraph chain(List<String> layerNames) {
        ComputationGraphConfiguration.GraphBuilder g = new NeuralNetConfiguration.Builder().seed(7).dataType(DataType.FLOAT)
                .updater(new Adam(1e-3)).graphBuilder().addInputs("in");
        String prev = "in";
        for (int i = 0; i < layerNames.size(); i++) {
            String n = layerNames.get(i);
            if (i == layerNames.size() - 1) {
                g.addLayer(n, new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(W).nOut(W)
                        .activation(Activation.IDENTITY).build(), prev);
            } else {
                g.addLayer(n, new DenseLayer.Builder().nIn(W).nOut(W).activation(Activation.TANH).build(), prev);
            }
            prev = n;
        }
        ComputationGraph graph = new ComputationGraph(g.setOutputs(prev).build());
        graph.init();
        return graph;
    }

    /** {@code embed.tokens [vocab 5 → width] → head}: all prompt tuning needs of a base. */
    private static ComputationGraph embeddingAndHead(int width) {
        ComputationGraph graph = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(7).dataType(DataType.FLOAT)
                .updater(new Adam(1e-3)).graphBuilder().addInputs("tokens")
                .setInputTypes(InputType.recurrent(1))
                .addLayer("embed.tokens", new EmbeddingSequenceLayer.Builder().nIn(5).nOut(width).hasBias(false).build(),
                        "tokens")
                .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.SPARSE_MCXENT).nIn(width).nOut(5)
                        .activation(Activation.SOFTMAX).build(), "embed.tokens")
                .setOutputs("head").build());
        graph.init();
        return graph;
    }

    /**
     * The base for {@code fixture}, and the config file to load (for prefix tuning, the fixture with its
     * three keys describing the base model, token_dim, num_layers and num_attention_heads, set to those
     * of a one-block decoder of width 4 and 2 heads, since a 3B-parameter base is no unit-test fixture).
     */
    private record Setup(ComputationGraph base, Map<String, Object> json, List<String> modules,
                         Map<String, Module> kinds) {
    }

    private static Setup setup(String fixture) throws Exception {
        Map<String, Object> json = new TreeMap<>(json(fixture));
        String arch = architecture(fixture);
        switch (arch) {
            case "prompt" -> {
                int width = ((Number) json.get("token_dim")).intValue();
                return new Setup(embeddingAndHead(width), json, List.of(), Map.of());
            }
            case "prefix" -> {
                json.put("token_dim", 4);
                json.put("num_layers", 1);
                json.put("num_attention_heads", 2);
                return new Setup(TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-3), 7, 5, 4, 1, 8), json, List.of(),
                        Map.of());
            }
            case "conv" -> {
                // PEFT's ModelConv2D: conv2d = Conv2d(5, 10, 3), then lin0 = Linear(10, 2)
                ComputationGraph g = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(7)
                        .dataType(DataType.FLOAT).updater(new Adam(1e-3)).graphBuilder().addInputs("in")
                        .setInputTypes(InputType.convolutional(3, 3, 5))
                        .addLayer("conv2d", new ConvolutionLayer.Builder(3, 3).nOut(10).activation(Activation.RELU)
                                .build(), "in")
                        .addLayer("lin0", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                                .activation(Activation.IDENTITY).build(), "conv2d")
                        .setOutputs("lin0").build());
                g.init();
                return new Setup(g, json, List.of("conv2d", "lin0"), Map.of("conv2d", new Module("conv", 5, 10, 3),
                        "lin0", new Module("dense", 10, 2, 0)));
            }
            case "emb-conv1d" -> {
                // PEFT's ModelEmbConv1D: emb = Embedding(100, 5), conv1d = transformers' Conv1D(1, 5) (a dense
                // layer of 5 inputs and 1 output, weight stored [in, out]), then lin0
                // no setInputTypes: DL4J M2.1 would overwrite the embedding's vocabulary with the input size
                ComputationGraph g = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(7)
                        .dataType(DataType.FLOAT).updater(new Adam(1e-3)).graphBuilder().addInputs("in")
                        .addLayer("emb", new EmbeddingSequenceLayer.Builder().nIn(100).nOut(5).hasBias(false).build(), "in")
                        .addLayer("conv1d", new DenseLayer.Builder().nIn(5).nOut(1).activation(Activation.RELU).build(),
                                new RnnToFeedForwardPreProcessor(), "emb")
                        .addLayer("lin0", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(1).nOut(2)
                                .activation(Activation.IDENTITY).build(), new FeedForwardToRnnPreProcessor(), "conv1d")
                        .setOutputs("lin0").build());
                g.init();
                return new Setup(g, json, List.of("emb", "conv1d", "lin0"), Map.of("emb", new Module("embedding", 100, 5, 0),
                        "conv1d", new Module("dense", 5, 1, 0), "lin0", new Module("dense", 1, 2, 0)));
            }
            default -> {
                List<String> modules = modules(arch);
                return new Setup(chain(modules), json, modules, Map.of());
            }
        }
    }

    private static void write(Path dir, Map<String, Object> json, Map<String, long[]> tensors) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("adapter_config.json"), PeftJson.write(json), StandardCharsets.UTF_8);
        Map<String, SafeTensor> t = new LinkedHashMap<>();
        int seed = 1;
        for (Map.Entry<String, long[]> e : tensors.entrySet()) {
            long n = 1;
            for (long d : e.getValue()) {
                n *= d;
            }
            float[] v = new float[Math.toIntExact(n)];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) Math.sin(0.37 * (i + 1) + seed) * 0.1f;
            }
            seed++;
            t.put(e.getKey(), SafeTensor.ofFloats(e.getValue(), v));
        }
        Safetensors.write(dir.resolve("adapter_model.safetensors"), t, Map.of("format", "pt"));
    }

    // ---------------------------------------------------------------- the tests

    /** The base-model names of the layers {@code peft} adapts (an output layer's projection by the layer's name). */
    private static Set<String> adapted(PeftModel peft) {
        Set<String> out = new TreeSet<>();
        peft.adaptedLayers().values().forEach(f -> out.add(f.baseLayerName()));
        return out;
    }

    /**
     * Each fixture either loads onto a base named like its model, adapting the modules PEFT adapted and
     * writing back the tensors it read, or is refused naming the key that stops it (the base untouched).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void everyFixtureLoadsOrIsRefusedNamingTheKey(String fixture, @TempDir Path dir) throws Exception {
        Setup s = setup(fixture);
        Expected e = REFUSED.containsKey(fixture) || s.json().get("target_modules") == null
                && s.json().containsKey("target_modules") ? null : expected(s.json(), s.modules(), s.kinds());
        write(dir, s.json(), e == null ? Map.of("prompt_embeddings", new long[] {1, 1}) : e.tensors());
        INDArray before = s.base().params().dup();
        if (REFUSED.containsKey(fixture)) {
            PeftException x = org.junit.jupiter.api.Assertions.assertThrows(PeftException.class,
                    () -> Peft.load(s.base(), dir));
            assertTrue(x.getMessage().contains(REFUSED.get(fixture)), fixture + ": " + x.getMessage());
            assertTrue(x.getMessage().startsWith(dir.resolve("adapter_config.json") + ": ")
                    && !x.getMessage().contains("adapter_config.json: adapter_config.json"), x.getMessage());
            assertEquals(before, s.base().params(), "the base is left as it was");
            return;
        }
        PeftModel peft = Peft.load(s.base(), dir);
        assertEquals(e.targets(), adapted(peft), fixture + ": adapted layers");
        Path again = dir.resolve("again");
        peft.saveAdapter(again);
        Map<String, SafeTensor> read = Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors();
        Map<String, SafeTensor> written = Safetensors.read(again.resolve("adapter_model.safetensors")).tensors();
        assertEquals(new TreeSet<>(read.keySet()), new TreeSet<>(written.keySet()), fixture + ": tensors written back");
        for (String name : read.keySet()) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(read.get(name).toFloats(), written.get(name).toFloats(),
                    fixture + ": " + name);
        }
        assertEquals(e.targets(), adapted(Peft.load(s.base(), again)),
                fixture + ": the file peft4j writes selects the same layers");
    }

    /**
     * The BERT fixtures load as well onto a graph with other layer names ({@code l0.q}, ...) through a
     * name map from BERT's module paths (the file's {@code bert.} prefix tolerated): target lists,
     * regular expressions, exclusions, layer indices, rank patterns and the sequence-classification head
     * are resolved over the module paths and give the same layers, mapped.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("bertFixtures")
    void bertFixturesLoadThroughAModuleNameMap(String fixture, @TempDir Path dir) throws Exception {
        Setup s = setup(fixture);
        Expected e = expected(s.json(), s.modules(), s.kinds());
        write(dir, s.json(), e.tensors());
        ModuleNames.Builder b = ModuleNames.builder().tolerate("bert.");
        List<String> layers = new ArrayList<>();
        Map<String, String> layerOf = new TreeMap<>();
        for (String m : s.modules()) {
            String path = m.startsWith("bert.") ? m.substring("bert.".length()) : m;
            String layer = "l" + layers.size() + "." + path.substring(path.lastIndexOf('.') + 1);
            layers.add(layer);
            layerOf.put(m, layer);
            b.map(path, layer);
        }
        ModuleNames names = b.build();
        PeftModel peft = Peft.load(chain(layers), dir, names);
        Set<String> mapped = new TreeSet<>();
        e.targets().forEach(t -> mapped.add(layerOf.get(t)));
        assertEquals(mapped, adapted(peft), fixture);
        Object ranks = s.json().get("rank_pattern");
        for (String t : e.targets()) {
            long r = ((Number) patternValue(ranks, t, s.json().get("r"))).longValue();
            assertEquals(r, ((LoraConfig) peft.config()).rankFor(layerOf.get(t)), fixture + ": rank of " + t);
        }
        assertFalse(peft.config().modulesToSave().isEmpty(), "the classifier is a module to save");
    }
}
