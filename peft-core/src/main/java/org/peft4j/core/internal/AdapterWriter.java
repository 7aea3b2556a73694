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
import org.peft4j.core.PeftConfig;
import org.peft4j.core.io.AtomicFiles;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.spi.PeftJson;

/**
 * Writes one adapter's two files ({@link AdapterFiles#WEIGHTS_FILE} first, then the
 * {@link AdapterFiles#CONFIG_FILE} that records its digest), each atomically.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterWriter {

    private AdapterWriter() {
    }

    /**
     * Writes one adapter: {@code g} is wrapped with {@code config} and holds the adapter's
     * parameters. The weights file is written first, then the config that records its digest.
     *
     * @param resolvedTargets the base-model names of the layers the adapter adapts
     * @param baseLayers the base model's vertex names (see {@link org.peft4j.core.Targeting#targetModulesJson})
     * @param savedWith for a directory's default adapter, the other adapters saved with it (name →
     *     digest returned by their own save), recorded under {@value AdapterFiles#SAVED_ADAPTERS_KEY}; null for
     *     an adapter in a sub-directory
     * @param trainingState for a checkpoint's default adapter, the digest {@link #saveTrainingState}
     *     returned, recorded under {@value AdapterFiles#TRAINING_STATE_KEY}; null otherwise
     * @return the hex SHA-256 of the weights file written
     */
    public static String save(PeftConfig config, BaseFingerprint fingerprint, ComputationGraph g, Path dir,
                              List<String> resolvedTargets, Collection<String> baseLayers, Map<String, String> savedWith,
                              String trainingState) throws IOException {
        Map<String, Object> json = new TreeMap<>(config.toAdapterConfig(g));
        if (config.targetModules() != null) {
            json.put("target_modules", config.targeting().targetModulesJson(resolvedTargets, baseLayers));
        }
        Map<String, Object> ext = new TreeMap<>();
        Object configExt = json.remove("peft4j");
        if (configExt instanceof Map) {
            ((Map<?, ?>) configExt).forEach((k, v) -> ext.put(String.valueOf(k), v));
        }
        ext.put("library_version", AdapterFiles.libraryVersion());
        ext.put("format_version", 1);
        ext.put("base_model_fingerprint", fingerprint.toJson());
        json.put("peft4j", ext);

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
        byte[] weights = Safetensors.toBytes(tensors, Map.of("format", "pt"));
        String digest = HexFormat.of().formatHex(AdapterFiles.sha256().digest(weights));
        ext.put(AdapterFiles.WEIGHTS_DIGEST_KEY, digest);
        if (savedWith != null) {
            ext.put(AdapterFiles.SAVED_ADAPTERS_KEY, new TreeMap<>(savedWith));
        }
        if (trainingState != null) {
            ext.put(AdapterFiles.TRAINING_STATE_KEY, trainingState);
        }
        Files.createDirectories(dir);
        AtomicFiles.write(dir.resolve(AdapterFiles.WEIGHTS_FILE), weights);
        AtomicFiles.write(dir.resolve(AdapterFiles.CONFIG_FILE), PeftJson.write(json).getBytes(StandardCharsets.UTF_8));
        return digest;
    }
}
