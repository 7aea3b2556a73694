package org.peft4j.core.rlhf;

import java.util.Objects;

/**
 * Settings of {@link RewardTrainer}: the outputs to read and TRL's
 * {@code center_rewards_coefficient} {@code c}, which adds {@code c·mean((r_c + r_r)²)} to the
 * Bradley–Terry loss to keep rewards centred on 0 (default 0: off).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class RewardConfig {

    private final double centerRewardsCoefficient;
    private final Heads heads;

    private RewardConfig(Builder b) {
        this.centerRewardsCoefficient = b.centerRewardsCoefficient;
        this.heads = b.heads;
    }

    /** A builder with the defaults: no centring, {@link Heads#DEFAULT}. */
    public static Builder builder() {
        return new Builder();
    }

    /** The weight of the centring term. */
    public double centerRewardsCoefficient() {
        return centerRewardsCoefficient;
    }

    /** The outputs read. */
    public Heads heads() {
        return heads;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof RewardConfig c && Double.compare(centerRewardsCoefficient, c.centerRewardsCoefficient) == 0
                && heads.equals(c.heads);
    }

    @Override
    public int hashCode() {
        return Objects.hash(centerRewardsCoefficient, heads);
    }

    @Override
    public String toString() {
        return "RewardConfig(centerRewardsCoefficient=" + centerRewardsCoefficient + ", " + heads + ")";
    }

    /** Builds a {@link RewardConfig}; every setter checks its argument at once. */
    public static final class Builder {
        private double centerRewardsCoefficient;
        private Heads heads = Heads.DEFAULT;

        private Builder() {
        }

        /** Weight of {@code mean((r_c + r_r)²)}, finite and not negative (default 0). */
        public Builder centerRewardsCoefficient(double c) {
            if (!(c >= 0) || Double.isInfinite(c)) {
                throw new IllegalArgumentException("centerRewardsCoefficient must be finite and not negative; got " + c);
            }
            this.centerRewardsCoefficient = c;
            return this;
        }

        /** The outputs to read (default {@link Heads#DEFAULT}). */
        public Builder heads(Heads heads) {
            this.heads = Objects.requireNonNull(heads, "heads must not be null");
            return this;
        }

        public RewardConfig build() {
            return new RewardConfig(this);
        }
    }
}
