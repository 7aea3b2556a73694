package org.peft4j.core;

/**
 * A layer or vertex configuration that a tuner adds to the base graph through a {@link GraphEdit}
 * (a bottleneck adapter, a prompt, a prefix-aware attention core), as opposed to the
 * {@link FrozenDenseLayer} subclasses that adapt a dense layer in place.
 *
 * <p>Such layers have no stock DL4J equivalent, so {@link PeftModel#merge()} and
 * {@link PeftModel#mergeAndUnload()} refuse models that contain them;
 * {@link PeftModel#disableAdapter()} switches them to the base model's computation (identity,
 * no prefix, no prompt).
 *
 * <p>Thread-safety: the flags are set by {@link Peft#wrap} before the graph is built and by
 * {@link PeftModel#disableAdapter()}; see {@link PeftModel} for its thread-safety.
 */
public interface TunerLayer {

    /**
     * Set by {@link Peft#wrap}: whether anything upstream trains, so the layer must pass an
     * epsilon down (when false it may return none and save the work). For a replacement, only the
     * replaced vertex's original inputs count: its extra inputs (e.g. a prefix) always get theirs.
     */
    void setInputGradient(boolean inputGradient);

    /** Whether the layer passes an epsilon down; see {@link #setInputGradient}. */
    boolean isInputGradient();

    /** Whether the tuner's computation is on; when off the layer computes what the base model does. */
    boolean isAdapterEnabled();

    /** Switches the tuner's computation on or off. */
    void setAdapterEnabled(boolean enabled);
}
