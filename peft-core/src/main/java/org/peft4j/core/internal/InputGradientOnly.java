package org.peft4j.core.internal;

/**
 * A layer implementation that can skip its parameter gradients when told that nobody reads them:
 * {@link DetachedParamsLayer} (a frozen layer that passes the epsilon down) discards the wrapped
 * layer's parameter gradients, so it calls {@link #inputGradientOnly()} once before the first
 * backward pass, and the layer then computes only the gradient with respect to its input.
 *
 * <p>Thread-safety: called by the thread that uses the layer, like every DL4J layer method.
 */
public interface InputGradientOnly {
    /** From now on the parameter gradients of this layer are discarded; it may skip computing them. */
    void inputGradientOnly();
}
