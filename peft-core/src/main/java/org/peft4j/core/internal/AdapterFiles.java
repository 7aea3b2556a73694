package org.peft4j.core.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.TreeSet;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.AtomicFiles;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;

/**
 * Adapter files in Hugging Face PEFT's layout: {@code adapter_config.json} (sorted keys, two-space
 * indent; peft4j's own keys under {@code "peft4j"}) and {@code adapter_model.safetensors} with
 * tensors named {@code base_model.model.<layer>.<suffix>} in PyTorch orientation ({@code lora_A}
 * {@code [r, in]}, {@code lora_B} {@code [out, r]}, trained dense modules {@code weight [out, in]},
 * {@code bias [out]}; other trained modules under their DL4J parameter key and shape), plus
 * model-level tensors assembled from the column blocks of several layers
 * ({@link AdapterLayer#sharedBlocks()}: prompt learning's {@code prompt_embeddings}).
 *
 * <p>Loading validates the whole directory (JSON types, safetensors structure, base-model
 * fingerprint, tensor names and shapes against the wrapped graph) before any parameter is written.
 *
 * <p>The two files of an adapter are written one after the other, so a save that stops half-way
 * (a crash, a full disk) can leave new weights beside an old config. The config therefore records
 * the SHA-256 of the weights file it was written with ({@value #WEIGHTS_DIGEST_KEY} under
 * {@code "peft4j"}), and loading refuses a pair that disagrees. The directory's default adapter
 * is written last and lists the other adapters saved with it, with the digests of their weights
 * ({@value #SAVED_ADAPTERS_KEY}): {@link org.peft4j.core.Peft#load} loads exactly those, so the
 * sub-directory of an adapter deleted since an earlier save into the same directory stays on disk
 * but does not come back.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterFiles {

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    public static final String STATE_FILE = "training_state.safetensors";
    static final String PREFIX = "base_model.model.";
    private static final long MAX_CONFIG_BYTES = 16L << 20;
    /** Hugging Face PEFT's model-level tensor of prompt and prefix tuning, {@code [num_virtual_tokens, …]}. */
    static final String PROMPT_TENSOR = "prompt_embeddings";
    /** Key under {@code "peft4j"}: hex SHA-256 of the {@value #WEIGHTS_FILE} written with the config. */
    public static final String WEIGHTS_DIGEST_KEY = "adapter_model_sha256";
    /**
     * Key under {@code "peft4j"} in a directory's default adapter: the other adapters saved with it,
     * name → hex SHA-256 of their weights file.
     */
    public static final String SAVED_ADAPTERS_KEY = "saved_adapters";
    /**
     * Key under {@code "peft4j"} in a checkpoint's default adapter: hex SHA-256 of the
     * {@value #STATE_FILE} written with the adapters.
     */
    public static final String TRAINING_STATE_KEY = "training_state_sha256";
    /**
     * Key under {@code "peft4j"}: how the wrapped model held its frozen base when not as floats,
     * written by configs that hold it otherwise (QLoRA: its 4-bit spec). An adapter file needs no
     * such base (it applies to the float base too), but training resumed from a checkpoint must go
     * on over the base it started on, so {@link #checkResumedBaseForm} compares it.
     */
    public static final String BASE_FORM_KEY = "quantized_base";

    private AdapterFiles() {
    }

    /** This library's version, as written into adapter files. */
    public static String libraryVersion() {
        try (InputStream in = AdapterFiles.class.getResourceAsStream("/org/peft4j/core/version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** One tensor of an adapter file and the parameter it belongs to. */
    record Slot(String vertex, String key, boolean transposed, long[] fileShape) {
    }

    /** The tensors a graph's trainable parameters map to, by file name. */
    static Map<String, Slot> layout(ComputationGraph g) {
        Map<String, Slot> m = new TreeMap<>();
        for (Layer l : g.getLayers()) {
            if (l.numParams() == 0) {
                continue;
            }
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            String vertex = c.getLayerName();
            if (c instanceof AdapterLayer) {
                AdapterLayer a = (AdapterLayer) c;
                for (FrozenDenseLayer.SavedTensor st : a.savedTensors()) {
                    INDArray p = l.getParam(st.paramKey());
                    long[] shape = st.fileShape() != null ? st.fileShape().clone() : fileShape(p, st.transposed());
                    if (SafeTensorCounts.product(shape) != p.length()) {
                        throw new IllegalStateException("saved shape " + java.util.Arrays.toString(shape) + " of " + vertex
                                + "." + st.paramKey() + " does not hold its " + p.length() + " elements");
                    }
                    m.put(PREFIX + a.baseLayerName() + "." + st.fileSuffix(),
                            new Slot(vertex, st.paramKey(), st.transposed(), shape));
                }
            } else {
                boolean dense = c instanceof DenseLayer || c instanceof OutputLayer || c instanceof RnnOutputLayer;
                for (Map.Entry<String, INDArray> p : l.paramTable().entrySet()) {
                    String suffix = dense && "W".equals(p.getKey()) ? "weight" : dense && "b".equals(p.getKey()) ? "bias" : p.getKey();
                    boolean t = dense && "W".equals(p.getKey());
                    m.put(PREFIX + vertex + "." + suffix, new Slot(vertex, p.getKey(), t, fileShape(p.getValue(), t)));
                }
            }
        }
        return m;
    }

    /** A model-level tensor and the blocks of it each layer holds. */
    record Shared(long[] fileShape, List<Part> parts) {
    }

    /** One layer's block of a model-level tensor. */
    record Part(String vertex, AdapterLayer layer, AdapterLayer.SharedBlock block) {
    }

    /**
     * The model-level tensors of a graph, by file name, checked for consistency: every block of a
     * tensor declares the same shape, and the blocks tile its columns exactly.
     */
    static Map<String, Shared> sharedLayout(ComputationGraph g) {
        Map<String, Shared> m = new TreeMap<>();
        for (Layer l : g.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (!(c instanceof AdapterLayer)) {
                continue;
            }
            for (AdapterLayer.SharedBlock b : ((AdapterLayer) c).sharedBlocks()) {
                Shared s = m.computeIfAbsent(b.fileName(), k -> new Shared(b.fileShape(), new ArrayList<>()));
                if (!java.util.Arrays.equals(s.fileShape(), b.fileShape())) {
                    throw new IllegalStateException("layers disagree on the shape of " + b.fileName() + ": "
                            + java.util.Arrays.toString(s.fileShape()) + " and " + b + " of " + c.getLayerName());
                }
                if (b.paramKey() != null) {
                    INDArray p = l.getParam(b.paramKey());
                    if (p == null || p.rank() != 2 || p.size(0) != b.columns() || p.size(1) != b.rows()) {
                        throw new IllegalStateException("block " + b + " of " + c.getLayerName() + ": parameter "
                                + b.paramKey() + " must be [" + b.columns() + ", " + b.rows() + "], is "
                                + (p == null ? "missing" : java.util.Arrays.toString(p.shape())));
                    }
                }
                s.parts().add(new Part(c.getLayerName(), (AdapterLayer) c, b));
            }
        }
        for (Map.Entry<String, Shared> e : m.entrySet()) {
            List<Part> parts = new ArrayList<>(e.getValue().parts());
            parts.sort(java.util.Comparator.comparingLong(p -> p.block().columnOffset()));
            long next = 0;
            for (Part p : parts) {
                if (p.block().columnOffset() != next) {
                    throw new IllegalStateException("the blocks of " + e.getKey() + " do not tile its columns: "
                            + (p.block().columnOffset() < next ? "overlap" : "gap") + " at column " + next + "; blocks "
                            + parts.stream().map(x -> x.vertex() + ": " + x.block()).toList());
                }
                next += p.block().columns();
            }
            long width = e.getValue().parts().get(0).block().width();
            if (next != width) {
                throw new IllegalStateException("the blocks of " + e.getKey() + " cover " + next + " of its "
                        + width + " columns");
            }
        }
        return m;
    }

    /** Element counts of shapes. */
    private static final class SafeTensorCounts {
        static long product(long[] shape) {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }
    }

    private static long[] fileShape(INDArray p, boolean transposed) {
        long[] s = p.shape().clone();
        if (transposed && s.length == 2) {
            return new long[] {s[1], s[0]};
        }
        return s;
    }

    /**
     * Writes one adapter: {@code g} is wrapped with {@code config} and holds the adapter's
     * parameters. The weights file is written first, then the config that records its digest.
     *
     * @param savedWith for a directory's default adapter, the other adapters saved with it (name →
     *     digest returned by their own save), recorded under {@value #SAVED_ADAPTERS_KEY}; null for
     *     an adapter in a sub-directory
     * @param trainingState for a checkpoint's default adapter, the digest {@link #saveTrainingState}
     *     returned, recorded under {@value #TRAINING_STATE_KEY}; null otherwise
     * @return the hex SHA-256 of the weights file written
     */
    public static String save(PeftConfig config, BaseFingerprint fingerprint, ComputationGraph g, Path dir,
                              List<String> resolvedTargets, Map<String, String> savedWith, String trainingState)
            throws IOException {
        Map<String, Object> json = new TreeMap<>(config.toAdapterConfig(g));
        if (!config.targetTypes().isEmpty()) {
            json.put("target_modules", resolvedTargets);
        }
        Map<String, Object> ext = new TreeMap<>();
        Object configExt = json.remove("peft4j");
        if (configExt instanceof Map) {
            ((Map<?, ?>) configExt).forEach((k, v) -> ext.put(String.valueOf(k), v));
        }
        ext.put("library_version", libraryVersion());
        ext.put("format_version", 1);
        ext.put("base_model_fingerprint", fingerprint.toJson());
        json.put("peft4j", ext);

        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, Slot> e : layout(g).entrySet()) {
                Slot s = e.getValue();
                INDArray p = g.getLayer(s.vertex()).getParam(s.key());
                INDArray oriented = s.transposed() && p.rank() == 2 ? p.transpose() : p;
                tensors.put(e.getKey(), SafeTensor.ofFloats(s.fileShape(),
                        oriented.castTo(DataType.FLOAT).dup('c').data().asFloat()));
            }
            for (Map.Entry<String, Shared> e : sharedLayout(g).entrySet()) {
                if (tensors.containsKey(e.getKey())) {
                    throw new IllegalStateException("two tensors named " + e.getKey());
                }
                long[] shape = e.getValue().fileShape();
                int rows = Math.toIntExact(e.getValue().parts().get(0).block().rows());
                int total = Math.toIntExact(e.getValue().parts().get(0).block().width());
                float[] out = new float[Math.multiplyExact(rows, total)];
                for (Part p : e.getValue().parts()) {
                    AdapterLayer.SharedBlock b = p.block();
                    Layer l = g.getLayer(p.vertex());
                    INDArray v = b.paramKey() != null ? l.getParam(b.paramKey()).transpose()
                            : p.layer().sharedBlockValue(b, l.paramTable());
                    int cols = Math.toIntExact(b.columns());
                    if (v.rank() != 2 || v.size(0) != rows || v.size(1) != cols) {
                        throw new IllegalStateException("block " + b + " of " + p.vertex() + " has shape "
                                + java.util.Arrays.toString(v.shape()) + ", expected [" + rows + ", " + cols + "]");
                    }
                    float[] f = v.castTo(DataType.FLOAT).dup('c').data().asFloat();
                    int off = Math.toIntExact(b.columnOffset());
                    for (int r = 0; r < rows; r++) {
                        System.arraycopy(f, r * cols, out, r * total + off, cols);
                    }
                }
                tensors.put(e.getKey(), SafeTensor.ofFloats(shape, out));
            }
        }
        byte[] weights = Safetensors.toBytes(tensors, Map.of("format", "pt"));
        String digest = HexFormat.of().formatHex(sha256().digest(weights));
        ext.put(WEIGHTS_DIGEST_KEY, digest);
        if (savedWith != null) {
            ext.put(SAVED_ADAPTERS_KEY, new TreeMap<>(savedWith));
        }
        if (trainingState != null) {
            ext.put(TRAINING_STATE_KEY, trainingState);
        }
        Files.createDirectories(dir);
        AtomicFiles.write(dir.resolve(WEIGHTS_FILE), weights);
        AtomicFiles.write(dir.resolve(CONFIG_FILE), PeftJson.write(json).getBytes(StandardCharsets.UTF_8));
        return digest;
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * A validated adapter directory, not yet applied to any graph; {@code json} is the parsed config
     * file, {@code weightsDigest} the hex SHA-256 of its weights file.
     */
    public record Loaded(PeftConfig config, SafetensorsFile tensors, Map<String, Object> json, String weightsDigest) {

        /** The same files, to be applied with another config (e.g. QLoRA for a LoRA file). */
        public Loaded withConfig(PeftConfig other) {
            return new Loaded(other, tensors, json, weightsDigest);
        }

        /**
         * The other adapters the default adapter of a directory was saved with (name → digest of
         * their weights), sorted by name; empty when the config lists none, null when it predates
         * the list (files of other writers): then every sub-directory holding an adapter is one.
         *
         * @throws AdapterFormatException if the list is not an object of name → 64-digit hex digest
         */
        public Map<String, String> savedWith(Path dir) {
            Object ext = json.get("peft4j");
            Object list = ext instanceof Map ? ((Map<?, ?>) ext).get(SAVED_ADAPTERS_KEY) : null;
            if (list == null) {
                return null;
            }
            String what = dir.resolve(CONFIG_FILE) + ": \"peft4j\".\"" + SAVED_ADAPTERS_KEY + "\"";
            if (!(list instanceof Map)) {
                throw new AdapterFormatException(what + " must be an object of adapter name to SHA-256; got " + list);
            }
            Map<String, String> out = new TreeMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) list).entrySet()) {
                out.put(String.valueOf(e.getKey()), digestValue(e.getValue(), what + " of \"" + e.getKey() + "\""));
            }
            return out;
        }
    }

    private static String digestValue(Object v, String what) {
        if (!(v instanceof String) || !((String) v).matches("[0-9a-f]{64}")) {
            throw new AdapterFormatException(what + " must be a SHA-256 as 64 lower-case hex digits; got " + v);
        }
        return (String) v;
    }

    /**
     * Refuses to resume the adapter saved in {@code dir} with {@code resumed} when the two hold the
     * frozen base differently ({@value #BASE_FORM_KEY} under {@code "peft4j"}: a QLoRA checkpoint
     * resumed without the config hook that makes it QLoRA again, or the reverse).
     *
     * @throws IncompatibleAdapterException naming both forms and the fix
     */
    public static void checkResumedBaseForm(Path dir, PeftConfig resumed) throws IOException {
        Path configFile = dir.resolve(CONFIG_FILE);
        Object savedExt = PeftJson.parseObject(Files.readAllBytes(configFile), configFile.toString()).get("peft4j");
        Object saved = savedExt instanceof Map ? ((Map<?, ?>) savedExt).get(BASE_FORM_KEY) : null;
        Object nowExt = resumed.toAdapterConfig().get("peft4j");
        Object now = nowExt instanceof Map ? ((Map<?, ?>) nowExt).get(BASE_FORM_KEY) : null;
        if (!java.util.Objects.equals(saved, now)) {
            throw new IncompatibleAdapterException(configFile + " was saved by a model that held its frozen base "
                    + describeBaseForm(saved) + ", but the config to resume with holds it " + describeBaseForm(now)
                    + ": training would go on over another base. Resume with the config hook the training used, e.g. "
                    + "PeftModel.resume(base, dir, c -> QLoraConfig.of((LoraConfig) c, spec)) for a QLoRA checkpoint");
        }
    }

    private static String describeBaseForm(Object form) {
        return form == null ? "as floats" : "as " + form;
    }

    /**
     * Reads and validates an adapter directory against a base model's fingerprint.
     *
     * @throws AdapterFormatException if a file is missing or malformed
     * @throws IncompatibleAdapterException if the adapter was trained on another base model
     */
    public static Loaded read(Path dir, BaseFingerprint base, boolean ignoreFingerprint) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new AdapterFormatException("no adapter directory at " + dir);
        }
        Path configFile = dir.resolve(CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new AdapterFormatException("no adapter in " + dir + ": " + CONFIG_FILE + " is missing");
        }
        if (Files.size(configFile) > MAX_CONFIG_BYTES) {
            throw new AdapterFormatException(configFile + " is " + Files.size(configFile) + " bytes; an adapter config "
                    + "is at most " + MAX_CONFIG_BYTES + " bytes");
        }
        String what = configFile.toString();
        Map<String, Object> json = PeftJson.parseObject(Files.readAllBytes(configFile), what);
        Object type = json.get("peft_type");
        if (!(type instanceof String)) {
            throw new AdapterFormatException(what + ": \"peft_type\" must be a string such as \"LORA\"; got " + type);
        }
        PeftConfigFactory factory = null;
        List<String> known = new ArrayList<>();
        for (PeftConfigFactory f : ServiceLoader.load(PeftConfigFactory.class, AdapterFiles.class.getClassLoader())) {
            known.add(f.peftType());
            if (f.peftType().equals(type)) {
                factory = f;
            }
        }
        if (factory == null) {
            throw new AdapterFormatException(what + ": peft_type \"" + type + "\" is not supported; known types: " + known
                    + " (is the tuner's module, e.g. peft-lora, on the classpath?)");
        }
        PeftConfig config;
        try {
            config = factory.fromAdapterConfig(json);
        } catch (AdapterFormatException e) {
            throw new AdapterFormatException(what + ": " + e.getMessage(), e);
        }
        Object ext = json.get("peft4j");
        if (ext != null && !(ext instanceof Map)) {
            throw new AdapterFormatException(what + ": \"peft4j\" must be an object");
        }
        if (!ignoreFingerprint && ext != null && ((Map<?, ?>) ext).get("base_model_fingerprint") != null) {
            BaseFingerprint expected = BaseFingerprint.fromJson(((Map<?, ?>) ext).get("base_model_fingerprint"), what);
            List<String> diff = expected.differences(base);
            if (!diff.isEmpty()) {
                throw new IncompatibleAdapterException("the adapter in " + dir + " was trained on another base model: "
                        + String.join("; ", diff) + ". Load with ignoreFingerprint=true to apply it anyway.");
            }
        }
        Path weights = dir.resolve(WEIGHTS_FILE);
        if (!Files.isRegularFile(weights)) {
            throw new AdapterFormatException("no adapter weights in " + dir + ": " + WEIGHTS_FILE + " is missing");
        }
        byte[] bytes = Safetensors.readBytes(weights);
        String digest = HexFormat.of().formatHex(sha256().digest(bytes));
        Object recorded = ext == null ? null : ((Map<?, ?>) ext).get(WEIGHTS_DIGEST_KEY);
        if (recorded != null && !digestValue(recorded, what + ": \"peft4j\".\"" + WEIGHTS_DIGEST_KEY + "\"")
                .equals(digest)) {
            throw new AdapterFormatException(weights + " is not the weights file " + CONFIG_FILE + " was saved with "
                    + "(SHA-256 " + digest + ", the config records " + recorded + "): the two files come from different "
                    + "saves, for example a saveAdapter that stopped half-way; save the adapter again");
        }
        SafetensorsFile tensors = Safetensors.fromBytes(bytes, weights);
        Object tokens = json.get("num_virtual_tokens");
        if (tokens instanceof Number) {
            // Prompt and prefix tuning size their prompt by this key, and prompt tuning computes an
            // initial prompt while planning the graph: check it against the file before that.
            SafeTensor prompt = tensors.tensors().get(PROMPT_TENSOR);
            long n = ((Number) tokens).longValue();
            if (prompt == null || prompt.shape().length != 2 || prompt.shape()[0] != n) {
                throw new AdapterFormatException(what + ": \"num_virtual_tokens\" is " + tokens + " but " + WEIGHTS_FILE
                        + (prompt == null ? " holds no " + PROMPT_TENSOR + " tensor"
                        : "'s " + PROMPT_TENSOR + " has shape " + java.util.Arrays.toString(prompt.shape()))
                        + "; the config does not match its weights");
            }
        }
        return new Loaded(config, tensors, json, digest);
    }

    /**
     * Refuses, before the wrapped graph is allocated, one whose parameter vector would be larger
     * than the adapter's weights file (its F32, F16 and BF16 values) plus the whole base model. A
     * graph built for a matching file never is (the file holds what it trains; frozen copies are
     * at most the base), while a config whose size keys were edited ({@code r},
     * {@code bottleneck_size}, ...) would otherwise allocate what it asks for before
     * {@link #assign} finds that the tensor shapes disagree. ({@code num_virtual_tokens} is
     * checked against the file's {@value #PROMPT_TENSOR} when the files are read, before planning.)
     *
     * @throws AdapterFormatException naming the three counts
     */
    public static void checkSize(GraphRewriter.Plan plan, Loaded loaded, long baseParams, Path dir) {
        long inFile = 0;
        for (SafeTensor t : loaded.tensors().tensors().values()) {
            if (t.dtype() == DType.F32 || t.dtype() == DType.F16 || t.dtype() == DType.BF16) {
                inFile = Math.addExact(inFile, t.elementCount());
            }
        }
        long wanted = plan.numParams();
        if (wanted > inFile + baseParams) {
            throw new AdapterFormatException(dir.resolve(CONFIG_FILE) + " describes a wrapped graph of " + wanted
                    + " parameters, more than the " + inFile + " values in " + WEIGHTS_FILE + " plus the base model's "
                    + baseParams + ": the config does not match its weights (was a size such as r or bottleneck_size "
                    + "edited?); the wrapped graph was not allocated");
        }
    }

    /**
     * Checks that the file's tensors are exactly those a graph wrapped with the adapter's config
     * trains (names and shapes), then writes them into {@code g}. Nothing is written on failure.
     */
    public static void assign(Loaded loaded, ComputationGraph g, Path dir) {
        Map<String, Slot> expected = layout(g);
        Map<String, Shared> shared = sharedLayout(g);
        Map<String, SafeTensor> actual = loaded.tensors().tensors();
        TreeSet<String> unknown = new TreeSet<>(actual.keySet());
        unknown.removeAll(expected.keySet());
        unknown.removeAll(shared.keySet());
        TreeSet<String> missing = new TreeSet<>(expected.keySet());
        missing.addAll(shared.keySet());
        missing.removeAll(actual.keySet());
        List<String> problems = new ArrayList<>(baseModelDifferences(loaded, g));
        if (!unknown.isEmpty()) {
            problems.add("unknown tensors " + unknown);
        }
        if (!missing.isEmpty()) {
            problems.add("missing tensors " + missing);
        }
        for (Map.Entry<String, Slot> e : expected.entrySet()) {
            SafeTensor t = actual.get(e.getKey());
            if (t != null && !java.util.Arrays.equals(t.shape(), e.getValue().fileShape())) {
                problems.add(e.getKey() + " has shape " + java.util.Arrays.toString(t.shape()) + ", expected "
                        + java.util.Arrays.toString(e.getValue().fileShape()));
            }
        }
        for (Map.Entry<String, Shared> e : shared.entrySet()) {
            SafeTensor t = actual.get(e.getKey());
            if (t != null && !java.util.Arrays.equals(t.shape(), e.getValue().fileShape())) {
                problems.add(e.getKey() + " has shape " + java.util.Arrays.toString(t.shape()) + ", expected "
                        + java.util.Arrays.toString(e.getValue().fileShape()));
            }
        }
        if (!problems.isEmpty()) {
            throw new IncompatibleAdapterException("the adapter in " + dir + " does not fit the base model: "
                    + String.join("; ", problems));
        }
        // a list, not a map: INDArray equality is by value, and fresh parameters (LoRA's B = 0) are equal
        List<INDArray[]> writes = new ArrayList<>();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, Slot> e : expected.entrySet()) {
                Slot s = e.getValue();
                SafeTensor t = actual.get(e.getKey());
                float[] values = floats(t, e.getKey(), dir);
                INDArray p = g.getLayer(s.vertex()).getParam(s.key());
                INDArray a = Nd4j.create(values, s.fileShape(), 'c').castTo(p.dataType());
                writes.add(new INDArray[] {p, s.transposed() && a.rank() == 2 ? a.transpose() : a});
            }
            for (Map.Entry<String, Shared> e : shared.entrySet()) {
                SafeTensor t = actual.get(e.getKey());
                INDArray whole = null;
                for (Part p : e.getValue().parts()) {
                    AdapterLayer.SharedBlock b = p.block();
                    if (b.paramKey() == null) {
                        continue;
                    }
                    if (whole == null) {
                        whole = Nd4j.create(floats(t, e.getKey(), dir), new long[] {b.rows(), b.width()}, 'c');
                    }
                    INDArray param = g.getLayer(p.vertex()).getParam(b.paramKey());
                    INDArray block = whole.get(NDArrayIndex.all(),
                            NDArrayIndex.interval(b.columnOffset(), b.columnOffset() + b.columns()));
                    writes.add(new INDArray[] {param, block.transpose().castTo(param.dataType())});
                }
            }
            for (INDArray[] w : writes) {
                w[0].assign(w[1].reshape(w[0].shape()));
            }
        }
    }

    private static float[] floats(SafeTensor t, String name, Path dir) {
        float[] values;
        try {
            values = t.toFloats();
        } catch (IllegalStateException ex) {
            throw new AdapterFormatException(name + " in " + dir + " has dtype " + t.dtype()
                    + "; adapter tensors must be F32, F16 or BF16");
        }
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new AdapterFormatException(name + " in " + dir + " holds " + values[i] + " at element " + i
                        + "; adapter weights must be finite");
            }
        }
        return values;
    }

    /**
     * The {@link PeftConfig#baseModelKeys()} whose value in the file differs from the graph the
     * adapter goes onto (absent or null keys in the file are not compared: other writers may omit them).
     */
    private static List<String> baseModelDifferences(Loaded loaded, ComputationGraph g) {
        List<String> out = new ArrayList<>();
        if (loaded.json() == null || loaded.config().baseModelKeys().isEmpty()) {
            return out;
        }
        Map<String, Object> here = loaded.config().toAdapterConfig(g);
        for (String k : new TreeSet<>(loaded.config().baseModelKeys())) {
            Object file = loaded.json().get(k);
            Object base = here.get(k);
            if (file == null) {
                continue;
            }
            boolean same = file instanceof Number && base instanceof Number
                    ? ((Number) file).doubleValue() == ((Number) base).doubleValue() : file.equals(base);
            if (!same) {
                out.add(CONFIG_FILE + " has " + k + "=" + file + " but the base model has " + k + "=" + base);
            }
        }
        return out;
    }

    /** Tensor name prefix of an inactive adapter's optimizer state in {@value #STATE_FILE}. */
    static final String INACTIVE_STATE_PREFIX = "updater_state.";

    /**
     * Writes the optimizer state and iteration/epoch counters of {@code g} next to its adapter
     * files, with the optimizer state each inactive adapter keeps for when it is active again
     * ({@code inactiveStates}, by adapter name) as {@code updater_state.<name>}. Returns the file's
     * hex SHA-256, for the adapters written after it to record ({@link #save}).
     */
    public static String saveTrainingState(ComputationGraph g, String activeAdapter, Map<String, INDArray> inactiveStates,
                                           Path dir) throws IOException {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        INDArray state = g.getUpdater(false) == null ? null : g.getUpdater().getStateViewArray();
        if (state != null) {
            tensors.put("updater_state", SafeTensor.of(state.dup('c').reshape(state.length())));
        }
        for (Map.Entry<String, INDArray> e : new TreeMap<>(inactiveStates).entrySet()) {
            INDArray s = e.getValue();
            tensors.put(INACTIVE_STATE_PREFIX + e.getKey(), SafeTensor.of(s.dup('c').reshape(s.length())));
        }
        Map<String, String> meta = new TreeMap<>();
        meta.put("format", "pt");
        meta.put("iteration_count", Integer.toString(g.getConfiguration().getIterationCount()));
        meta.put("epoch_count", Integer.toString(g.getConfiguration().getEpochCount()));
        meta.put("active_adapter", activeAdapter);
        meta.put("library_version", libraryVersion());
        byte[] bytes = Safetensors.toBytes(tensors, meta);
        Files.createDirectories(dir);
        AtomicFiles.write(dir.resolve(STATE_FILE), bytes);
        return HexFormat.of().formatHex(sha256().digest(bytes));
    }

    /**
     * Restores what {@link #saveTrainingState} wrote: the active adapter, its optimizer state and
     * the counters into the model's active graph. Returns the inactive adapters' optimizer states
     * by adapter name, for the caller to hand to them.
     *
     * @throws AdapterFormatException if the file is missing or malformed, or names an adapter the
     *     model does not have
     */
    public static Map<String, SafeTensor> restoreTrainingState(PeftModel model, Path dir) throws IOException {
        Path file = dir.resolve(STATE_FILE);
        if (!Files.isRegularFile(file)) {
            throw new AdapterFormatException("no checkpoint in " + dir + ": " + STATE_FILE + " is missing");
        }
        byte[] bytes = Safetensors.readBytes(file);
        String digest = HexFormat.of().formatHex(sha256().digest(bytes));
        Path configFile = dir.resolve(CONFIG_FILE);
        Object ext = PeftJson.parseObject(Files.readAllBytes(configFile), configFile.toString()).get("peft4j");
        Object recorded = ext instanceof Map ? ((Map<?, ?>) ext).get(TRAINING_STATE_KEY) : null;
        if (recorded == null) {
            throw new AdapterFormatException(file + " does not belong to the adapters in " + dir + ": their "
                    + CONFIG_FILE + " records no training state, so they were written by saveAdapter, not saveCheckpoint "
                    + "(after the checkpoint or without one); resume needs the files of one saveCheckpoint");
        }
        if (!digestValue(recorded, configFile + ": \"peft4j\".\"" + TRAINING_STATE_KEY + "\"").equals(digest)) {
            throw new AdapterFormatException(file + " has SHA-256 " + digest + ", but " + configFile + " records " + recorded
                    + ": the optimizer state and the adapters come from different saves, for example a saveCheckpoint "
                    + "that stopped half-way; resume needs the files of one saveCheckpoint");
        }
        SafetensorsFile f = Safetensors.fromBytes(bytes, file);
        Map<String, String> meta = f.metadata();
        int iteration = parseCount(meta, "iteration_count", file);
        int epoch = parseCount(meta, "epoch_count", file);
        String active = meta.getOrDefault("active_adapter", PeftModel.DEFAULT_ADAPTER);
        if (!model.adapterNames().contains(active)) {
            throw new AdapterFormatException(file + ": active adapter \"" + active + "\" is not among " + model.adapterNames());
        }
        Map<String, SafeTensor> inactive = new TreeMap<>();
        for (Map.Entry<String, SafeTensor> e : f.tensors().entrySet()) {
            if (e.getKey().equals("updater_state")) {
                continue;
            }
            String name = e.getKey().startsWith(INACTIVE_STATE_PREFIX)
                    ? e.getKey().substring(INACTIVE_STATE_PREFIX.length()) : null;
            if (name == null || name.equals(active) || !model.adapterNames().contains(name)) {
                throw new AdapterFormatException(file + ": tensor \"" + e.getKey() + "\" is not the optimizer state of "
                        + "an inactive adapter of this model; expected \"updater_state\" and \"" + INACTIVE_STATE_PREFIX
                        + "<name>\" for <name> among " + model.adapterNames() + " other than the active \"" + active + "\"");
            }
            inactive.put(name, e.getValue());
        }
        model.setAdapter(active);
        ComputationGraph g = model.graph();
        SafeTensor state = f.tensors().get("updater_state");
        if (state != null) {
            INDArray view = g.getUpdater(true).getStateViewArray();
            if (view == null || view.length() != state.elementCount()) {
                throw new IncompatibleAdapterException(file + ": optimizer state has " + state.elementCount()
                        + " values, the model's optimizer needs " + (view == null ? 0 : view.length()));
            }
            view.assign(state.toINDArray(view.dataType()).reshape(view.shape()));
        }
        g.getConfiguration().setIterationCount(iteration);
        g.getConfiguration().setEpochCount(epoch);
        return inactive;
    }

    private static int parseCount(Map<String, String> meta, String key, Path file) {
        try {
            int v = Integer.parseInt(meta.get(key));
            if (v < 0) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException e) {
            throw new AdapterFormatException(file + ": metadata \"" + key + "\" must be a non-negative integer; got "
                    + meta.get(key));
        }
    }
}
