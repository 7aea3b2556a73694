package org.peft4j.lora.adalora.internal;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * An AdaLoRA layer implementation's gradient views: the rank allocator reads a step's raw gradient
 * there, between the backward pass and the updater (which turns the views into updates in place).
 *
 * <p>Thread-safety: as the implementing layer.
 */
public interface GradientViews {

    /** The gradient view of parameter {@code key} (a view into the graph's flat gradient), or null. */
    INDArray gradientView(String key);
}
