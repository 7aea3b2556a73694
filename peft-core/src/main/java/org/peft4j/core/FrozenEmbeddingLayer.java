package org.peft4j.core;

import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.spi.FrozenEmbeddingLayerImpl;

/**
 * An embedding ({@link TargetKind#EMBEDDING}: DL4J's {@link EmbeddingLayer} or
 * {@link EmbeddingSequenceLayer}, such as the decoder's {@code embed.tokens}) whose table is
 * frozen outside DL4J's flat parameter vector. It computes what the stock layer computes:
 * <pre>
 *   z = W[i] + b      a = act(z)       i: token indices (as the stock layer reads them)
 *   W [vocab, nOut]   b [nOut]
 *   EmbeddingLayer: input [batch, 1] → output [batch, nOut]
 *   EmbeddingSequenceLayer: input [batch, T] (or [batch, 1, T]) → output [batch, nOut, T] (NCW) or [batch, T, nOut] (NWC)
 * </pre>
 * Token indices are no differentiable input, so no epsilon is passed down (as the stock layers);
 * with a mask the output (and the gradient) is zeroed where the mask is 0, as the stock layers do.
 * In row form (what tuner hooks see) there is one row per token: {@code x} the indices
 * {@code [rows]}, {@code z [rows, nOut]}.
 *
 * <p>Thread-safety: see {@link FrozenBaseLayer}.
 */
public class FrozenEmbeddingLayer extends FrozenBaseLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("baseLayer")
    private Layer baseLayer;

    /** For JSON deserialization. */
    protected FrozenEmbeddingLayer() {
    }

    /** A frozen copy of {@code target} (of kind {@link TargetKind#EMBEDDING}) with no adapter. */
    public FrozenEmbeddingLayer(Target target) {
        this(target, true);
    }

    /** See {@link FrozenBaseLayer#FrozenBaseLayer(Target, boolean)}. */
    protected FrozenEmbeddingLayer(Target target, boolean keepFloatWeight) {
        super(target, keepFloatWeight);
        this.baseLayer = target.baseLayer().clone();
    }

    @Override
    public TargetKind kind() {
        return TargetKind.EMBEDDING;
    }

    /** A copy of the stock layer's configuration. */
    @JsonIgnore
    public Layer baseLayer() {
        return baseLayer;
    }

    /** Whether the base layer is an {@link EmbeddingSequenceLayer} (sequence input and output). */
    @JsonIgnore
    public boolean isSequence() {
        return baseLayer instanceof EmbeddingSequenceLayer;
    }

    /** The output format of a sequence embedding (NCW when it set none). */
    @JsonIgnore
    public RNNFormat outputFormat() {
        RNNFormat f = isSequence() ? ((EmbeddingSequenceLayer) baseLayer).getOutputFormat() : null;
        return f == null ? RNNFormat.NCW : f;
    }

    /** The vocabulary size: rows of the frozen table. */
    @JsonIgnore
    public long vocabularySize() {
        return weightShape()[0];
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        return baseLayer.getOutputType(layerIndex, inputType);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        // the frozen table fixes the vocabulary
    }

    @Override
    public InputPreProcessor getPreProcessorForInputType(InputType inputType) {
        return baseLayer.getPreProcessorForInputType(inputType);
    }

    @Override
    protected FrozenEmbeddingLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new FrozenEmbeddingLayerImpl(conf, dataType);
    }

    @Override
    public FrozenEmbeddingLayer clone() {
        FrozenEmbeddingLayer c = (FrozenEmbeddingLayer) super.clone();
        c.baseLayer = baseLayer.clone();
        return c;
    }
}
