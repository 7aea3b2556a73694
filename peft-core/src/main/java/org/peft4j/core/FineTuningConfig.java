package org.peft4j.core;

import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

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
    private final List<String> trainable;

    private FineTuningConfig(boolean full, List<String> trainable) {
        this.full = full;
        this.trainable = trainable;
    }

    /** Full fine-tuning: a copy of the base model with every parameter trainable. */
    public static FineTuningConfig full() {
        return new FineTuningConfig(true, List.of());
    }

    /**
     * Transfer learning: only {@code layers} train (all their parameters); the rest is frozen.
     *
     * @throws IllegalArgumentException if no layer is named, or a name is null, blank or repeated
     */
    public static FineTuningConfig transferLearning(String... layers) {
        Objects.requireNonNull(layers, "layers must not be null");
        if (layers.length == 0) {
            throw new IllegalArgumentException("transferLearning: name at least one layer to train");
        }
        Set<String> set = new LinkedHashSet<>();
        for (String l : layers) {
            if (l == null || l.isBlank()) {
                throw new IllegalArgumentException("transferLearning: layer names must not be null or blank; got "
                        + Arrays.toString(layers));
            }
            if (!set.add(l)) {
                throw new IllegalArgumentException("transferLearning: layer \"" + l + "\" is named twice");
            }
        }
        return new FineTuningConfig(false, List.copyOf(set));
    }

    @Override
    public String peftType() {
        return full ? "FULL" : "TRANSFER";
    }

    @Override
    public List<String> modulesToSave() {
        return trainable;
    }

    @Override
    public boolean trainsEverything() {
        return full;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FineTuningConfig && ((FineTuningConfig) o).full == full
                && ((FineTuningConfig) o).trainable.equals(trainable);
    }

    @Override
    public int hashCode() {
        return Objects.hash(full, trainable);
    }

    @Override
    public String toString() {
        return full ? "FineTuningConfig(full)" : "FineTuningConfig(transferLearning=" + trainable + ")";
    }
}
