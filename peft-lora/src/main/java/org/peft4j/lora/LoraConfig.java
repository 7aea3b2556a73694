package org.peft4j.lora;

import com.google.re2j.Pattern;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import org.peft4j.core.BiasTargetingBuilder;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
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
    private final LoraInit initLoraWeights;
    private final Map<String, Integer> rankPattern;
    private final Map<String, Double> alphaPattern;

    private LoraConfig(Builder b, Targeting targeting) {
        this.rank = b.rank;
        this.alpha = b.alpha;
        this.dropout = b.dropout;
        this.targeting = targeting;
        this.useRsLora = b.useRsLora;
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
     * when set, and {@code use_dora}, {@code fan_in_fan_out} false); {@link PeftConfig#toAdapterConfig()} adds {@code peft_type} and the targeting keys.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("r", rank);
        m.put("lora_alpha", alpha);
        m.put("lora_dropout", dropout);
        m.put("use_rslora", useRsLora);
        m.put("use_dora", false);
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
        return PEFT_TYPE + " r=" + rank + " ranks=" + rankPattern + " " + targeting.signature();
    }

    @Override
    public FrozenDenseLayer adapt(Target target) {
        return new LoraDenseLayer(target, this);
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
                && targeting.equals(c.targeting) && useRsLora == c.useRsLora && initLoraWeights == c.initLoraWeights
                && rankPattern.equals(c.rankPattern) && alphaPattern.equals(c.alphaPattern);
    }

    @Override
    public int hashCode() {
        return Objects.hash(rank, alpha, dropout, targeting, useRsLora, initLoraWeights, rankPattern, alphaPattern);
    }

    @Override
    public String toString() {
        return "LoraConfig(rank=" + rank + ", alpha=" + alpha + ", dropout=" + dropout + ", " + targeting
                + ", useRsLora=" + useRsLora + ", initLoraWeights=" + initLoraWeights
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

        /** {@code lora_alpha} (default 8): the update is scaled by {@code alpha / rank}. */
        public Builder alpha(double alpha) {
            if (!(alpha > 0) || Double.isInfinite(alpha)) {
                throw new IllegalArgumentException("alpha must be positive and finite; got " + alpha);
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
         * @throws IllegalArgumentException if alpha is not positive and finite, the key is not an RE2
         *     expression, or the key was given already
         */
        public Builder alphaPattern(String key, double alpha) {
            checkKey(key, alphaPattern.keySet(), "alphaPattern");
            if (!(alpha > 0) || Double.isInfinite(alpha)) {
                throw new IllegalArgumentException("alphaPattern \"" + key + "\": alpha must be positive and finite; got "
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
         */
        public LoraConfig build() {
            return new LoraConfig(this, buildTargeting());
        }
    }
}
