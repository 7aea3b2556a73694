package org.peft4j.lora.loha;

import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.Targeting;
import org.peft4j.core.TargetingBuilder;
import org.peft4j.lora.lycoris.LycorisConvolutionLayer;
import org.peft4j.lora.lycoris.LayerPatterns;
import org.peft4j.lora.lycoris.LycorisDenseLayer;

/**
 * Configuration of a LoHa adapter (low-rank Hadamard product, FedPara arXiv 2108.06098), with
 * Hugging Face PEFT's option names ({@code LoHaConfig}, {@code peft_type} {@code "LOHA"}). Each
 * target's weight gets the update
 * <pre>
 *   ΔW = (alpha / r) · (W1a·W1b) ⊙ (W2a·W2b)      W1a, W2a [out, r]   W1b, W2b [r, in]
 * </pre>
 * whose rank can reach {@code r²} for {@code 4·r·(in + out)} trainable parameters. Built once by
 * {@link #builder()}, whose setters validate at once; immutable afterwards.
 *
 * <pre>{@code
 * LoHaConfig cfg = LoHaConfig.builder()
 *     .rank(8).alpha(8).rankDropout(0.1)
 *     .targetModulesRegex("block\\d+\\.attn\\.(q|v)")
 *     .build();
 * }</pre>
 *
 * <p>Targets, exclusions and modules to save are the shared {@link Targeting} options; LoHa has no
 * bias option (PEFT's {@code LoHaConfig} has none). Dropout acts only in training: rank dropout
 * drops rows (output features) of {@code ΔW} and rescales the kept ones, module dropout leaves the
 * whole update out of a step; there is no dropout on the input.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class LoHaConfig implements PeftConfig {

    /** The {@code peft_type} of LoHa adapter files. */
    public static final String PEFT_TYPE = "LOHA";

    private final int rank;
    private final double alpha;
    private final double rankDropout;
    private final double moduleDropout;
    private final boolean useEffectiveConv2d;
    private final boolean initWeights;
    private final LayerPatterns patterns;
    private final Targeting targeting;

    private LoHaConfig(Builder b, Targeting targeting) {
        this.patterns = b.patterns.build();
        this.rank = b.rank;
        this.alpha = b.alpha;
        this.rankDropout = b.rankDropout;
        this.moduleDropout = b.moduleDropout;
        this.useEffectiveConv2d = b.useEffectiveConv2d;
        this.initWeights = b.initWeights;
        this.targeting = targeting;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.rank = rank;
        b.alpha = alpha;
        b.rankDropout = rankDropout;
        b.moduleDropout = moduleDropout;
        b.useEffectiveConv2d = useEffectiveConv2d;
        b.initWeights = initWeights;
        b.patterns = new LayerPatterns.Builder(patterns);
        b.targeting(targeting);
        return b;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    /** Per-layer ranks by pattern key (PEFT's {@code rank_pattern}), in the order keys are tried; empty when none. */
    public Map<String, Integer> rankPattern() {
        return patterns.ranks();
    }

    /** Per-layer alphas by pattern key (PEFT's {@code alpha_pattern}), in the order keys are tried; empty when none. */
    public Map<String, Double> alphaPattern() {
        return patterns.alphas();
    }

    /** The rank of layer {@code layerName}: its {@link #rankPattern()} value, else {@link #rank()}. */
    public int rankFor(String layerName) {
        return patterns.rankFor(layerName, rank);
    }

    /** The alpha of layer {@code layerName}: its {@link #alphaPattern()} value, else {@link #alpha()}. */
    public double alphaFor(String layerName) {
        return patterns.alphaFor(layerName, alpha);
    }

    /** Rank {@code r} of each factor product. */
    public int rank() {
        return rank;
    }

    public double alpha() {
        return alpha;
    }

    /** {@code alpha / r}. */
    public double scaling() {
        return alpha / rank;
    }

    /** Probability of dropping a row (output feature) of {@code ΔW} in a training step. */
    public double rankDropout() {
        return rankDropout;
    }

    /** Probability of leaving the whole update out of a training step. */
    public double moduleDropout() {
        return moduleDropout;
    }

    /** Whether convolutions with a kernel of more than one position use the effective (CP) form. */
    public boolean useEffectiveConv2d() {
        return useEffectiveConv2d;
    }

    /** PEFT's {@code init_weights}: true starts {@code W2b} at zero (identity), false at random. */
    public boolean initWeights() {
        return initWeights;
    }

    @Override
    public Set<TargetKind> supportedTargetKinds() {
        return Set.of(TargetKind.DENSE, TargetKind.CONVOLUTION);
    }

    /**
     * Hugging Face PEFT's LoHa keys: {@code r}, {@code alpha}, {@code rank_dropout},
     * {@code module_dropout}, {@code use_effective_conv2d}, {@code init_weights}, and
     * {@code rank_pattern}, {@code alpha_pattern} ({@code {}} when unset), {@code layers_to_transform},
     * {@code layers_pattern} (null), all keys of PEFT 0.13's {@code LoHaConfig};
     * {@link PeftConfig#toAdapterConfig()} adds {@code peft_type} and the targeting keys.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("r", rank);
        m.put("alpha", alpha);
        m.put("rank_dropout", rankDropout);
        m.put("module_dropout", moduleDropout);
        m.put("use_effective_conv2d", useEffectiveConv2d);
        m.put("init_weights", initWeights);
        patterns.writeJson(m);
        m.put("layers_to_transform", null);
        m.put("layers_pattern", null);
        return m;
    }

    /** The default signature plus what shapes the factors: rank and the effective convolution form. */
    @Override
    public String layoutSignature() {
        return PEFT_TYPE + " r=" + rank + " ranks=" + patterns.ranks() + " effectiveConv=" + useEffectiveConv2d + " " + targeting.signature();
    }

    /**
     * A dense target becomes a {@link LycorisDenseLayer}, a convolution a
     * {@link LycorisConvolutionLayer}, each with this method's update made for its shape.
     */
    @Override
    public FrozenBaseLayer adapt(Target target) {
        HadamardProduct update = HadamardProduct.of(this, target);
        return target.kind() == TargetKind.DENSE ? new LycorisDenseLayer(target, update)
                : new LycorisConvolutionLayer(target, update);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof LoHaConfig)) {
            return false;
        }
        LoHaConfig c = (LoHaConfig) o;
        return rank == c.rank && Double.compare(alpha, c.alpha) == 0 && Double.compare(rankDropout, c.rankDropout) == 0
                && Double.compare(moduleDropout, c.moduleDropout) == 0 && useEffectiveConv2d == c.useEffectiveConv2d
                && initWeights == c.initWeights && patterns.equals(c.patterns) && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(rank, alpha, rankDropout, moduleDropout, useEffectiveConv2d, initWeights, patterns, targeting);
    }

    @Override
    public String toString() {
        return "LoHaConfig(rank=" + rank + ", alpha=" + alpha + ", rankDropout=" + rankDropout + ", moduleDropout="
                + moduleDropout + ", useEffectiveConv2d=" + useEffectiveConv2d + ", initWeights=" + initWeights + ", "
                + targeting + (patterns.equals(LayerPatterns.NONE) ? "" : ", " + patterns) + ")";
    }

    /**
     * Builds a {@link LoHaConfig}. Every setter checks its argument at once and says what was wrong;
     * {@link #build()} checks that target modules were given. The shared options (targets,
     * exclusions, modules to save) come from {@link TargetingBuilder}.
     */
    public static final class Builder extends TargetingBuilder<Builder> {
        private int rank = 8;
        private double alpha = 8;
        private double rankDropout;
        private double moduleDropout;
        private boolean useEffectiveConv2d;
        private boolean initWeights = true;

        private LayerPatterns.Builder patterns = new LayerPatterns.Builder();

        private Builder() {
        }

        /**
         * Rank of the layers whose name {@code key} matches (an RE2 expression matched against the
         * end of the name at a {@code "."} boundary, first key in sorted order), instead of
         * {@link #rank(int)}; PEFT's {@code rank_pattern}.
         *
         * @throws IllegalArgumentException if the rank is not positive, or the key is empty, given
         *     already or not an RE2 expression
         */
        public Builder rankPattern(String key, int rank) {
            patterns.rank(key, rank);
            return this;
        }

        /**
         * Alpha of the layers whose name {@code key} matches (as for {@link #rankPattern}), instead of
         * {@link #alpha(double)}; PEFT's {@code alpha_pattern}.
         *
         * @throws IllegalArgumentException if alpha is not positive and finite, or the key is empty,
         *     given already or not an RE2 expression
         */
        public Builder alphaPattern(String key, double alpha) {
            patterns.alpha(key, alpha);
            return this;
        }

        /** Every per-layer rank and alpha at once (read from a file). */
        Builder patterns(LayerPatterns p) {
            this.patterns = new LayerPatterns.Builder(p);
            return this;
        }

        /** Rank {@code r} of each of the two factor products (default 8). */
        public Builder rank(int rank) {
            if (rank <= 0) {
                throw new IllegalArgumentException("rank must be positive; got " + rank);
            }
            this.rank = rank;
            return this;
        }

        /** {@code alpha} (default 8): the update is scaled by {@code alpha / rank}. */
        public Builder alpha(double alpha) {
            if (!(alpha > 0) || Double.isInfinite(alpha)) {
                throw new IllegalArgumentException("alpha must be positive and finite; got " + alpha);
            }
            this.alpha = alpha;
            return this;
        }

        /** Probability in [0, 1) of dropping each row (output feature) of {@code ΔW} per training step (default 0). */
        public Builder rankDropout(double rankDropout) {
            if (!(rankDropout >= 0 && rankDropout < 1)) {
                throw new IllegalArgumentException("rankDropout must be in [0, 1); got " + rankDropout);
            }
            this.rankDropout = rankDropout;
            return this;
        }

        /** Probability in [0, 1) of leaving a layer's whole update out of a training step (default 0). */
        public Builder moduleDropout(double moduleDropout) {
            if (!(moduleDropout >= 0 && moduleDropout < 1)) {
                throw new IllegalArgumentException("moduleDropout must be in [0, 1); got " + moduleDropout);
            }
            this.moduleDropout = moduleDropout;
            return this;
        }

        /**
         * Use the effective (CP) form on convolutions whose kernel has more than one position
         * (FedPara's Proposition 3; default false). Ignored for dense layers and 1×1 kernels, as in PEFT.
         */
        public Builder useEffectiveConv2d(boolean useEffectiveConv2d) {
            this.useEffectiveConv2d = useEffectiveConv2d;
            return this;
        }

        /**
         * PEFT's {@code init_weights} (default true: {@code W2b = 0}, so a fresh adapter changes
         * nothing). False starts every factor at random, which changes the model's outputs at once;
         * PEFT discourages it.
         */
        public Builder initWeights(boolean initWeights) {
            this.initWeights = initWeights;
            return this;
        }

        /**
         * @throws IllegalStateException if no target modules were set
         */
        public LoHaConfig build() {
            return new LoHaConfig(this, buildTargeting());
        }
    }
}
