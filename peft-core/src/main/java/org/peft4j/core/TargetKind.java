package org.peft4j.core;

import java.util.List;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.peft4j.core.blocks.Dense;

/**
 * The kinds of base-model layer a tuner can adapt in place, each with the stock DL4J layer
 * configurations it covers. A config says which kinds it supports
 * ({@link PeftConfig#supportedTargetKinds()}); a target of another kind is refused when wrapping,
 * naming the layer, its kind and the kinds the tuner supports.
 *
 * <p>Layer classes are matched exactly, not by subclass: DL4J's deconvolution, depthwise and
 * separable convolutions extend {@link ConvolutionLayer} but compute something else, so they are of
 * no kind.
 *
 * <p>Thread-safety: immutable.
 */
public enum TargetKind {
    /**
     * {@link DenseLayer} (without layer norm), {@link Dense} (peft4j's implementation of it),
     * {@link OutputLayer}, {@link RnnOutputLayer}: {@code W [nIn, nOut]}.
     */
    DENSE(List.of(DenseLayer.class, Dense.class, OutputLayer.class, RnnOutputLayer.class)),
    /** {@link EmbeddingLayer}, {@link EmbeddingSequenceLayer}: {@code W [vocab, nOut]}. */
    EMBEDDING(List.of(EmbeddingLayer.class, EmbeddingSequenceLayer.class)),
    /** {@link ConvolutionLayer} (2D), {@link Convolution1DLayer}: {@code W [nOut, nIn, kH, kW]}. */
    CONVOLUTION(List.of(ConvolutionLayer.class, Convolution1DLayer.class));

    private final List<Class<? extends Layer>> layerTypes;

    TargetKind(List<Class<? extends Layer>> layerTypes) {
        this.layerTypes = layerTypes;
    }

    /** The stock layer configuration classes of this kind. */
    public List<Class<? extends Layer>> layerTypes() {
        return layerTypes;
    }

    /**
     * The kind of a layer configuration, or null when no tuner can adapt it in place (an LSTM, a
     * dense layer with layer norm, a subclass of a listed type, a vertex that is no layer).
     */
    public static TargetKind of(Layer layer) {
        if (layer == null) {
            return null;
        }
        if (layer instanceof DenseLayer && ((DenseLayer) layer).hasLayerNorm()) {
            return null;
        }
        for (TargetKind k : values()) {
            if (k.layerTypes.contains(layer.getClass())) {
                return k;
            }
        }
        return null;
    }

    /** {@code DENSE (DenseLayer, Dense, OutputLayer, RnnOutputLayer)}, for messages. */
    public String describe() {
        return name() + " (" + String.join(", ", layerTypes.stream().map(Class::getSimpleName).toList()) + ")";
    }
}
