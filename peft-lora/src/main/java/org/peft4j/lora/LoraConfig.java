package org.peft4j.lora;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.peft4j.core.BiasMode;
import org.peft4j.core.DenseTarget;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.TargetModules;
import org.peft4j.core.internal.ConfigChecks;

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
 * <p>Scaling of the update {@code A·B}: {@code alpha / rank}, or {@code alpha / √rank} with
 * {@link Builder#useRsLora(boolean) rsLoRA} (arXiv 2312.03732).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class LoraConfig implements PeftConfig {

    private final int rank;
    private final double alpha;
    private final double dropout;
    private final TargetModules targetModules;
    private final Set<Class<? extends Layer>> targetTypes;
    private final List<String> modulesToSave;
    private final BiasMode bias;
    private final boolean useRsLora;
    private final LoraInit initLoraWeights;

    private LoraConfig(Builder b) {
        this.rank = b.rank;
        this.alpha = b.alpha;
        this.dropout = b.dropout;
        this.targetModules = b.targetModules;
        this.targetTypes = Set.copyOf(b.targetTypes);
        this.modulesToSave = List.copyOf(b.modulesToSave);
        this.bias = b.bias;
        this.useRsLora = b.useRsLora;
        this.initLoraWeights = b.init;
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
        b.targetModules = targetModules;
        b.targetTypes.addAll(targetTypes);
        b.modulesToSave.addAll(modulesToSave);
        b.bias = bias;
        b.useRsLora = useRsLora;
        b.init = initLoraWeights;
        return b;
    }

    @Override
    public String peftType() {
        return "LORA";
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
    public TargetModules targetModules() {
        return targetModules;
    }

    @Override
    public Set<Class<? extends Layer>> targetTypes() {
        return targetTypes;
    }

    @Override
    public List<String> modulesToSave() {
        return modulesToSave;
    }

    @Override
    public BiasMode bias() {
        return bias;
    }

    public boolean useRsLora() {
        return useRsLora;
    }

    public LoraInit initLoraWeights() {
        return initLoraWeights;
    }

    /**
     * Hugging Face PEFT's {@code adapter_config.json} keys. {@code target_modules} is a list of
     * names, a regex string, or {@code "all-linear"}, as PEFT writes them; the type filter, which
     * PEFT lacks, goes under the {@code peft4j} extension key by the caller.
     */
    @Override
    public Map<String, Object> toAdapterConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("peft_type", "LORA");
        m.put("r", rank);
        m.put("lora_alpha", alpha);
        m.put("lora_dropout", dropout);
        switch (targetModules.kind()) {
            case NAMES:
                m.put("target_modules", new ArrayList<>(targetModules.names()));
                break;
            case REGEX:
                m.put("target_modules", targetModules.regex());
                break;
            default:
                m.put("target_modules", "all-linear");
        }
        m.put("bias", bias.jsonName());
        m.put("modules_to_save", modulesToSave.isEmpty() ? null : new ArrayList<>(modulesToSave));
        m.put("use_rslora", useRsLora);
        m.put("use_dora", false);
        m.put("fan_in_fan_out", false);
        m.put("init_lora_weights", initLoraWeights == LoraInit.GAUSSIAN ? "gaussian" : Boolean.TRUE);
        m.put("inference_mode", true);
        m.put("task_type", null);
        m.put("base_model_name_or_path", null);
        return m;
    }

    @Override
    public String layoutSignature() {
        return "LORA r=" + rank + " targets=" + targetModules + " types=" + targetTypes.stream().map(Class::getName)
                .sorted().toList() + " save=" + modulesToSave + " bias=" + bias.jsonName();
    }

    @Override
    public FrozenDenseLayer adaptDense(DenseTarget target) {
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
                && targetModules.equals(c.targetModules) && targetTypes.equals(c.targetTypes)
                && modulesToSave.equals(c.modulesToSave) && bias == c.bias && useRsLora == c.useRsLora
                && initLoraWeights == c.initLoraWeights;
    }

    @Override
    public int hashCode() {
        return Objects.hash(rank, alpha, dropout, targetModules, targetTypes, modulesToSave, bias, useRsLora,
                initLoraWeights);
    }

    @Override
    public String toString() {
        return "LoraConfig(rank=" + rank + ", alpha=" + alpha + ", dropout=" + dropout + ", targetModules="
                + targetModules + ", targetTypes=" + targetTypes.stream().map(Class::getSimpleName).sorted().toList()
                + ", modulesToSave=" + modulesToSave + ", bias=" + bias.jsonName() + ", useRsLora=" + useRsLora
                + ", initLoraWeights=" + initLoraWeights + ")";
    }

    /**
     * Builds a {@link LoraConfig}. Every setter checks its argument at once and says what was wrong;
     * {@link #build()} checks that target modules were given.
     */
    public static final class Builder {
        private int rank = 8;
        private double alpha = 8;
        private double dropout = 0.0;
        private TargetModules targetModules;
        private final Set<Class<? extends Layer>> targetTypes = new LinkedHashSet<>();
        private final Set<String> modulesToSave = new LinkedHashSet<>();
        private BiasMode bias = BiasMode.NONE;
        private boolean useRsLora;
        private LoraInit init = LoraInit.KAIMING_UNIFORM;

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

        /** Target layers by exact name. */
        public Builder targetModules(String... names) {
            return targetModules(TargetModules.names(names));
        }

        /** Target layers by a selection ({@link TargetModules#ALL_LINEAR}, names or regex). */
        public Builder targetModules(TargetModules targets) {
            this.targetModules = ConfigChecks.setTargetModulesOnce(this.targetModules, targets);
            return this;
        }

        /** Target layers whose whole name matches {@code regex}. */
        public Builder targetModulesRegex(String regex) {
            return targetModules(TargetModules.regex(regex));
        }

        /** Keep only targets whose layer configuration is an instance of one of these types. */
        @SafeVarargs
        public final Builder targetTypes(Class<? extends Layer>... types) {
            ConfigChecks.addTargetTypes(targetTypes, types);
            return this;
        }

        /** Layers trained in full alongside the adapter (e.g. a new head). */
        public Builder modulesToSave(String... names) {
            ConfigChecks.addModulesToSave(modulesToSave, names);
            return this;
        }

        /** Which biases train (default {@link BiasMode#NONE}). */
        public Builder bias(BiasMode bias) {
            this.bias = Objects.requireNonNull(bias, "bias must not be null");
            return this;
        }

        /** Scale by {@code alpha / √rank} instead of {@code alpha / rank} (rsLoRA). */
        public Builder useRsLora(boolean useRsLora) {
            this.useRsLora = useRsLora;
            return this;
        }

        /** Initialisation of {@code A} (default {@link LoraInit#KAIMING_UNIFORM}). */
        public Builder initLoraWeights(LoraInit init) {
            this.init = Objects.requireNonNull(init, "initLoraWeights must not be null");
            return this;
        }

        /**
         * @throws IllegalStateException if no target modules were set
         * @throws IllegalArgumentException if the scale {@code alpha / rank} underflows in float
         */
        public LoraConfig build() {
            ConfigChecks.requireTargetModules(targetModules);
            LoraConfig c = new LoraConfig(this);
            if (!((float) c.scaling() >= Float.MIN_NORMAL)) {
                throw new IllegalArgumentException("the scale " + (useRsLora ? "alpha / sqrt(r)" : "alpha / r") + " = "
                        + c.scaling() + " (lora_alpha " + alpha + ", r " + rank + ") is below the smallest normal float "
                        + Float.MIN_NORMAL + ", so the adapter would add nothing; raise alpha or lower r");
            }
            return c;
        }
    }
}
