package org.peft4j.core;

import java.util.Objects;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * One dense-type layer of a base model as {@link PeftConfig#adaptDense} sees it: its name, sizes
 * and frozen weights in DL4J orientation ({@code W [nIn, nOut]}, {@code b [nOut]}).
 *
 * @param layerName the base model's name for the layer
 * @param nIn input size
 * @param nOut output size
 * @param weight frozen {@code W [nIn, nOut]}; a detached copy the adapter may keep but never write
 * @param bias frozen {@code b [nOut]}, or null when the layer has no bias
 * @param trainableBias whether the bias trains (from {@link BiasMode})
 * @param inputGradient whether anything upstream trains, so the layer must pass an epsilon down
 *
 * <p>Thread-safety: immutable (the arrays are never written).
 */
public record DenseTarget(String layerName, long nIn, long nOut, INDArray weight, INDArray bias,
                          boolean trainableBias, boolean inputGradient) {
    public DenseTarget {
        Objects.requireNonNull(layerName, "layerName");
        Objects.requireNonNull(weight, "weight");
    }
}
