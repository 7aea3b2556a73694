package org.peft4j.core.prefix;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.serde.jackson.shaded.NDArrayDeSerializer;
import org.nd4j.serde.jackson.shaded.NDArraySerializer;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonIgnoreProperties;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.internal.ParamLayoutInitializer;
import org.peft4j.core.prefix.internal.PrefixEncoderLayerImpl;
import org.peft4j.core.spi.BaseTunerLayer;

/**
 * The trainable key/value prefix of one attention core (prefix tuning, Li &amp; Liang,
 * arXiv 2101.00190), as a layer so that DL4J's parameter vector, updater and serializers treat it
 * like any layer. It reads the graph's token input only for the mini-batch size and emits the
 * prefix broadcast over the batch, {@code [batch, dk + dv, p]}: features {@code 0 … dk−1} are the
 * key prefix {@code Pk [dk, p]}, the rest the value prefix {@code Pv [dv, p]}; the matching
 * {@link PrefixAttentionCore} reads it as its fourth input.
 *
 * <pre>
 *   plain:   P = [Pk ; Pv]                        params prefixK [dk, p], prefixV [dv, p]
 *   reparam: H = tanh(Eᵀ·W1 + b1)  [p, e]    P = (H·W2 + b2)ᵀ  [dk + dv, p]
 *            params prefixEmb E [dk, p], prefixW1 [dk, e], prefixB1 [e], prefixW2 [e, dk + dv], prefixB2 [dk + dv]
 * </pre>
 * Backward, with {@code G = Σ_batch dL/dout [dk + dv, p]}: plain {@code dPk, dPv = G}; reparam
 * {@code dY = Gᵀ}, {@code dW2 = Hᵀ·dY}, {@code db2 = Σ_p dY}, {@code dZ = (dY·W2ᵀ) ⊙ (1 − H²)},
 * {@code dW1 = E·dZ}, {@code db1 = Σ_p dZ}, {@code dE = W1·dZᵀ}. No epsilon for the token input.
 * Initialisation: prefixes and embeddings {@code N(0, 1)} (PyTorch's embedding default, as HF PEFT),
 * MLP weights uniform in {@code ±1/√fanIn}, biases zero; no weight decay on any of them.
 *
 * <p>{@link PrefixConfig#foldReparameterization} stores the MLP's output in this configuration
 * ({@link #foldedPrefix()}); forward then skips the MLP and backward is refused.
 *
 * <p><b>Adapter files</b> ({@link AdapterLayer}). Every prefix layer writes its columns of Hugging
 * Face PEFT's {@code prompt_embeddings [p, numLayers·(dk + dv)]}: the layer of attention core
 * {@code i} (in graph order) holds columns {@code [i·(dk + dv), (i + 1)·(dk + dv))}, keys first,
 * then values, each feature head-major, which is how PEFT splits {@code past_key_values} per layer
 * ({@code dk = dv = token_dim}). That tensor is always the prefix forward uses: the plain
 * parameters, the folded prefix, or the MLP evaluated at save time. While the MLP is live (not
 * folded) its weights are saved as well, so training can resume, in PyTorch orientation under
 * PEFT's {@code PrefixEncoder} names, per core: {@code base_model.model.<core>.prefix_encoder.}
 * {@code embedding.weight [p, dk]}, {@code transform.0.weight [e, dk]}, {@code transform.0.bias [e]},
 * {@code transform.2.weight [dk + dv, e]}, {@code transform.2.bias [dk + dv]}. PEFT itself keeps only
 * {@code prompt_embeddings} and drops the MLP.
 *
 * <p>The token input never needs a gradient, so this layer has no {@code inputGradient} flag (not in
 * its JSON either).
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer} and by folding.
 */
@JsonIgnoreProperties({"inputGradient"})
public class PrefixEncoderLayer extends BaseTunerLayer implements AdapterLayer {
    private static final long serialVersionUID = 1L;

    public static final String PREFIX_K = "prefixK";
    public static final String PREFIX_V = "prefixV";
    public static final String PREFIX_EMB = "prefixEmb";
    public static final String PREFIX_W1 = "prefixW1";
    public static final String PREFIX_B1 = "prefixB1";
    public static final String PREFIX_W2 = "prefixW2";
    public static final String PREFIX_B2 = "prefixB2";

    /** Name of the model-level tensor of all prefixes in adapter files, as Hugging Face PEFT names it. */
    public static final String FILE_TENSOR = "prompt_embeddings";

    @JsonProperty("attentionCore")
    private String attentionCore;
    @JsonProperty("layerIndex")
    private int layerIndex;
    @JsonProperty("numLayers")
    private int numLayers;
    @JsonProperty("numVirtualTokens")
    private int numVirtualTokens;
    @JsonProperty("keySize")
    private long keySize;
    @JsonProperty("valueSize")
    private long valueSize;
    @JsonProperty("encoderHiddenSize")
    private int encoderHiddenSize;
    @JsonProperty("foldedPrefix")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray foldedPrefix;

    /** For JSON deserialization. */
    protected PrefixEncoderLayer() {
    }

    /**
     * @param attentionCore the base model's attention core this prefix extends
     * @param layerIndex the core's position among the graph's attention cores, {@code 0 … numLayers − 1}
     * @param numLayers how many attention cores get a prefix (PEFT's {@code num_layers})
     * @param numVirtualTokens {@code p > 0}
     * @param keySize {@code dk}
     * @param valueSize {@code dv}
     * @param encoderHiddenSize {@code e}, 0 for plain prefixes
     */
    public PrefixEncoderLayer(String attentionCore, int layerIndex, int numLayers, int numVirtualTokens, long keySize,
                              long valueSize, int encoderHiddenSize) {
        if (numVirtualTokens <= 0 || keySize <= 0 || valueSize <= 0 || encoderHiddenSize < 0) {
            throw new IllegalArgumentException("prefix encoder: need p > 0, dk > 0, dv > 0, e >= 0; got p="
                    + numVirtualTokens + ", dk=" + keySize + ", dv=" + valueSize + ", e=" + encoderHiddenSize);
        }
        if (layerIndex < 0 || layerIndex >= numLayers) {
            throw new IllegalArgumentException("prefix encoder: layerIndex must be in [0, " + numLayers + "); got "
                    + layerIndex);
        }
        this.attentionCore = java.util.Objects.requireNonNull(attentionCore, "attentionCore must not be null");
        this.layerIndex = layerIndex;
        this.numLayers = numLayers;
        this.numVirtualTokens = numVirtualTokens;
        this.keySize = keySize;
        this.valueSize = valueSize;
        this.encoderHiddenSize = encoderHiddenSize;
        this.nOut = keySize + valueSize;
    }

    @JsonIgnore
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    @JsonIgnore
    public long keySize() {
        return keySize;
    }

    @JsonIgnore
    public long valueSize() {
        return valueSize;
    }

    @JsonIgnore
    public int encoderHiddenSize() {
        return encoderHiddenSize;
    }

    /** The folded prefix {@code [dk + dv, p]} forward uses instead of the MLP, or null. */
    @JsonIgnore
    public INDArray foldedPrefix() {
        return foldedPrefix;
    }

    /** Sets (or clears, with null) the folded prefix {@code [dk + dv, p]}. */
    public void setFoldedPrefix(INDArray prefix) {
        this.foldedPrefix = prefix;
    }

    /** The attention core this prefix extends. */
    @Override
    public String baseLayerName() {
        return attentionCore;
    }

    /** The core's position among the graph's attention cores. */
    @JsonIgnore
    public int layerIndex() {
        return layerIndex;
    }

    /** The MLP's weights while it is live (reparameterised and not folded); none otherwise. */
    @Override
    public List<FrozenDenseLayer.SavedTensor> savedTensors() {
        if (encoderHiddenSize == 0 || foldedPrefix != null) {
            return List.of();
        }
        return List.of(new FrozenDenseLayer.SavedTensor(PREFIX_EMB, "prefix_encoder.embedding.weight", true),
                new FrozenDenseLayer.SavedTensor(PREFIX_W1, "prefix_encoder.transform.0.weight", true),
                new FrozenDenseLayer.SavedTensor(PREFIX_B1, "prefix_encoder.transform.0.bias", false),
                new FrozenDenseLayer.SavedTensor(PREFIX_W2, "prefix_encoder.transform.2.weight", true),
                new FrozenDenseLayer.SavedTensor(PREFIX_B2, "prefix_encoder.transform.2.bias", false));
    }

    /**
     * This layer's columns of {@value #FILE_TENSOR}: {@code Pkᵀ} then {@code Pvᵀ} for plain prefixes,
     * one computed block {@code Pᵀ} otherwise (folded or from the MLP).
     *
     * @throws IllegalStateException for a configuration without its layer position (deserialized
     *     from before adapter files held prefixes): wrap the base model again
     */
    @Override
    public List<SharedBlock> sharedBlocks() {
        if (numLayers <= 0) {
            throw new IllegalStateException("prefix layer " + getLayerName() + " does not know its position among the "
                    + "attention cores (a configuration from before prefix adapter files); wrap the base model again");
        }
        long width = keySize + valueSize;
        long[] shape = {numVirtualTokens, numLayers * width};
        long offset = layerIndex * width;
        if (encoderHiddenSize == 0 && foldedPrefix == null) {
            return List.of(new SharedBlock(FILE_TENSOR, shape, offset, keySize, PREFIX_K),
                    new SharedBlock(FILE_TENSOR, shape, offset + keySize, valueSize, PREFIX_V));
        }
        return List.of(new SharedBlock(FILE_TENSOR, shape, offset, width, null));
    }

    /** {@code Pᵀ [p, dk + dv]}: the folded prefix, or the MLP evaluated on {@code params}. */
    @Override
    public INDArray sharedBlockValue(SharedBlock block, Map<String, INDArray> params) {
        INDArray p = foldedPrefix != null ? foldedPrefix : PrefixEncoderLayerImpl.mlpPrefix(params);
        return p.transpose();
    }

    /** The token input never needs a gradient: ignored. */
    @Override
    public void setInputGradient(boolean inputGradient) {
    }

    @Override
    @JsonIgnore
    public boolean isInputGradient() {
        return false;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        long p = numVirtualTokens;
        if (encoderHiddenSize == 0) {
            m.put(PREFIX_K, new long[] {keySize, p});
            m.put(PREFIX_V, new long[] {valueSize, p});
        } else {
            long e = encoderHiddenSize;
            m.put(PREFIX_EMB, new long[] {keySize, p});
            m.put(PREFIX_W1, new long[] {keySize, e});
            m.put(PREFIX_B1, new long[] {e});
            m.put(PREFIX_W2, new long[] {e, keySize + valueSize});
            m.put(PREFIX_B2, new long[] {keySize + valueSize});
        }
        return m;
    }

    /** No weight decay on prefixes: neither weights nor biases for DL4J. */
    @Override
    public boolean isWeightParam(String key) {
        return false;
    }

    @Override
    public void initParam(String key, INDArray view) {
        switch (key) {
            case PREFIX_K:
            case PREFIX_V:
            case PREFIX_EMB:
                view.assign(Nd4j.randn(view.dataType(), view.shape()));
                break;
            case PREFIX_W1:
            case PREFIX_W2: {
                double bound = 1.0 / Math.sqrt(view.size(0));
                view.assign(Nd4j.rand(view.dataType(), view.shape()).muli(2 * bound).subi(bound));
                break;
            }
            case PREFIX_B1:
            case PREFIX_B2:
                view.assign(0);
                break;
            default:
                throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer " + getLayerName()
                        + "; keys are " + paramShapes().keySet());
        }
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new PrefixEncoderLayerImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        return InputType.recurrent(keySize + valueSize, numVirtualTokens);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        // reads only the mini-batch size of its input
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        InputType out = getOutputType(-1, inputType);
        return ParamLayoutInitializer.memoryReport(this, inputType, out, out.arrayElementsPerExample());
    }

    @Override
    public String toString() {
        return "PrefixEncoderLayer(name=" + getLayerName() + ", p=" + numVirtualTokens + ", dk=" + keySize + ", dv="
                + valueSize + ", encoderHiddenSize=" + encoderHiddenSize + ", folded=" + (foldedPrefix != null)
                + ", enabled=" + isAdapterEnabled() + ")";
    }
}
