package org.peft4j.lora.lokr;

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
 * Configuration of a LoKr adapter (low-rank Kronecker product, LyCORIS arXiv 2309.14859), with
 * Hugging Face PEFT's option names ({@code LoKrConfig}, {@code peft_type} {@code "LOKR"}). Each
 * target's weight {@code [out, in]} gets the update
 * <pre>
 *   ΔW = (alpha / r) · w1 ⊗ w2        w1 [outL, inM]   w2 [outK, inN]   out = outL·outK, in = inM·inN
 * </pre>
 * where the sizes are split near their square roots (or by {@link Builder#decomposeFactor}) as PEFT
 * splits them, and {@code w2} (with {@link Builder#decomposeBoth} also {@code w1}) is a rank-{@code r}
 * product when {@code r} is below half its larger side. Built once by {@link #builder()}, whose
 * setters validate at once; immutable afterwards.
 *
 * <pre>{@code
 * LoKrConfig cfg = LoKrConfig.builder()
 *     .rank(4).alpha(4).decomposeBoth(true)
 *     .targetModules(TargetModules.ALL_LINEAR)
 *     .build();
 * }</pre>
 *
 * <p>Targets, exclusions and modules to save are the shared {@link Targeting} options; LoKr has no
 * bias option (PEFT's {@code LoKrConfig} has none). Dropout acts only in training: rank dropout
 * drops rows (output features) of {@code ΔW} (rescaling the kept ones only with
 * {@link Builder#rankDropoutScale}), module dropout leaves the whole update out of a step; there is
 * no dropout on the input.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class LoKrConfig implements PeftConfig {

    /** The {@code peft_type} of LoKr adapter files. */
    public static final String PEFT_TYPE = "LOKR";

    private final int rank;
    private final double alpha;
    private final double rankDropout;
    private final double moduleDropout;
    private final boolean rankDropoutScale;
    private final boolean useEffectiveConv2d;
    private final boolean decomposeBoth;
    private final int decomposeFactor;
    private final LoKrInit init;
    private final LayerPatterns patterns;
    private final Targeting targeting;

    private LoKrConfig(Builder b, Targeting targeting) {
        this.patterns = b.patterns.build();
        this.rank = b.rank;
        this.alpha = b.alpha;
        this.rankDropout = b.rankDropout;
        this.moduleDropout = b.moduleDropout;
        this.rankDropoutScale = b.rankDropoutScale;
        this.useEffectiveConv2d = b.useEffectiveConv2d;
        this.decomposeBoth = b.decomposeBoth;
        this.decomposeFactor = b.decomposeFactor;
        this.init = b.init;
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
        b.rankDropoutScale = rankDropoutScale;
        b.useEffectiveConv2d = useEffectiveConv2d;
        b.decomposeBoth = decomposeBoth;
        b.decomposeFactor = decomposeFactor;
        b.init = init;
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

    /** Rank {@code r} of the factors that are products. */
    public int rank() {
        return rank;
    }

    public double alpha() {
        return alpha;
    }

    /** {@code alpha / r}, also when both factors are full. */
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

    /** Whether rank dropout divides the kept rows by the fraction kept. */
    public boolean rankDropoutScale() {
        return rankDropoutScale;
    }

    /** Whether convolutions with a kernel of more than one position build a low-rank {@code w2} in the effective (CP) form. */
    public boolean useEffectiveConv2d() {
        return useEffectiveConv2d;
    }

    /** Whether {@code w1} is also a rank-{@code r} product when {@code r} is below half its larger side. */
    public boolean decomposeBoth() {
        return decomposeBoth;
    }

    /** PEFT's {@code decompose_factor}: −1 splits sizes near their square roots. */
    public int decomposeFactor() {
        return decomposeFactor;
    }

    /** How the factors start. */
    public LoKrInit init() {
        return init;
    }

    @Override
    public Set<TargetKind> supportedTargetKinds() {
        return Set.of(TargetKind.DENSE, TargetKind.CONVOLUTION);
    }

    /**
     * Hugging Face PEFT's LoKr keys: {@code r}, {@code alpha}, {@code rank_dropout},
     * {@code module_dropout}, {@code use_effective_conv2d}, {@code decompose_both},
     * {@code decompose_factor}, {@code init_weights}, and {@code rank_pattern},
     * {@code alpha_pattern} ({@code {}} when unset), {@code layers_to_transform}, {@code layers_pattern}
     * (null), all keys of PEFT 0.13's {@code LoKrConfig}; {@code rank_dropout_scale} only when true
     * (PEFT reads it from 0.14 on, and releases before refuse unknown keys).
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
        m.put("decompose_both", decomposeBoth);
        m.put("decompose_factor", decomposeFactor);
        m.put("init_weights", init.jsonValue());
        patterns.writeJson(m);
        m.put("layers_to_transform", null);
        m.put("layers_pattern", null);
        if (rankDropoutScale) {
            m.put("rank_dropout_scale", true);
        }
        return m;
    }

    /** The default signature plus what shapes the factors: rank, the split and the effective convolution form. */
    @Override
    public String layoutSignature() {
        return PEFT_TYPE + " r=" + rank + " ranks=" + patterns.ranks() + " decomposeBoth=" + decomposeBoth + " factor=" + decomposeFactor
                + " effectiveConv=" + useEffectiveConv2d + " " + targeting.signature();
    }

    /**
     * A dense target becomes a {@link LycorisDenseLayer}, a convolution a
     * {@link LycorisConvolutionLayer}, each with this method's update made for its shape.
     */
    @Override
    public FrozenBaseLayer adapt(Target target) {
        KroneckerProduct update = KroneckerProduct.of(this, target);
        return target.kind() == TargetKind.DENSE ? new LycorisDenseLayer(target, update)
                : new LycorisConvolutionLayer(target, update);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof LoKrConfig)) {
            return false;
        }
        LoKrConfig c = (LoKrConfig) o;
        return rank == c.rank && Double.compare(alpha, c.alpha) == 0 && Double.compare(rankDropout, c.rankDropout) == 0
                && Double.compare(moduleDropout, c.moduleDropout) == 0 && rankDropoutScale == c.rankDropoutScale
                && useEffectiveConv2d == c.useEffectiveConv2d && decomposeBoth == c.decomposeBoth
                && decomposeFactor == c.decomposeFactor && init == c.init && patterns.equals(c.patterns) && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(rank, alpha, rankDropout, moduleDropout, rankDropoutScale, useEffectiveConv2d, decomposeBoth,
                decomposeFactor, init, patterns, targeting);
    }

    @Override
    public String toString() {
        return "LoKrConfig(rank=" + rank + ", alpha=" + alpha + ", rankDropout=" + rankDropout + ", rankDropoutScale="
                + rankDropoutScale + ", moduleDropout=" + moduleDropout + ", useEffectiveConv2d=" + useEffectiveConv2d
                + ", decomposeBoth=" + decomposeBoth + ", decomposeFactor=" + decomposeFactor + ", init=" + init + ", "
                + targeting + (patterns.equals(LayerPatterns.NONE) ? "" : ", " + patterns) + ")";
    }

    /**
     * Builds a {@link LoKrConfig}. Every setter checks its argument at once and says what was wrong;
     * {@link #build()} checks that target modules were given. The shared options (targets,
     * exclusions, modules to save) come from {@link TargetingBuilder}.
     */
    public static final class Builder extends TargetingBuilder<Builder> {
        private int rank = 8;
        private double alpha = 8;
        private double rankDropout;
        private double moduleDropout;
        private boolean rankDropoutScale;
        private boolean useEffectiveConv2d;
        private boolean decomposeBoth;
        private int decomposeFactor = -1;
        private LoKrInit init = LoKrInit.ZERO_W1;

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

        /** Rank {@code r} of the factors that are products (default 8). */
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

        /** Divide the rows rank dropout keeps by the fraction kept (PEFT's {@code rank_dropout_scale}; default false). */
        public Builder rankDropoutScale(boolean rankDropoutScale) {
            this.rankDropoutScale = rankDropoutScale;
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
         * Build a low-rank {@code w2} of a convolution with a kernel of several positions in the
         * effective (CP) form (default false). Ignored for dense layers and 1×1 kernels, as in PEFT.
         */
        public Builder useEffectiveConv2d(boolean useEffectiveConv2d) {
            this.useEffectiveConv2d = useEffectiveConv2d;
            return this;
        }

        /** Make {@code w1} a rank-{@code r} product too when {@code r} is below half its larger side (default false). */
        public Builder decomposeBoth(boolean decomposeBoth) {
            this.decomposeBoth = decomposeBoth;
            return this;
        }

        /**
         * How sizes are split (PEFT's {@code decompose_factor}): −1 (default) into the divisor pair
         * nearest the square root; a positive {@code f} into {@code (f, size / f)} when {@code f}
         * divides the size, else into the pair nearest the square root whose smaller side is at most {@code f}.
         */
        public Builder decomposeFactor(int decomposeFactor) {
            if (decomposeFactor != -1 && decomposeFactor < 1) {
                throw new IllegalArgumentException("decomposeFactor must be -1 (split near the square root) or a "
                        + "positive factor; got " + decomposeFactor);
            }
            this.decomposeFactor = decomposeFactor;
            return this;
        }

        /**
         * A {@code decompose_factor} read from a file, taken as PEFT takes it: 0 and values below −1
         * split nothing ({@code (1, size)}).
         */
        Builder decomposeFactorAsPeftReadsIt(int decomposeFactor) {
            this.decomposeFactor = decomposeFactor;
            return this;
        }

        /** How the factors start (default {@link LoKrInit#ZERO_W1}, PEFT's {@code init_weights=true}). */
        public Builder init(LoKrInit init) {
            this.init = Objects.requireNonNull(init, "init must not be null");
            return this;
        }

        /**
         * @throws IllegalStateException if no target modules were set
         */
        public LoKrConfig build() {
            return new LoKrConfig(this, buildTargeting());
        }
    }
}
