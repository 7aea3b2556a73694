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
 * @param current the frozen layer that holds this weight in the wrapped model being rebuilt (when
 *     a {@link PeftModel} adds, loads or switches to an adapter of another layout), or null when a
 *     plain graph is wrapped. {@link #weight} is then that layer's {@link FrozenDenseLayer#frozenWeight()};
 *     a config that stores the base in another form (4-bit blocks) reuses the form {@code current}
 *     already holds instead of converting the float copy again, which would not give back the same
 *     blocks.
 *
 * <p>Thread-safety: immutable (the arrays are never written).
 */
public record DenseTarget(String layerName, long nIn, long nOut, INDArray weight, INDArray bias,
                          boolean trainableBias, boolean inputGradient, FrozenDenseLayer current) {
    public DenseTarget {
        Objects.requireNonNull(layerName, "layerName");
        Objects.requireNonNull(weight, "weight");
    }

    /** A layer of a plain graph being wrapped (no {@link #current} layer). */
    public DenseTarget(String layerName, long nIn, long nOut, INDArray weight, INDArray bias,
                       boolean trainableBias, boolean inputGradient) {
        this(layerName, nIn, nOut, weight, bias, trainableBias, inputGradient, null);
    }
}
