package org.peft4j.quant;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.api.Layer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftModel;
import org.peft4j.core.Target;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;

/**
 * QLoRA operations beyond wrapping: the explicit, lossy merge of adapters into a 4-bit base, and
 * saving/reading the 4-bit base weights in bitsandbytes' serialized layout.
 *
 * <p>The lossless way to merge is {@link PeftModel#mergeAndUnload()}, which yields a float graph of
 * the dequantized base plus {@code ΔW}. Merging <em>into</em> 4 bits re-quantizes {@code W + ΔW},
 * and the update is then partly lost to rounding: {@link #mergeIntoQuantized} does it on request
 * and reports the error per layer.
 *
 * <p>Thread-safety: stateless; the model is only read.
 */
public final class QLora {

    private QLora() {
    }

    /**
     * The adapters of {@code peft} merged into 4-bit weights, with the error the re-quantization
     * makes per layer: {@code ‖dequant(q(W + ΔW)) − (W + ΔW)‖_F / ‖W + ΔW‖_F}.
     */
    public record QuantizedMerge(Map<String, QuantizedTensor> weights, Map<String, Double> relativeError) {
    }

    /**
     * Merges each adapter into its layer's base weight and quantizes the result with {@code spec}
     * (lossy; see the class comment). Layers are keyed by their base-model name.
     */
    public static QuantizedMerge mergeIntoQuantized(PeftModel peft, QuantSpec spec) {
        Map<String, QuantizedTensor> weights = new LinkedHashMap<>();
        Map<String, Double> errors = new LinkedHashMap<>();
        for (Map.Entry<String, FrozenBaseLayer> e : peft.adaptedLayers().entrySet()) {
            FrozenBaseLayer f = e.getValue();
            INDArray merged = f.frozenWeight().castTo(DataType.FLOAT);
            if (f.isAdapterEnabled()) {
                merged = f.mergedWeight(merged, peft.graph().getLayer(e.getKey()).paramTable()).castTo(DataType.FLOAT);
            }
            QuantizedTensor q = QuantizedTensor.quantize(merged, spec);
            double err = q.toINDArray().sub(merged).norm2Number().doubleValue()
                    / Math.max(Double.MIN_NORMAL, merged.norm2Number().doubleValue());
            weights.put(f.baseLayerName(), q);
            errors.put(f.baseLayerName(), err);
        }
        return new QuantizedMerge(Collections.unmodifiableMap(weights), Collections.unmodifiableMap(errors));
    }

    /**
     * Writes the 4-bit base weights of a QLoRA model to a safetensors file with bitsandbytes' key
     * names ({@code <layer>.weight}, {@code <layer>.weight.absmax}, {@code .quant_map},
     * {@code .nested_absmax}, {@code .nested_quant_map}, {@code .quant_state.bitsandbytes__nf4})
     * and each frozen bias as {@code <layer>.bias} (F32). Weights keep DL4J's {@code [nIn, nOut]}
     * orientation, which the quant state's shape records (PyTorch's {@code Linear} is {@code [out, in]}).
     * One file holds at most {@link org.peft4j.core.io.Safetensors#MAX_FILE_SIZE} bytes (one Java
     * array): about 3.8 billion 4-bit parameters at block 64, 4.1 billion with double quantization.
     * A larger base is refused with a message naming the size (this method writes one file; it
     * does not shard as bitsandbytes checkpoints do).
     *
     * @throws IllegalArgumentException if the model holds no 4-bit weight (nothing is written)
     */
    public static void saveQuantizedBase(PeftModel peft, Path file) throws IOException {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        for (Layer l : peft.graph().getLayers()) {
            Object c = l.conf().getLayer();
            QuantizedTensor q = quantizedWeight(c);
            if (q == null) {
                continue;
            }
            FrozenDenseLayer f = (FrozenDenseLayer) c;
            tensors.putAll(q.toTensors(f.baseLayerName()));
            if (f.frozenBias() != null) {
                tensors.put(f.baseLayerName() + ".bias", SafeTensor.of(f.frozenBias().castTo(DataType.FLOAT)));
            }
        }
        if (tensors.isEmpty()) {
            throw new IllegalArgumentException("the model holds no 4-bit weights (its config is " + peft.config()
                    + "); wrap it with a QLoraConfig to quantize its base. Nothing was written to " + file);
        }
        Safetensors.write(file, tensors, Map.of("format", "pt"));
    }

    /**
     * Reads the 4-bit weights written by {@link #saveQuantizedBase}, by layer name. Files above
     * {@link org.peft4j.core.io.Safetensors#MAX_FILE_SIZE} bytes are refused with a message.
     *
     * @throws AdapterFormatException if the file or an entry is malformed
     */
    public static Map<String, QuantizedTensor> readQuantizedBase(Path file) throws IOException {
        SafetensorsFile f = Safetensors.read(file);
        Map<String, QuantizedTensor> out = new TreeMap<>();
        String marker = ".weight.quant_state.bitsandbytes__";
        for (String key : f.tensors().keySet()) {
            int i = key.indexOf(marker);
            if (i > 0) {
                String layer = key.substring(0, i);
                out.put(layer, QuantizedTensor.fromTensors(layer, f.tensors()));
            }
        }
        if (out.isEmpty()) {
            throw new AdapterFormatException(file + " holds no 4-bit weights (no key contains \"" + marker + "\")");
        }
        return out;
    }

    /**
     * The 4-bit base weight for a layer of a graph being wrapped: the tensor the target's
     * {@link Target#current() current} layer already holds when it was quantized with
     * {@code spec} (switching between adapters of different layouts rebuilds the graph from the
     * dequantized base, and quantizing that again would move the double-quantized scales a little
     * on every switch), else {@code target.weight()} quantized with {@code spec}. A base held with
     * another spec is dequantized and quantized again with {@code spec}, which is lossy.
     */
    static QuantizedTensor quantizedBase(Target target, QuantSpec spec) {
        QuantizedTensor held = quantizedWeight(target.current());
        if (held != null && spec.equals(held.spec())
                && Arrays.equals(held.shape(), new long[] {target.nIn(), target.nOut()})) {
            return held;
        }
        return QuantizedTensor.quantize(target.weight(), spec);
    }

    /** The 4-bit weight of a frozen layer configuration, or null if it holds floats. */
    public static QuantizedTensor quantizedWeight(Object layerConf) {
        if (layerConf instanceof QLoraDenseLayer) {
            return ((QLoraDenseLayer) layerConf).quantizedWeight();
        }
        if (layerConf instanceof QuantizedDenseLayer) {
            return ((QuantizedDenseLayer) layerConf).quantizedWeight();
        }
        return null;
    }
}
