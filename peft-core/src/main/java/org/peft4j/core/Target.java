package org.peft4j.core;

import java.util.Objects;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * One layer of a base model as {@link PeftConfig#adapt} and {@link PeftConfig#freeze} see it: its
 * name, its {@link TargetKind}, a copy of its stock configuration (sizes, activation, and for a
 * convolution its kernel, stride, padding, dilation, mode and data format; for an embedding its
 * vocabulary, output format and bias), and its frozen weights:
 * <ul>
 *   <li>{@link TargetKind#DENSE}: {@code W [nIn, nOut]}, {@code b [nOut]};</li>
 *   <li>{@link TargetKind#EMBEDDING}: {@code W [vocab, nOut]}, {@code b [nOut]} (when the layer has one);</li>
 *   <li>{@link TargetKind#CONVOLUTION}: the kernel {@code W [nOut, nIn, kH, kW]} ({@code kW = 1} for
 *       a 1D convolution; see {@link FrozenConvolutionLayer#kernelFromStock} for the one stock
 *       layout that differs), {@code b [nOut]}.</li>
 * </ul>
 *
 * @param layerName the base model's name for the layer
 * @param kind the layer's kind
 * @param baseLayer a copy of the stock layer configuration (read it, do not keep it: the frozen
 *     layers copy what they need)
 * @param weight frozen {@code W}, a detached copy the adapter may keep but never write
 * @param bias frozen {@code b [nOut]}, or null when the layer has no bias
 * @param trainableBias whether the bias trains (from {@link BiasMode})
 * @param inputGradient whether anything upstream trains, so the layer must pass an epsilon down
 * @param current the frozen layer that holds this weight in the wrapped model being rebuilt (when
 *     a {@link PeftModel} adds, loads or switches to an adapter of another layout), or null when a
 *     plain graph is wrapped. {@link #weight} is then that layer's {@link FrozenBaseLayer#frozenWeight()};
 *     a config that stores the base in another form (4-bit blocks) reuses the form {@code current}
 *     already holds instead of converting the float copy again, which would not give back the same
 *     blocks.
 *
 * <p>Thread-safety: immutable (the arrays are never written).
 */
public record Target(String layerName, TargetKind kind, Layer baseLayer, INDArray weight, INDArray bias,
                     boolean trainableBias, boolean inputGradient, FrozenBaseLayer current) {

    public Target {
        Objects.requireNonNull(layerName, "layerName");
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(baseLayer, "baseLayer");
        Objects.requireNonNull(weight, "weight");
        if (TargetKind.of(baseLayer) != kind) {
            throw new IllegalArgumentException("layer \"" + layerName + "\" is a " + baseLayer.getClass().getSimpleName()
                    + ", not of kind " + kind);
        }
    }

    /** Input size: {@code nIn} of a dense layer, the vocabulary of an embedding, the input channels of a convolution. */
    public long nIn() {
        return kind == TargetKind.EMBEDDING ? weight.size(0) : ((FeedForwardLayer) baseLayer).getNIn();
    }

    /** Output size: units, embedding width or output channels. */
    public long nOut() {
        return ((FeedForwardLayer) baseLayer).getNOut();
    }
}
