package org.peft4j.core.internal;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.io.AtomicFiles;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.spi.AdapterFileKeys;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.core.spi.KeyPolicy;
import org.peft4j.core.spi.PeftJson;

/**
 * Writes one adapter's three files: {@link AdapterFiles#WEIGHTS_FILE}, {@link AdapterFiles#CONFIG_FILE}
 * (Hugging Face PEFT's keys only) and {@link AdapterFiles#SIDE_FILE} (peft4j's records, with the
 * SHA-256 of the other two). All three are computed in memory first ({@link #prepare}), so a
 * file that cannot be written in a model's module paths stops the save before anything is written,
 * then written in that order ({@link #write}). {@link org.peft4j.core.PeftModel} writes them into
 * the staging directory of a {@link org.peft4j.core.io.DirectoryTransaction}, whose one rename
 * makes the save of all adapters of a directory atomic.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterWriter {

    private AdapterWriter() {
    }

    /**
     * The files of one adapter, by file name in the order they are written (weights, config, side
     * file), and the hex SHA-256 of the weights file.
     */
    public record Prepared(Map<String, byte[]> files, String weightsDigest) {
    }

    /**
     * Writes one adapter ({@link #prepare}, then {@link #write}).
     *
     * @return the hex SHA-256 of the weights file written
     */
    public static String save(PeftConfig config, BaseFingerprint fingerprint, ComputationGraph g, Path dir,
                              List<String> resolvedTargets, Collection<String> baseLayers, Map<String, String> savedWith,
                              String trainingState, ModuleNames names) throws IOException {
        Prepared p = prepare(config, fingerprint, g, resolvedTargets, baseLayers, savedWith, trainingState, names);
        write(dir, p);
        return p.weightsDigest();
    }

    /**
     * Computes the files of one adapter: {@code g} is wrapped with {@code config} and holds the
     * adapter's parameters.
     *
     * @param resolvedTargets the base-model names of the layers the adapter adapts
     * @param baseLayers the base model's vertex names (see {@link org.peft4j.core.Targeting#writeResolvedJson})
     * @param savedWith for a directory's default adapter, the other adapters saved with it (name →
     *     digest returned by their own save), recorded under {@value AdapterFiles#SAVED_ADAPTERS_KEY}; null for
     *     an adapter in a sub-directory
     * @param trainingState for a checkpoint's default adapter, the digest
     *     {@link TrainingStateFiles#save} returned, recorded under {@value AdapterFiles#TRAINING_STATE_KEY};
     *     null otherwise
     * @param names the module names to write tensors and keys in ({@link ModulePathTranslation}), or
     *     null for the graph's layer names
     * @throws IllegalArgumentException if {@code names} has no module path for a layer the adapter saves
     */
    public static Prepared prepare(PeftConfig config, BaseFingerprint fingerprint, ComputationGraph g,
                                   List<String> resolvedTargets, Collection<String> baseLayers,
                                   Map<String, String> savedWith, String trainingState, ModuleNames names) {
        Map<String, Object> json = new TreeMap<>(config.toAdapterConfig(g));
        Map<String, Object> tunerConfig = new TreeMap<>();
        Object configExt = json.remove(AdapterFileKeys.EXTENSION);
        if (configExt instanceof Map) {
            ((Map<?, ?>) configExt).forEach((k, v) -> tunerConfig.put(String.valueOf(k), v));
        }
        if (config.targetModules() != null) {
            config.targeting().writeResolvedJson(json, resolvedTargets, baseLayers);
        }
        Map<String, SafeTensor> tensors = tensors(g);
        if (names != null) {
            KeyPolicy policy = ConfigJson.factory(config.peftType(), AdapterFiles.CONFIG_FILE).keyPolicy();
            json = ModulePathTranslation.configToPaths(json, names, policy,
                    config.targetModules() == null ? List.of() : resolvedTargets, AdapterLayout.trainedModules(g));
            tensors = ModulePathTranslation.tensorsToPaths(tensors, names, baseLayers);
        }
        byte[] weights = Safetensors.toBytes(tensors, Map.of("format", "pt"));
        byte[] configBytes = PeftJson.write(json).getBytes(StandardCharsets.UTF_8);
        String digest = HexFormat.of().formatHex(AdapterFiles.sha256().digest(weights));
        Map<String, Object> records = new TreeMap<>();
        records.put(AdapterFiles.FINGERPRINT_KEY, fingerprint.toJson());
        records.put(AdapterFiles.WEIGHTS_DIGEST_KEY, digest);
        records.put(AdapterFiles.CONFIG_DIGEST_KEY, HexFormat.of().formatHex(AdapterFiles.sha256().digest(configBytes)));
        if (savedWith != null) {
            records.put(AdapterFiles.SAVED_ADAPTERS_KEY, new TreeMap<>(savedWith));
        }
        if (trainingState != null) {
            records.put(AdapterFiles.TRAINING_STATE_KEY, trainingState);
        }
        if (names != null) {
            records.put(AdapterFiles.MODULE_NAMES_KEY, "pytorch");
        }
        Map<String, byte[]> files = new LinkedHashMap<>();
        files.put(AdapterFiles.WEIGHTS_FILE, weights);
        files.put(AdapterFiles.CONFIG_FILE, configBytes);
        files.put(AdapterFiles.SIDE_FILE, AdapterSidecar.toBytes(records, tunerConfig));
        return new Prepared(java.util.Collections.unmodifiableMap(files), digest);
    }

    /** Writes the prepared files into {@code dir} (created if needed), in order, each atomically. */
    public static void write(Path dir, Prepared prepared) throws IOException {
        Files.createDirectories(dir);
        for (Map.Entry<String, byte[]> f : prepared.files().entrySet()) {
            AtomicFiles.write(dir.resolve(f.getKey()), f.getValue());
        }
    }

    /** The tensors of {@code g}'s trainable parameters in the file's layout, by name. */
    private static Map<String, SafeTensor> tensors(ComputationGraph g) {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, AdapterLayout.Slot> e : AdapterLayout.layout(g).entrySet()) {
                AdapterLayout.Slot s = e.getValue();
                INDArray p = g.getLayer(s.vertex()).getParam(s.key());
                INDArray oriented = s.transposed() && p.rank() == 2 ? p.transpose() : p;
                tensors.put(e.getKey(), SafeTensor.ofFloats(s.fileShape(),
                        oriented.castTo(DataType.FLOAT).dup('c').data().asFloat()));
            }
            for (Map.Entry<String, AdapterLayout.Shared> e : AdapterLayout.sharedLayout(g).entrySet()) {
                if (tensors.containsKey(e.getKey())) {
                    throw new IllegalStateException("two tensors named " + e.getKey());
                }
                long[] shape = e.getValue().fileShape();
                int rows = Math.toIntExact(e.getValue().parts().get(0).block().rows());
                int total = Math.toIntExact(e.getValue().parts().get(0).block().width());
                float[] out = new float[Math.multiplyExact(rows, total)];
                for (AdapterLayout.Part p : e.getValue().parts()) {
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
        return tensors;
    }
}
