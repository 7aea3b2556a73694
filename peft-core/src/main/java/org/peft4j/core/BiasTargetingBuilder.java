package org.peft4j.core;

/**
 * The base of the builder of a tuner config with Hugging Face PEFT's {@code bias} option (the
 * LoRA family): {@link TargetingBuilder}'s options plus {@link #bias(BiasMode)}.
 *
 * <p>Thread-safety: not thread-safe.
 *
 * @param <B> the concrete builder, returned by every setter
 */
public abstract class BiasTargetingBuilder<B extends BiasTargetingBuilder<B>> extends TargetingBuilder<B> {

    protected BiasTargetingBuilder() {
        super(Targeting.Scope.TARGETS_AND_BIAS);
    }

    /** Which biases train (default {@link BiasMode#NONE}). */
    public B bias(BiasMode bias) {
        targetingBuilder().bias(bias);
        return self();
    }
}
