package org.peft4j.core.rlhf;

import java.util.Objects;

/**
 * How responses are sampled from a language model, one token at a time: at each step the
 * {@code topK} most probable next tokens ({@code 0}: all of them) are kept and one is drawn with
 * probability {@code ∝ exp(z/temperature)} (logits {@code z}); a response ends after
 * {@code maxNewTokens} tokens or with {@code stopToken} (included), when one is set.
 *
 * <pre>{@code
 * SamplingConfig s = SamplingConfig.builder().temperature(0.7).topK(20).maxNewTokens(48).build();
 * }</pre>
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class SamplingConfig {

    /** {@link #stopToken()} when responses end by length only. */
    public static final int NO_STOP_TOKEN = -1;

    private final double temperature;
    private final int topK;
    private final int maxNewTokens;
    private final int stopToken;

    private SamplingConfig(Builder b) {
        this.temperature = b.temperature;
        this.topK = b.topK;
        this.maxNewTokens = b.maxNewTokens;
        this.stopToken = b.stopToken;
    }

    /** A builder with temperature 1, no top-k cut, 32 new tokens, no stop token. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.temperature = temperature;
        b.topK = topK;
        b.maxNewTokens = maxNewTokens;
        b.stopToken = stopToken;
        return b;
    }

    /** Temperature {@code τ > 0}: logits are divided by it. */
    public double temperature() {
        return temperature;
    }

    /** How many most probable tokens are kept at each step; 0 keeps the whole vocabulary. */
    public int topK() {
        return topK;
    }

    /** The longest response, in tokens. */
    public int maxNewTokens() {
        return maxNewTokens;
    }

    /** The token that ends a response, or {@link #NO_STOP_TOKEN}. */
    public int stopToken() {
        return stopToken;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SamplingConfig c && Double.compare(temperature, c.temperature) == 0 && topK == c.topK
                && maxNewTokens == c.maxNewTokens && stopToken == c.stopToken;
    }

    @Override
    public int hashCode() {
        return Objects.hash(temperature, topK, maxNewTokens, stopToken);
    }

    @Override
    public String toString() {
        return "SamplingConfig(temperature=" + temperature + ", topK=" + topK + ", maxNewTokens=" + maxNewTokens
                + ", stopToken=" + (stopToken == NO_STOP_TOKEN ? "none" : String.valueOf(stopToken)) + ")";
    }

    /** Builds a {@link SamplingConfig}; every setter checks its argument at once. */
    public static final class Builder {
        private double temperature = 1.0;
        private int topK;
        private int maxNewTokens = 32;
        private int stopToken = NO_STOP_TOKEN;

        private Builder() {
        }

        /** Temperature, positive and finite (default 1). */
        public Builder temperature(double temperature) {
            if (!(temperature > 0) || Double.isInfinite(temperature)) {
                throw new IllegalArgumentException("temperature must be positive and finite; got " + temperature);
            }
            this.temperature = temperature;
            return this;
        }

        /** Keep the {@code k} most probable tokens at each step; 0 (default) keeps all. */
        public Builder topK(int k) {
            if (k < 0) {
                throw new IllegalArgumentException("topK must be 0 (no cut) or positive; got " + k);
            }
            this.topK = k;
            return this;
        }

        /** Longest response in tokens, positive (default 32). */
        public Builder maxNewTokens(int n) {
            if (n <= 0) {
                throw new IllegalArgumentException("maxNewTokens must be positive; got " + n);
            }
            this.maxNewTokens = n;
            return this;
        }

        /** The token id that ends a response (it is kept as its last token); default none. */
        public Builder stopToken(int id) {
            if (id < 0) {
                throw new IllegalArgumentException("stopToken must be a token id (not negative); got " + id);
            }
            this.stopToken = id;
            return this;
        }

        public SamplingConfig build() {
            return new SamplingConfig(this);
        }
    }
}
