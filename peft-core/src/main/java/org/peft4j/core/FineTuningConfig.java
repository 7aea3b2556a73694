package org.peft4j.core;

import java.util.Objects;

/**
 * The two classic baselines through the same {@link Peft#wrap} API as the adapters, so users can
 * compare them on their own data:
 * <ul>
 *   <li>{@link #full()}: full fine-tuning, every parameter of a copy of the base model trains;</li>
 *   <li>{@link #transferLearning(String...)}: every layer is frozen except the named ones, which
 *       train in full (e.g. a new head).</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public final class FineTuningConfig implements UntargetedConfig {

    private final boolean full;
    private final Targeting targeting;

    private FineTuningConfig(boolean full, Targeting targeting) {
        this.full = full;
        this.targeting = targeting;
    }

    /** Full fine-tuning: a copy of the base model with every parameter trainable. */
    public static FineTuningConfig full() {
        return new FineTuningConfig(true, Targeting.builder(Targeting.Scope.MODULES_TO_SAVE).build());
    }

    /**
     * Transfer learning: only {@code layers} train (all their parameters); the rest is frozen. An
     * entry chooses a layer whose name equals it or ends with {@code "."} plus the entry (as
     * {@code modulesToSave} does); together they must choose at least one layer when wrapping.
     *
     * @throws IllegalArgumentException if no layer is named, or a name is null, blank or repeated
     */
    public static FineTuningConfig transferLearning(String... layers) {
        Objects.requireNonNull(layers, "layers must not be null");
        if (layers.length == 0) {
            throw new IllegalArgumentException("transferLearning: name at least one layer to train");
        }
        try {
            return new FineTuningConfig(false, Targeting.ofModulesToSave(layers));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("transferLearning: " + e.getMessage(), e);
        }
    }

    @Override
    public String peftType() {
        return full ? "FULL" : "TRANSFER";
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    @Override
    public boolean trainsEverything() {
        return full;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FineTuningConfig && ((FineTuningConfig) o).full == full
                && ((FineTuningConfig) o).targeting.equals(targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(full, targeting);
    }

    @Override
    public String toString() {
        return full ? "FineTuningConfig(full)" : "FineTuningConfig(transferLearning=" + targeting.modulesToSave() + ")";
    }
}
