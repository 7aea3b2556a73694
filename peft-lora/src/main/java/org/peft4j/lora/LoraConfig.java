package org.peft4j.lora;

import com.google.re2j.Pattern;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.peft4j.core.BiasTargetingBuilder;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.Targeting;

/**
 * Configuration of a LoRA adapter, with Hugging Face PEFT's option names. Built once by
 * {@link #builder()}, whose setters validate at once; immutable afterwards.
 *
 * <pre>{@code
 * LoraConfig cfg = LoraConfig.builder()
 *     .rank(8).alpha(16).dropout(0.05)
 *     .targetModules("dense1", "dense2")      // or .targetModules(TargetModules.ALL_LINEAR), .targetModulesRegex("dense\\d")
 *     .modulesToSave("output")
 *     .build();
 * }</pre>
 *
 * <p>Targets, exclusions, modules to save and the bias mode are the shared {@link Targeting}
 * options (set through {@link BiasTargetingBuilder}), matched as Hugging Face PEFT matches them.
 *
 * <p>Scaling of the update {@code A·B}: {@code alpha / rank}, or {@code alpha / √rank} with
 * {@link Builder#useRsLora(boolean) rsLoRA} (arXiv 2312.03732).
 *
 * <p>Targets may be dense layers ({@link LoraDenseLayer}), embeddings ({@link LoraEmbeddingLayer})
 * and 2D or 1D convolutions ({@link LoraConvolutionLayer}); the kind follows the layer a name
 * matches. {@link Builder#useDora(boolean) DoRA} (arXiv 2402.09353) adds a trainable magnitude per
 * output feature on every kind.
 *
 * <p>Per-layer rank and alpha ({@link Builder#rankPattern}, {@link Builder#alphaPattern}, PEFT's
 * {@code rank_pattern} and {@code alpha_pattern}): a key is a regular expression (RE2) matched
 * against the end of a layer's name at a {@code "."} boundary, as PEFT's {@code get_pattern_key}
 * does ({@code (.*\.)?(key)} must match the whole name); the first matching key in sorted order
 * (the order {@code adapter_config.json} keeps them in) gives the layer's value, else
 * {@link #rank()} and {@link #alpha()} apply.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class LoraConfig implements PeftConfig {

    /** The {@code peft_type} of LoRA adapter files. */
    public static final String PEFT_TYPE = "LORA";

    private final int rank;
    private final double alpha;
    private final double dropout;
    private final Targeting targeting;
    private final boolean useRsLora;
    private final boolean useDora;
    private final LoraInit initLoraWeights;
    private final Map<String, Integer> rankPattern;
    private final Map<String, Double> alphaPattern;

    private LoraConfig(Builder b, Targeting targeting) {
        this.rank = b.rank;
        this.alpha = b.alpha;
        this.dropout = b.dropout;
        this.targeting = targeting;
        this.useRsLora = b.useRsLora;
        this.useDora = b.useDora;
        this.initLoraWeights = b.init;
        this.rankPattern = Collections.unmodifiableMap(new TreeMap<>(b.rankPattern));
        this.alphaPattern = Collections.unmodifiableMap(new TreeMap<>(b.alphaPattern));
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.rank = rank;
        b.alpha = alpha;
        b.dropout = dropout;
        b.targeting(targeting);
        b.useRsLora = useRsLora;
        b.useDora = useDora;
        b.init = initLoraWeights;
        b.rankPattern.putAll(rankPattern);
        b.alphaPattern.putAll(alphaPattern);
        return b;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    public int rank() {
        return rank;
    }

    public double alpha() {
        return alpha;
    }

    public double dropout() {
        return dropout;
    }

    /** {@code alpha / rank}, or {@code alpha / √rank} with rsLoRA. */
    public double scaling() {
        return useRsLora ? alpha / Math.sqrt(rank) : alpha / rank;
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    public boolean useRsLora() {
        return useRsLora;
    }

    /**
     * Whether this is DoRA: each targeted weight is rescaled per output feature by a trainable
     * magnitude over the norm of {@code W + ΔW} (see {@link LoraDenseLayer}).
     */
    public boolean useDora() {
        return useDora;
    }

    public LoraInit initLoraWeights() {
        return initLoraWeights;
    }

    /** Per-layer ranks by pattern key, in the order keys are tried (sorted); empty when none. */
    public Map<String, Integer> rankPattern() {
        return rankPattern;
    }

    /** Per-layer alphas by pattern key, in the order keys are tried (sorted); empty when none. */
    public Map<String, Double> alphaPattern() {
        return alphaPattern;
    }

    /** The rank of layer {@code layerName}: its {@link #rankPattern()} value, else {@link #rank()}. */
    public int rankFor(String layerName) {
        String key = patternKey(rankPattern.keySet(), layerName);
        return key == null ? rank : rankPattern.get(key);
    }

    /** The alpha of layer {@code layerName}: its {@link #alphaPattern()} value, else {@link #alpha()}. */
    public double alphaFor(String layerName) {
        String key = patternKey(alphaPattern.keySet(), layerName);
        return key == null ? alpha : alphaPattern.get(key);
    }

    /** The scaling of layer {@code layerName}: {@code alphaFor / rankFor}, or over {@code √rankFor} with rsLoRA. */
    public double scalingFor(String layerName) {
        int r = rankFor(layerName);
        double a = alphaFor(layerName);
        return useRsLora ? a / Math.sqrt(r) : a / r;
    }

    /**
     * The first key (in the order given) whose expression matches the end of {@code layerName} at a
     * {@code "."} boundary, or null: Hugging Face PEFT's {@code get_pattern_key}.
     */
    static String patternKey(Iterable<String> keys, String layerName) {
        for (String k : keys) {
            if (patternOf(k).matches(layerName)) {
                return k;
            }
        }
        return null;
    }

    private static Pattern patternOf(String key) {
        return Pattern.compile("(?:.*\\.)?(?:" + key + ")");
    }

    /**
     * Hugging Face PEFT's LoRA keys ({@code r}, {@code lora_alpha}, {@code lora_dropout},
     * {@code use_rslora}, {@code init_lora_weights}, {@code rank_pattern} and {@code alpha_pattern}
     * when set, {@code use_dora}, and {@code fan_in_fan_out} false); {@link PeftConfig#toAdapterConfig()} adds
     * {@code peft_type} and the targeting keys.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("r", rank);
        m.put("lora_alpha", alpha);
        m.put("lora_dropout", dropout);
        m.put("use_rslora", useRsLora);
        m.put("use_dora", useDora);
        m.put("fan_in_fan_out", false);
        m.put("init_lora_weights", initLoraWeights == LoraInit.GAUSSIAN ? "gaussian" : Boolean.TRUE);
        if (!rankPattern.isEmpty()) {
            m.put("rank_pattern", new TreeMap<>(rankPattern));
        }
        if (!alphaPattern.isEmpty()) {
            m.put("alpha_pattern", new TreeMap<>(alphaPattern));
        }
        return m;
    }

    @Override
    public String layoutSignature() {
        return PEFT_TYPE + " r=" + rank + " ranks=" + rankPattern + (useDora ? " dora" : "") + " "
                + targeting.signature();
    }

    /** Dense layers, embeddings and convolutions, as Hugging Face PEFT's LoRA (and DoRA). */
    @Override
    public Set<TargetKind> supportedTargetKinds() {
        return Set.of(TargetKind.DENSE, TargetKind.EMBEDDING, TargetKind.CONVOLUTION);
    }

    /**
     * The LoRA layer of the target's kind.
     *
     * @throws IllegalArgumentException for a convolution whose options LoRA cannot honour (see
     *     {@link LoraConvolutionLayer})
     */
    @Override
    public FrozenBaseLayer adapt(Target target) {
        switch (target.kind()) {
            case EMBEDDING:
                return new LoraEmbeddingLayer(target, this);
            case CONVOLUTION:
                return new LoraConvolutionLayer(target, this);
            default:
                return new LoraDenseLayer(target, this);
        }
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof LoraConfig)) {
            return false;
        }
        LoraConfig c = (LoraConfig) o;
        return rank == c.rank && Double.compare(alpha, c.alpha) == 0 && Double.compare(dropout, c.dropout) == 0
                && targeting.equals(c.targeting) && useRsLora == c.useRsLora && useDora == c.useDora
                && initLoraWeights == c.initLoraWeights
                && rankPattern.equals(c.rankPattern) && alphaPattern.equals(c.alphaPattern);
    }

    @Override
    public int hashCode() {
        return Objects.hash(rank, alpha, dropout, targeting, useRsLora, useDora, initLoraWeights, rankPattern,
                alphaPattern);
    }

    @Override
    public String toString() {
        return "LoraConfig(rank=" + rank + ", alpha=" + alpha + ", dropout=" + dropout + ", " + targeting
                + ", useRsLora=" + useRsLora + ", useDora=" + useDora + ", initLoraWeights=" + initLoraWeights
                + (rankPattern.isEmpty() ? "" : ", rankPattern=" + rankPattern)
                + (alphaPattern.isEmpty() ? "" : ", alphaPattern=" + alphaPattern) + ")";
    }

    /**
     * Builds a {@link LoraConfig}. Every setter checks its argument at once and says what was wrong;
     * {@link #build()} checks that target modules were given. The shared options (targets,
     * exclusions, modules to save, bias) come from {@link BiasTargetingBuilder}.
     */
    public static final class Builder extends BiasTargetingBuilder<Builder> {
        private int rank = 8;
        private double alpha = 8;
        private double dropout = 0.0;
        private boolean useRsLora;
        private boolean useDora;
        private LoraInit init = LoraInit.KAIMING_UNIFORM;
        private final Map<String, Integer> rankPattern = new LinkedHashMap<>();
        private final Map<String, Double> alphaPattern = new LinkedHashMap<>();

        private Builder() {
        }

        /** Rank {@code r} of the update (default 8). */
        public Builder rank(int rank) {
            if (rank <= 0) {
                throw new IllegalArgumentException("rank must be positive; got " + rank);
            }
            this.rank = rank;
            return this;
        }

        /**
         * {@code lora_alpha} (default 8): the update is scaled by {@code alpha / rank}. The layers
         * apply that scale in float, so alpha must be a positive float ({@code build()} also checks
         * that {@code alpha / rank} does not underflow).
         */
        public Builder alpha(double alpha) {
            if (!(alpha > 0) || !(alpha <= Float.MAX_VALUE)) {
                throw new IllegalArgumentException("alpha must be positive and at most " + Float.MAX_VALUE + ", the "
                        + "largest float, because the update is scaled by lora_alpha / r in float; got " + alpha);
            }
            this.alpha = alpha;
            return this;
        }

        /** Dropout probability on the LoRA branch's input, in [0, 1) (default 0). */
        public Builder dropout(double dropout) {
            if (!(dropout >= 0 && dropout < 1)) {
                throw new IllegalArgumentException("dropout must be in [0, 1); got " + dropout);
            }
            this.dropout = dropout;
            return this;
        }

        /** Scale by {@code alpha / √rank} instead of {@code alpha / rank} (rsLoRA). */
        public Builder useRsLora(boolean useRsLora) {
            this.useRsLora = useRsLora;
            return this;
        }

        /**
         * DoRA (arXiv 2402.09353; PEFT's {@code use_dora}): {@code W' = m ⊙ (W + ΔW) / ‖W + ΔW‖}
         * per output feature, with a trainable magnitude {@code m} that starts at {@code ‖W‖}, so a
         * new adapter still changes nothing. The norm is recomputed every forward pass and treated
         * as a constant in the backward pass (the paper's §4.3, as PEFT does). Default false.
         */
        public Builder useDora(boolean useDora) {
            this.useDora = useDora;
            return this;
        }

        /**
         * Rank {@code r} of the layers whose name {@code key} matches (see the class comment), instead
         * of {@link #rank(int)}; PEFT's {@code rank_pattern}.
         *
         * @throws IllegalArgumentException if the rank is not positive, the key is not an RE2
         *     expression, or the key was given already
         */
        public Builder rankPattern(String key, int rank) {
            checkKey(key, rankPattern.keySet(), "rankPattern");
            if (rank <= 0) {
                throw new IllegalArgumentException("rankPattern \"" + key + "\": rank must be positive; got " + rank);
            }
            rankPattern.put(key, rank);
            return this;
        }

        /**
         * {@code lora_alpha} of the layers whose name {@code key} matches (see the class comment),
         * instead of {@link #alpha(double)}; PEFT's {@code alpha_pattern}.
         *
         * @throws IllegalArgumentException if alpha is not positive and at most the largest float
         *     (as {@link #alpha(double)}), the key is not an RE2 expression, or the key was given already
         */
        public Builder alphaPattern(String key, double alpha) {
            checkKey(key, alphaPattern.keySet(), "alphaPattern");
            if (!(alpha > 0) || !(alpha <= Float.MAX_VALUE)) {
                throw new IllegalArgumentException("alphaPattern \"" + key + "\": alpha must be positive and at most "
                        + Float.MAX_VALUE + ", the largest float, because the update is scaled by alpha / r in float; got "
                        + alpha);
            }
            alphaPattern.put(key, alpha);
            return this;
        }

        private static void checkKey(String key, java.util.Set<String> given, String what) {
            Objects.requireNonNull(key, what + " key must not be null");
            if (key.isEmpty()) {
                throw new IllegalArgumentException(what + " key must not be empty");
            }
            if (given.contains(key)) {
                throw new IllegalArgumentException(what + ": key \"" + key + "\" is given twice");
            }
            org.peft4j.core.TargetModules.regex(key);
            try {
                patternOf(key);
            } catch (com.google.re2j.PatternSyntaxException e) {
                throw new IllegalArgumentException(what + ": key \"" + key + "\" is not a regular expression RE2 "
                        + "accepts: " + e.getDescription(), e);
            }
        }

        /** Initialisation of {@code A} (default {@link LoraInit#KAIMING_UNIFORM}). */
        public Builder initLoraWeights(LoraInit init) {
            this.init = Objects.requireNonNull(init, "initLoraWeights must not be null");
            return this;
        }

        /**
         * @throws IllegalStateException if no target modules were set
         * @throws IllegalArgumentException if a layer's scale {@code alpha / rank} could underflow in
         *     float (the smallest alpha over the largest rank, patterns included)
         */
        public LoraConfig build() {
            LoraConfig c = new LoraConfig(this, buildTargeting());
            // The smallest alpha over the largest rank bounds every layer's scale from below.
            double smallestAlpha = alpha;
            for (double a : alphaPattern.values()) {
                smallestAlpha = Math.min(smallestAlpha, a);
            }
            int largestRank = rank;
            for (int r : rankPattern.values()) {
                largestRank = Math.max(largestRank, r);
            }
            double scale = useRsLora ? smallestAlpha / Math.sqrt(largestRank) : smallestAlpha / largestRank;
            if (!((float) scale >= Float.MIN_NORMAL)) {
                throw new IllegalArgumentException("the scale " + (useRsLora ? "alpha / sqrt(r)" : "alpha / r") + " = "
                        + scale + " (lora_alpha " + smallestAlpha + ", r " + largestRank + ") is below the smallest normal "
                        + "float " + Float.MIN_NORMAL + ", so the adapter would add nothing; raise alpha or lower r");
            }
            return c;
        }
    }
}
