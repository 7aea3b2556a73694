package org.peft4j.core.rlhf;

import java.util.Objects;

/**
 * Settings of {@link DpoTrainer}: {@code β}, the strength of the implicit KL constraint to the
 * reference (TRL's default 0.1; smaller lets the policy move further), and the label smoothing
 * {@code ε} of conservative DPO, the assumed probability that a preference label is flipped
 * (default 0).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class DpoConfig {

    private final double beta;
    private final double labelSmoothing;
    private final Heads heads;

    private DpoConfig(Builder b) {
        this.beta = b.beta;
        this.labelSmoothing = b.labelSmoothing;
        this.heads = b.heads;
    }

    /** A builder with the defaults: {@code β = 0.1}, no label smoothing, {@link Heads#DEFAULT}. */
    public static Builder builder() {
        return new Builder();
    }

    /** {@code β > 0}. */
    public double beta() {
        return beta;
    }

    /** {@code ε ∈ [0, 0.5)}. */
    public double labelSmoothing() {
        return labelSmoothing;
    }

    /** The outputs read. */
    public Heads heads() {
        return heads;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DpoConfig c && Double.compare(beta, c.beta) == 0
                && Double.compare(labelSmoothing, c.labelSmoothing) == 0 && heads.equals(c.heads);
    }

    @Override
    public int hashCode() {
        return Objects.hash(beta, labelSmoothing, heads);
    }

    @Override
    public String toString() {
        return "DpoConfig(beta=" + beta + ", labelSmoothing=" + labelSmoothing + ", " + heads + ")";
    }

    /** Builds a {@link DpoConfig}; every setter checks its argument at once. */
    public static final class Builder {
        private double beta = 0.1;
        private double labelSmoothing;
        private Heads heads = Heads.DEFAULT;

        private Builder() {
        }

        /** {@code β}, positive and finite (default 0.1). */
        public Builder beta(double beta) {
            if (!(beta > 0) || Double.isInfinite(beta)) {
                throw new IllegalArgumentException("beta must be positive and finite; got " + beta);
            }
            this.beta = beta;
            return this;
        }

        /** Label smoothing {@code ε} in [0, 0.5) (default 0). */
        public Builder labelSmoothing(double epsilon) {
            if (!(epsilon >= 0 && epsilon < 0.5)) {
                throw new IllegalArgumentException("labelSmoothing must be in [0, 0.5); got " + epsilon);
            }
            this.labelSmoothing = epsilon;
            return this;
        }

        /** The outputs to read (default {@link Heads#DEFAULT}). */
        public Builder heads(Heads heads) {
            this.heads = Objects.requireNonNull(heads, "heads must not be null");
            return this;
        }

        public DpoConfig build() {
            return new DpoConfig(this);
        }
    }
}
