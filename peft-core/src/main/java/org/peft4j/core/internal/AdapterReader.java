package org.peft4j.core.internal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.io.SafetensorsHeader;
import org.peft4j.core.io.TensorInfo;
import org.peft4j.core.spi.AdapterFileKeys;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.core.spi.Messages;
import org.peft4j.core.spi.PeftJson;

/**
 * Reads and validates adapter directories, and applies what was read to a wrapped graph: the
 * config and its JSON types, the base-model fingerprint, the weights file against the digest its
 * config recorded, the wrapped graph's size against the file ({@link #checkSize}) and every
 * tensor's name and shape against the graph ({@link #assign}) before any parameter is written.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterReader {

    private AdapterReader() {
    }

    /**
     * A validated adapter directory, not yet applied to any graph: {@code tensors} the checked
     * header of its weights file (the data is read by {@link #assign} once names and shapes are
     * known to fit), {@code tensorNames} the name of each of its tensors in the graph's layer names
     * (graph name → file name; the same name unless the file is in a model's module paths),
     * {@code json} the config as peft4j read it (in layer names; a format-1 {@code "peft4j"} object
     * removed), {@code records} peft4j's records beside it, {@code weightsDigest} the hex SHA-256
     * the records hold for the weights file (null if none), which {@link #assign} verifies while
     * it reads the data.
     */
    public record Loaded(PeftConfig config, SafetensorsHeader tensors, Map<String, String> tensorNames,
                         Map<String, Object> json, AdapterSidecar.Records records, String weightsDigest) {

        /** The same files, to be applied with another config (e.g. QLoRA for a LoRA file). */
        public Loaded withConfig(PeftConfig other) {
            return new Loaded(other, tensors, tensorNames, json, records, weightsDigest);
        }

        /** Whether the file's tensors were renamed (a file in a PyTorch model's module paths, read through a name map). */
        public boolean renamed() {
            for (Map.Entry<String, String> e : tensorNames.entrySet()) {
                if (!e.getKey().equals(e.getValue())) {
                    return true;
                }
            }
            return false;
        }

        /** The file's tensors by their name in the graph's layer names. */
        public Map<String, TensorInfo> byGraphName() {
            Map<String, TensorInfo> out = new java.util.LinkedHashMap<>();
            tensorNames.forEach((graphName, fileName) -> out.put(graphName, tensors.tensors().get(fileName)));
            return out;
        }

        /**
         * The other adapters the default adapter of a directory was saved with (name → digest of
         * their weights), sorted by name; empty when the records list none, null when they predate
         * the list or there are none (files of other writers): then every sub-directory holding an
         * adapter is one.
         *
         * @throws AdapterFormatException if the list is not an object of name → 64-digit hex digest
         */
        public Map<String, String> savedWith(Path dir) {
            Object list = records.get(AdapterFiles.SAVED_ADAPTERS_KEY);
            if (list == null) {
                return null;
            }
            String what = records.describe(AdapterFiles.SAVED_ADAPTERS_KEY);
            if (!(list instanceof Map)) {
                throw new AdapterFormatException(what + " must be an object of adapter name to SHA-256; got " + list);
            }
            Map<String, String> out = new TreeMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) list).entrySet()) {
                out.put(String.valueOf(e.getKey()), AdapterFiles.digestValue(e.getValue(), what + " of \""
                        + Messages.shorten(e.getKey()) + "\""));
            }
            return out;
        }
    }

    /**
     * Refuses to resume the adapter saved in {@code dir} with {@code resumed} when the two hold the
     * frozen base differently ({@link AdapterFileKeys#BASE_FORM} among the tuner's records: a QLoRA
     * checkpoint resumed without the config hook that makes it QLoRA again, or the reverse).
     *
     * @throws IncompatibleAdapterException naming both forms and the fix
     */
    public static void checkResumedBaseForm(Path dir, PeftConfig resumed) throws IOException {
        AdapterSidecar.Records records = AdapterSidecar.read(dir);
        Object saved = records.tunerConfig().get(AdapterFileKeys.BASE_FORM);
        Object nowExt = resumed.toAdapterConfig().get(AdapterFileKeys.EXTENSION);
        Object now = nowExt instanceof Map ? ((Map<?, ?>) nowExt).get(AdapterFileKeys.BASE_FORM) : null;
        if (!java.util.Objects.equals(saved, now)) {
            throw new IncompatibleAdapterException((records.source() == null ? dir.resolve(AdapterFiles.CONFIG_FILE)
                    : records.source()) + " was saved by a model that held its frozen base "
                    + describeBaseForm(saved) + ", but the config to resume with holds it " + describeBaseForm(now)
                    + ": training would go on over another base. Resume with the config hook the training used, e.g. "
                    + "PeftModel.resume(base, dir, c -> QLoraConfig.of((LoraConfig) c, spec)) for a QLoRA checkpoint");
        }
    }

    private static String describeBaseForm(Object form) {
        return form == null ? "as floats" : "as " + form;
    }

    /**
     * Reads and validates an adapter directory against a base model: the config's keys against the
     * tuner's {@link KeyPolicy}, {@code modules_to_save} as PEFT reads it ({@link PeftFileSemantics}),
     * with {@code names} the file's module paths translated into layer names
     * ({@link ModulePathTranslation}), then the tuner's config, the fingerprint and the weights'
     * digest.
     *
     * @param layerNames the base model's layer (vertex) names
     * @param names the module names of a file in a PyTorch model's module paths, or null for a file
     *     in the graph's layer names
     * @throws AdapterFormatException if a file is missing or malformed
     * @throws IncompatibleAdapterException if the adapter was trained on another base model or names
     *     modules the graph does not have
     */
    public static Loaded read(Path dir, BaseFingerprint base, boolean ignoreFingerprint, Collection<String> layerNames,
                              ModuleNames names) throws IOException {
        Path configFile = AdapterFiles.file(dir, AdapterFiles.CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            if (!Files.isDirectory(dir)) {
                throw new AdapterFormatException("no adapter directory at " + dir);
            }
            throw new AdapterFormatException("no adapter in " + dir + ": " + AdapterFiles.CONFIG_FILE + " is missing");
        }
        String what = configFile.toString();
        byte[] configBytes = AdapterFiles.readConfig(configFile);
        Map<String, Object> json = PeftJson.parseObject(configBytes, what);
        AdapterSidecar.Records records = AdapterSidecar.read(dir, configBytes, json);
        Object type = json.get("peft_type");
        PeftConfigFactory factory = ConfigJson.factory(type, what);
        ConfigJson.checkKeys(factory, json, what);

        Path weights = AdapterFiles.file(dir, AdapterFiles.WEIGHTS_FILE);
        if (!Files.isRegularFile(weights)) {
            if (Files.isRegularFile(AdapterFiles.file(dir, AdapterFiles.PICKLE_WEIGHTS_FILE))) {
                throw new AdapterFormatException("no adapter weights in " + dir + ": there is "
                        + AdapterFiles.PICKLE_WEIGHTS_FILE + " but no " + AdapterFiles.WEIGHTS_FILE + ". peft4j does not "
                        + "read PyTorch pickles (loading one runs the code it holds); convert it once with "
                        + "python -c \"import torch, safetensors.torch as st; sd = torch.load('adapter_model.bin', "
                        + "map_location='cpu', weights_only=True); st.save_file({k: v.contiguous() for k, v in sd.items()}, "
                        + "'adapter_model.safetensors', metadata={'format': 'pt'})\" in that directory");
            }
            throw new AdapterFormatException("no adapter weights in " + dir + ": " + AdapterFiles.WEIGHTS_FILE + " is missing");
        }
        SafetensorsHeader header = Safetensors.readHeader(weights, AdapterLimits.maxTensors(base),
                AdapterLimits.maxTensorsReason(base));
        AdapterLimits.requireFloatingPoint(header);
        Object recorded = records.get(AdapterFiles.WEIGHTS_DIGEST_KEY);
        String digest = recorded == null ? null
                : AdapterFiles.digestValue(recorded, records.describe(AdapterFiles.WEIGHTS_DIGEST_KEY));
        Map<String, String> tensorNames = new java.util.LinkedHashMap<>();
        for (String n : header.tensors().keySet()) {
            tensorNames.put(n, n);
        }
        if (names == null && records.inModulePaths()) {
            throw new IncompatibleAdapterException("the adapter in " + dir + " was saved in a PyTorch model's module "
                    + "paths (" + records.describe(AdapterFiles.MODULE_NAMES_KEY) + "); load it with the graph's "
                    + "ModuleNames: Peft.load(base, dir, names)");
        }
        if (names == null) {
            json = PeftFileSemantics.normalize(json, tensorNames.keySet(), layerNames,
                    new java.util.HashSet<>(layerNames)::contains);
        } else {
            json = PeftFileSemantics.normalize(json, tensorNames.keySet(), ModulePathTranslation.moduleNamesInFiles(names),
                    m -> ModulePathTranslation.isMappedModule(m, names, layerNames));
            tensorNames = ModulePathTranslation.tensorNamesToLayers(tensorNames.keySet(), names, layerNames,
                    weights.toString());
            json = ModulePathTranslation.configToLayers(json, names, factory.keyPolicy(), layerNames, what);
        }
        Map<String, Object> factoryJson = new TreeMap<>(json);
        if (!records.tunerConfig().isEmpty()) {
            factoryJson.put(AdapterFileKeys.EXTENSION, records.tunerConfig());
        }
        PeftConfig config = ConfigJson.buildConfig(factory, factoryJson, what);
        Object fingerprint = records.get(AdapterFiles.FINGERPRINT_KEY);
        if (!ignoreFingerprint && fingerprint != null) {
            BaseFingerprint expected = BaseFingerprint.fromJson(fingerprint, records.source());
            List<String> diff = expected.differences(base);
            if (!diff.isEmpty()) {
                throw new IncompatibleAdapterException("the adapter in " + dir + " was trained on another base model: "
                        + Messages.joinSentences("; ", diff) + ". Load with ignoreFingerprint=true to apply it anyway.");
            }
        }
        Object tokens = json.get("num_virtual_tokens");
        if (tokens instanceof Number) {
            // Prompt and prefix tuning size their prompt by this key, and prompt tuning computes an
            // initial prompt while planning the graph: check it against the file before that.
            TensorInfo prompt = tensorNames.containsKey(AdapterLayout.PROMPT_TENSOR)
                    ? header.tensors().get(tensorNames.get(AdapterLayout.PROMPT_TENSOR)) : null;
            long n = ((Number) tokens).longValue();
            if (prompt == null || prompt.shape().length != 2 || prompt.shape()[0] != n) {
                throw new AdapterFormatException(what + ": \"num_virtual_tokens\" is " + tokens + " but " + AdapterFiles.WEIGHTS_FILE
                        + (prompt == null ? " holds no " + AdapterLayout.PROMPT_TENSOR + " tensor"
                        : "'s " + AdapterLayout.PROMPT_TENSOR + " has shape " + java.util.Arrays.toString(prompt.shape()))
                        + "; the config does not match its weights");
            }
        }
        return new Loaded(config, header, tensorNames, json, records, digest);
    }

    /**
     * Refuses, before the wrapped graph is allocated, one whose parameter vector would be larger
     * than the adapter's weights file (its values) plus the whole base model, and a weights file
     * without tensors for an adapter that trains parameters. A
     * graph built for a matching file never is (the file holds what it trains; frozen copies are
     * at most the base), while a config whose size keys were edited ({@code r},
     * {@code bottleneck_size}, ...) would otherwise allocate what it asks for before
     * {@link #assign} finds that the tensor shapes disagree. ({@code num_virtual_tokens} is
     * checked against the file's {@value AdapterLayout#PROMPT_TENSOR} when the files are read, before planning.)
     *
     * @throws AdapterFormatException naming the three counts
     */
    public static void checkSize(GraphRewriter.Plan plan, Loaded loaded, long baseParams, Path dir) {
        long inFile = 0;
        for (TensorInfo t : loaded.tensors().tensors().values()) {
            inFile = Math.addExact(inFile, t.elementCount()); // every tensor is floating-point (read)
        }
        long wanted = plan.numParams();
        if (loaded.tensors().tensors().isEmpty() && wanted > 0) {
            throw new AdapterFormatException(dir.resolve(AdapterFiles.WEIGHTS_FILE) + " holds no tensors, but the "
                    + loaded.config().peftType() + " adapter its config describes trains " + wanted + " parameters; the "
                    + "file is empty or was cut, save the adapter again");
        }
        if (wanted > inFile + baseParams) {
            throw new AdapterFormatException(dir.resolve(AdapterFiles.CONFIG_FILE) + " describes a wrapped graph of " + wanted
                    + " parameters, more than the " + inFile + " values in " + AdapterFiles.WEIGHTS_FILE + " plus the base model's "
                    + baseParams + ": the config does not match its weights (was a size such as r or bottleneck_size "
                    + "edited?); the wrapped graph was not allocated");
        }
    }

    /**
     * Checks that the file's tensors are exactly those a graph wrapped with the adapter's config
     * trains (names and shapes), then writes them into {@code g}. Nothing is written on failure.
     */
    public static void assign(Loaded loaded, ComputationGraph g, Path dir) throws IOException {
        Map<String, AdapterLayout.Slot> expected = AdapterLayout.layout(g, loaded.records().legacy());
        Map<String, AdapterLayout.Shared> shared = AdapterLayout.sharedLayout(g);
        Map<String, TensorInfo> header = loaded.byGraphName();
        TreeSet<String> unknown = new TreeSet<>(header.keySet());
        unknown.removeAll(expected.keySet());
        unknown.removeAll(shared.keySet());
        TreeSet<String> missing = new TreeSet<>(expected.keySet());
        missing.addAll(shared.keySet());
        missing.removeAll(header.keySet());
        List<String> problems = new ArrayList<>(baseModelDifferences(loaded, g));
        if (!unknown.isEmpty()) {
            TreeSet<String> inFile = new TreeSet<>();
            unknown.forEach(n -> inFile.add(loaded.tensorNames().get(n)));
            problems.add(AdapterFiles.WEIGHTS_FILE + ": " + unknown.size() + " unknown tensors " + Messages.list(inFile)
                    + moduleNamesHint(loaded, g.getConfiguration().getVertices().keySet()));
        }
        if (!missing.isEmpty()) {
            problems.add(AdapterFiles.WEIGHTS_FILE + ": " + missing.size() + " missing tensors " + Messages.list(missing));
        }
        for (Map.Entry<String, AdapterLayout.Slot> e : expected.entrySet()) {
            TensorInfo t = header.get(e.getKey());
            if (t != null && !java.util.Arrays.equals(t.shape(), e.getValue().fileShape())) {
                problems.add(AdapterFiles.WEIGHTS_FILE + ": " + e.getKey() + " has shape "
                        + java.util.Arrays.toString(t.shape()) + ", expected "
                        + java.util.Arrays.toString(e.getValue().fileShape()));
            }
        }
        for (Map.Entry<String, AdapterLayout.Shared> e : shared.entrySet()) {
            TensorInfo t = header.get(e.getKey());
            if (t != null && !java.util.Arrays.equals(t.shape(), e.getValue().fileShape())) {
                problems.add(AdapterFiles.WEIGHTS_FILE + ": " + e.getKey() + " has shape "
                        + java.util.Arrays.toString(t.shape()) + ", expected "
                        + java.util.Arrays.toString(e.getValue().fileShape()));
            }
        }
        if (!problems.isEmpty()) {
            throw doesNotFit(dir, Messages.joinSentences("; ", problems));
        }
        // Names and shapes are those of g, so the data read now is what the adapter needs.
        Path weights = AdapterFiles.file(dir, AdapterFiles.WEIGHTS_FILE);
        SafetensorsFile file = Safetensors.readData(weights, loaded.tensors());
        if (loaded.weightsDigest() != null && !loaded.weightsDigest().equals(file.sha256())) {
            throw new AdapterFormatException(weights + " is not the weights file " + AdapterFiles.CONFIG_FILE + " was saved "
                    + "with (SHA-256 " + file.sha256() + ", " + loaded.records().describe(AdapterFiles.WEIGHTS_DIGEST_KEY)
                    + " is " + loaded.weightsDigest() + "): the two files come from different saves, for example "
                    + "copied together by hand; save the adapter again");
        }
        Map<String, SafeTensor> actual = new java.util.LinkedHashMap<>();
        loaded.tensorNames().forEach((graphName, fileName) -> actual.put(graphName, file.tensors().get(fileName)));
        // a list, not a map: INDArray equality is by value, and fresh parameters (LoRA's B = 0) are equal
        List<INDArray[]> writes = new ArrayList<>();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, AdapterLayout.Slot> e : expected.entrySet()) {
                AdapterLayout.Slot s = e.getValue();
                SafeTensor t = actual.get(e.getKey());
                float[] values = floats(t, e.getKey(), dir);
                INDArray p = g.getLayer(s.vertex()).getParam(s.key());
                INDArray a = Nd4j.create(values, s.fileShape(), 'c').castTo(p.dataType());
                writes.add(new INDArray[] {p, s.transposed() && a.rank() == 2 ? a.transpose() : a});
            }
            for (Map.Entry<String, AdapterLayout.Shared> e : shared.entrySet()) {
                SafeTensor t = actual.get(e.getKey());
                INDArray whole = null;
                for (AdapterLayout.Part p : e.getValue().parts()) {
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

    /**
     * A hint for a file none of whose per-layer tensors belongs to a vertex of the graph (empty
     * otherwise, and for a file read through a name map): it was probably saved for a PyTorch
     * model, whose module paths differ from the layer names, and a name map translates them.
     *
     * @param vertexNames the names of the graph's vertices
     */
    static String moduleNamesHint(Loaded loaded, Collection<String> vertexNames) {
        if (loaded.renamed()) {
            return "";
        }
        boolean perLayer = false;
        for (String n : loaded.tensors().tensors().keySet()) {
            if (!n.contains(".")) {
                continue;
            }
            perLayer = true;
            String rest = n.startsWith(AdapterLayout.PREFIX) ? n.substring(AdapterLayout.PREFIX.length()) : n;
            for (String v : vertexNames) {
                if (rest.startsWith(v + ".")) {
                    return "";
                }
            }
        }
        return !perLayer ? "" : " (no layer of the graph holds the file's tensors: if the adapter was saved for a "
                + "PyTorch model, whose module paths differ from the layer names, load it with the graph's "
                + "ModuleNames, Peft.load(base, dir, names))";
    }

    /**
     * The refusal of an adapter that does not fit the base model, whichever entry point read it:
     * {@code "the adapter in <dir> does not fit the base model: <problems>"}, each problem naming
     * its file.
     */
    public static IncompatibleAdapterException doesNotFit(Path dir, String problems) {
        return new IncompatibleAdapterException("the adapter in " + dir + " does not fit the base model: " + problems);
    }

    /**
     * {@link #doesNotFit(Path, String)} for a config that cannot be applied to the base model
     * ({@code e} from planning the wrapped graph: no layer matched its targets, a target of a kind
     * the method does not adapt, ...); the problem is the config file's. When none of the file's
     * tensors belongs to a layer of the graph, the message says how to load a file saved in a
     * PyTorch model's module paths.
     *
     * @param vertexNames the names of the base graph's vertices
     */
    public static IncompatibleAdapterException doesNotFit(Path dir, Loaded loaded, Collection<String> vertexNames,
                                                          IllegalArgumentException e) {
        return new IncompatibleAdapterException(doesNotFit(dir, AdapterFiles.CONFIG_FILE + ": " + e.getMessage()
                + moduleNamesHint(loaded, vertexNames)).getMessage(), e);
    }

    private static float[] floats(SafeTensor t, String name, Path dir) {
        float[] values;
        try {
            values = t.toFloats();
        } catch (IllegalStateException ex) {
            throw new AdapterFormatException(name + " in " + dir + " has dtype " + t.dtype() + "; adapter tensors must be "
                    + AdapterLimits.FLOATING_POINT);
        }
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                String found = t.dtype() == DType.F64
                        ? java.nio.ByteBuffer.wrap(t.rawBytes()).order(java.nio.ByteOrder.LITTLE_ENDIAN).getDouble(i * 8)
                                + " (F64), which is " + values[i] + " as a float," : String.valueOf(values[i]);
                throw new AdapterFormatException(name + " in " + dir + " holds " + found + " at element " + i
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
                out.add(AdapterFiles.CONFIG_FILE + " has " + k + "=" + file + " but the base model has " + k + "=" + base);
            }
        }
        return out;
    }
}
