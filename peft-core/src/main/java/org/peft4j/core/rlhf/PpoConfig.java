package org.peft4j.core.rlhf;

import java.util.Objects;

/**
 * Settings of {@link PpoTrainer}, with TRL's defaults where TRL has one (in parentheses the TRL
 * name when it differs):
 * <ul>
 *   <li>{@code sampling}: how rollouts are drawn (temperature, top-k, response length);</li>
 *   <li>{@code klCoefficient} {@code β} (kl_coef, 0.05): the per-token penalty
 *       {@code −β·(log π − log π_ref)}; with {@link Builder#adaptiveKl} it starts there and follows
 *       the controller of Ziegler et al. (arXiv 1909.08593) towards a target KL per response
 *       (TRL before 0.12: target 6, horizon 10,000);</li>
 *   <li>{@code gamma} (1.0) and {@code lambda} (lam, 0.95) of generalized advantage estimation;</li>
 *   <li>{@code clipRange} (cliprange, 0.2) of the policy ratio and {@code valueClipRange}
 *       (cliprange_value, 0.2) of the value update;</li>
 *   <li>{@code valueCoefficient} (vf_coef, 0.1): weight of the value loss;</li>
 *   <li>{@code epochs} (num_ppo_epochs, 4) over each rollout batch, split into {@code miniBatches}
 *       (num_mini_batches, 1) shuffled minibatches per epoch, one update each;</li>
 *   <li>{@code seed} (0) of the sampling and the shuffles.</li>
 * </ul>
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class PpoConfig {

    private final SamplingConfig sampling;
    private final double klCoefficient;
    private final double targetKl;
    private final double klHorizon;
    private final double gamma;
    private final double lambda;
    private final double clipRange;
    private final double valueClipRange;
    private final double valueCoefficient;
    private final int epochs;
    private final int miniBatches;
    private final long seed;
    private final Heads heads;

    private PpoConfig(Builder b) {
        this.sampling = b.sampling;
        this.klCoefficient = b.klCoefficient;
        this.targetKl = b.targetKl;
        this.klHorizon = b.klHorizon;
        this.gamma = b.gamma;
        this.lambda = b.lambda;
        this.clipRange = b.clipRange;
        this.valueClipRange = b.valueClipRange;
        this.valueCoefficient = b.valueCoefficient;
        this.epochs = b.epochs;
        this.miniBatches = b.miniBatches;
        this.seed = b.seed;
        this.heads = b.heads;
    }

    /** A builder with the defaults listed in the class comment. */
    public static Builder builder() {
        return new Builder();
    }

    public SamplingConfig sampling() {
        return sampling;
    }

    /** {@code β} of the first iteration (all iterations when the coefficient is fixed). */
    public double klCoefficient() {
        return klCoefficient;
    }

    /** Whether {@code β} adapts to {@link #targetKl()}. */
    public boolean isAdaptiveKl() {
        return targetKl > 0;
    }

    /** The adaptive controller's target KL per response (nats); 0 when the coefficient is fixed. */
    public double targetKl() {
        return targetKl;
    }

    /** The adaptive controller's horizon, in rollouts; 0 when the coefficient is fixed. */
    public double klHorizon() {
        return klHorizon;
    }

    public double gamma() {
        return gamma;
    }

    public double lambda() {
        return lambda;
    }

    public double clipRange() {
        return clipRange;
    }

    public double valueClipRange() {
        return valueClipRange;
    }

    public double valueCoefficient() {
        return valueCoefficient;
    }

    public int epochs() {
        return epochs;
    }

    public int miniBatches() {
        return miniBatches;
    }

    public long seed() {
        return seed;
    }

    public Heads heads() {
        return heads;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PpoConfig c && sampling.equals(c.sampling)
                && Double.compare(klCoefficient, c.klCoefficient) == 0 && Double.compare(targetKl, c.targetKl) == 0
                && Double.compare(klHorizon, c.klHorizon) == 0 && Double.compare(gamma, c.gamma) == 0
                && Double.compare(lambda, c.lambda) == 0 && Double.compare(clipRange, c.clipRange) == 0
                && Double.compare(valueClipRange, c.valueClipRange) == 0
                && Double.compare(valueCoefficient, c.valueCoefficient) == 0 && epochs == c.epochs
                && miniBatches == c.miniBatches && seed == c.seed && heads.equals(c.heads);
    }

    @Override
    public int hashCode() {
        return Objects.hash(sampling, klCoefficient, targetKl, klHorizon, gamma, lambda, clipRange, valueClipRange,
                valueCoefficient, epochs, miniBatches, seed, heads);
    }

    @Override
    public String toString() {
        return "PpoConfig(" + sampling + ", klCoefficient=" + klCoefficient + (isAdaptiveKl() ? ", adaptive to "
                + targetKl + " over " + klHorizon : ", fixed") + ", gamma=" + gamma + ", lambda=" + lambda
                + ", clipRange=" + clipRange + ", valueClipRange=" + valueClipRange + ", valueCoefficient="
                + valueCoefficient + ", epochs=" + epochs + ", miniBatches=" + miniBatches + ", seed=" + seed + ", "
                + heads + ")";
    }

    /** Builds a {@link PpoConfig}; every setter checks its argument at once. */
    public static final class Builder {
        private SamplingConfig sampling = SamplingConfig.builder().build();
        private double klCoefficient = 0.05;
        private double targetKl;
        private double klHorizon;
        private double gamma = 1.0;
        private double lambda = 0.95;
        private double clipRange = 0.2;
        private double valueClipRange = 0.2;
        private double valueCoefficient = 0.1;
        private int epochs = 4;
        private int miniBatches = 1;
        private long seed;
        private Heads heads = Heads.DEFAULT;

        private Builder() {
        }

        /** How rollouts are sampled (default: temperature 1, no top-k cut, 32 tokens). */
        public Builder sampling(SamplingConfig sampling) {
            this.sampling = Objects.requireNonNull(sampling, "sampling must not be null");
            return this;
        }

        /** {@code β}, finite and not negative (default 0.05; 0 removes the KL penalty). */
        public Builder klCoefficient(double beta) {
            if (!(beta >= 0) || Double.isInfinite(beta)) {
                throw new IllegalArgumentException("klCoefficient must be finite and not negative; got " + beta);
            }
            this.klCoefficient = beta;
            return this;
        }

        /**
         * Adapts {@code β} after each iteration towards a mean KL per response of {@code target} nats:
         * {@code β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)} for a batch of {@code n} rollouts.
         */
        public Builder adaptiveKl(double target, double horizon) {
            if (!(target > 0) || Double.isInfinite(target)) {
                throw new IllegalArgumentException("the target KL must be positive and finite; got " + target);
            }
            if (!(horizon > 0) || Double.isInfinite(horizon)) {
                throw new IllegalArgumentException("the KL horizon must be positive and finite; got " + horizon);
            }
            this.targetKl = target;
            this.klHorizon = horizon;
            return this;
        }

        /** Discount {@code γ} in [0, 1] (default 1). */
        public Builder gamma(double gamma) {
            this.gamma = unit("gamma", gamma);
            return this;
        }

        /** GAE's {@code λ} in [0, 1] (default 0.95). */
        public Builder lambda(double lambda) {
            this.lambda = unit("lambda", lambda);
            return this;
        }

        /** Policy ratio clip {@code ε}, positive and finite (default 0.2). */
        public Builder clipRange(double clipRange) {
            this.clipRange = positive("clipRange", clipRange);
            return this;
        }

        /** Value clip range, positive and finite (default 0.2). */
        public Builder valueClipRange(double valueClipRange) {
            this.valueClipRange = positive("valueClipRange", valueClipRange);
            return this;
        }

        /** Weight of the value loss, finite and not negative (default 0.1). */
        public Builder valueCoefficient(double c) {
            if (!(c >= 0) || Double.isInfinite(c)) {
                throw new IllegalArgumentException("valueCoefficient must be finite and not negative; got " + c);
            }
            this.valueCoefficient = c;
            return this;
        }

        /** Passes over each rollout batch, positive (default 4). */
        public Builder epochs(int epochs) {
            if (epochs <= 0) {
                throw new IllegalArgumentException("epochs must be positive; got " + epochs);
            }
            this.epochs = epochs;
            return this;
        }

        /** Minibatches per pass, positive (default 1); a rollout batch must hold at least this many prompts. */
        public Builder miniBatches(int miniBatches) {
            if (miniBatches <= 0) {
                throw new IllegalArgumentException("miniBatches must be positive; got " + miniBatches);
            }
            this.miniBatches = miniBatches;
            return this;
        }

        /** Seed of the sampling and the shuffles (default 0). */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** The outputs to read (default {@link Heads#DEFAULT}); the scalar output is the value head. */
        public Builder heads(Heads heads) {
            this.heads = Objects.requireNonNull(heads, "heads must not be null");
            return this;
        }

        private static double unit(String what, double v) {
            if (!(v >= 0 && v <= 1)) {
                throw new IllegalArgumentException(what + " must be in [0, 1]; got " + v);
            }
            return v;
        }

        private static double positive(String what, double v) {
            if (!(v > 0) || Double.isInfinite(v)) {
                throw new IllegalArgumentException(what + " must be positive and finite; got " + v);
            }
            return v;
        }

        public PpoConfig build() {
            return new PpoConfig(this);
        }
    }
}
