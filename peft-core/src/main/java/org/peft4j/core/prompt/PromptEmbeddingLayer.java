package org.peft4j.core.prompt;

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
import org.nd4j.serde.jackson.shaded.NDArrayDeSerializer;
import org.nd4j.serde.jackson.shaded.NDArraySerializer;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.internal.ParamLayoutInitializer;
import org.peft4j.core.prompt.internal.PromptLayerImpl;
import org.peft4j.core.spi.BaseTunerLayer;

/**
 * Prompt tuning's trainable soft prompt (Lester et al., arXiv 2104.08691), inserted after the
 * token embedding: it prepends {@code p} virtual-token embeddings to every sequence.
 *
 * <pre>
 *   x [batch, d, T] (NCW)   →   y = [E ; x] [batch, d, p + T]      E [d, p] (param "prompt")
 *   mask [batch, T]         →   [1 … 1 ; mask] [batch, p + T]      (virtual tokens always real)
 *   backward: dE = Σ_batch dy[:, :, :p]     dx = dy[:, :, p:]
 * </pre>
 * Downstream layers see sequences of length {@code p + T} (a positional table must cover it);
 * a {@link PromptTrimLayer} before the output layer removes the first {@code p} positions again so
 * the labels keep their length {@code T}. The prompt's initial value is fixed at wrap time
 * ({@link PromptInit}) and kept in this configuration. No weight decay on the prompt. With
 * {@code p = 0}, or disabled, the layer passes its input and mask through unchanged.
 *
 * <p>In adapter files ({@link AdapterLayer}) the prompt is Hugging Face PEFT's
 * {@code prompt_embeddings [p, d]}, i.e. {@code Eᵀ}: one row per virtual token.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public class PromptEmbeddingLayer extends BaseTunerLayer implements AdapterLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of the virtual-token embeddings {@code E [d, p]}. */
    public static final String PROMPT_KEY = "prompt";

    /** Name of the model-level tensor holding the prompt in adapter files, as Hugging Face PEFT names it. */
    public static final String FILE_TENSOR = "prompt_embeddings";

    @JsonProperty("embeddingLayer")
    private String embeddingLayer;
    @JsonProperty("numVirtualTokens")
    private int numVirtualTokens;
    @JsonProperty("initialPrompt")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray initialPrompt;

    /** For JSON deserialization. */
    protected PromptEmbeddingLayer() {
    }

    /**
     * @param embeddingLayer the base model's token embedding this layer follows
     * @param size the embedding width {@code d}
     * @param initialPrompt the initial {@code E [d, p]} (p may be 0: then null is accepted)
     */
    public PromptEmbeddingLayer(String embeddingLayer, long size, INDArray initialPrompt) {
        this.embeddingLayer = java.util.Objects.requireNonNull(embeddingLayer, "embeddingLayer must not be null");
        if (size <= 0) {
            throw new IllegalArgumentException("prompt: embedding width must be positive; got " + size);
        }
        if (initialPrompt != null && (initialPrompt.rank() != 2 || initialPrompt.size(0) != size)) {
            throw new IllegalArgumentException("prompt: initial prompt must be [" + size + ", p], got "
                    + java.util.Arrays.toString(initialPrompt.shape()));
        }
        this.nIn = size;
        this.nOut = size;
        this.initialPrompt = initialPrompt;
        this.numVirtualTokens = initialPrompt == null ? 0 : (int) initialPrompt.size(1);
    }

    @JsonIgnore
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    /** The token embedding this prompt follows. */
    @Override
    public String baseLayerName() {
        return embeddingLayer;
    }

    /** None of its own: the prompt is the model-level {@value #FILE_TENSOR} ({@link #sharedBlocks()}). */
    @Override
    public List<FrozenDenseLayer.SavedTensor> savedTensors() {
        return List.of();
    }

    /** The whole of {@value #FILE_TENSOR} {@code [p, d]}, held as {@code E [d, p]}; none when {@code p = 0}. */
    @Override
    public List<SharedBlock> sharedBlocks() {
        if (numVirtualTokens == 0) {
            return List.of();
        }
        return List.of(new SharedBlock(FILE_TENSOR, new long[] {numVirtualTokens, nIn}, 0, nIn, PROMPT_KEY));
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        if (numVirtualTokens > 0) {
            m.put(PROMPT_KEY, new long[] {nIn, numVirtualTokens});
        }
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return false;
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (!PROMPT_KEY.equals(key)) {
            throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer " + getLayerName()
                    + "; keys are " + paramShapes().keySet());
        }
        view.assign(initialPrompt.castTo(view.dataType()));
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new PromptLayerImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (inputType instanceof InputType.InputTypeRecurrent) {
            long t = ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength();
            return InputType.recurrent(nOut, t > 0 ? t + numVirtualTokens : t);
        }
        return inputType;
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        // the width is fixed by the embedding it follows
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        return ParamLayoutInitializer.memoryReport(this, inputType, getOutputType(-1, inputType), 0);
    }

    @Override
    public String toString() {
        return "PromptEmbeddingLayer(name=" + getLayerName() + ", d=" + nIn + ", p=" + numVirtualTokens
                + ", enabled=" + isAdapterEnabled() + ")";
    }
}
