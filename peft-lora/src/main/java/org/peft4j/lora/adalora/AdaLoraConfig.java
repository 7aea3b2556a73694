package org.peft4j.lora.adalora;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.peft4j.core.BiasTargetingBuilder;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.Messages;
import org.peft4j.core.spi.Vertices;
import org.peft4j.lora.adalora.internal.SvdUpdate;

/**
 * Configuration of an AdaLoRA adapter (arXiv 2303.10512), with Hugging Face PEFT's option names
 * ({@code AdaLoraConfig}, {@code peft_type} {@code "ADALORA"}). Built once by {@link #builder()},
 * whose setters validate at once; immutable afterwards.
 *
 * <pre>{@code
 * AdaLoraConfig cfg = AdaLoraConfig.builder()
 *     .initR(12).targetR(8).alpha(32)
 *     .totalStep(3000).tinit(200).tfinal(1000).deltaT(10)
 *     .targetModulesRegex("block\\d+\\.attn\\.(q|v)")
 *     .build();
 * }</pre>
 *
 * <p>Each targeted dense layer or 2D convolution gets an update in SVD form,
 * {@code ΔW = κ·B·diag(E)·A} ({@link AdaLoraDenseLayer}, {@link AdaLoraConvolutionLayer}) with
 * {@code initR} triplets and {@code κ = alpha / (initR + 1e-5)}. While training, an
 * {@link AdaLoraAllocator} prunes the least important triplets (their singular value set to 0)
 * following a budget that falls from {@code initR} to {@code targetR} per layer on average, and
 * adds the orthogonal regularizer of the factors (weight {@link #orthRegWeight()}). The triplets
 * kept are the adapter's rank pattern ({@link #rankPattern()}, PEFT's {@code rank_pattern}), saved
 * with it; an adapter loaded with a rank pattern holds only the triplets kept, scaled as before.
 *
 * <p>Targets, exclusions, modules to save and the bias mode are the shared {@link Targeting}
 * options ({@link BiasTargetingBuilder}).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class AdaLoraConfig implements PeftConfig {

    /** The {@code peft_type} of AdaLoRA adapter files. */
    public static final String PEFT_TYPE = "ADALORA";
    /** The suffix of a layer's key in {@code rank_pattern}: {@code "<layer>.lora_E"}. */
    static final String PATTERN_SUFFIX = ".lora_E";

    private final int initR;
    private final int targetR;
    private final double alpha;
    private final double dropout;
    private final int tinit;
    private final int tfinal;
    private final int deltaT;
    private final double beta1;
    private final double beta2;
    private final double orthRegWeight;
    private final int totalStep;
    private final Map<String, List<Boolean>> rankPattern;
    private final Targeting targeting;

    private AdaLoraConfig(Builder b, Targeting targeting) {
        this.initR = b.initR;
        this.targetR = b.targetR;
        this.alpha = b.alpha;
        this.dropout = b.dropout;
        this.tinit = b.tinit;
        this.tfinal = b.tfinal;
        this.deltaT = b.deltaT;
        this.beta1 = b.beta1;
        this.beta2 = b.beta2;
        this.orthRegWeight = b.orthRegWeight;
        this.totalStep = b.totalStep;
        Map<String, List<Boolean>> p = new TreeMap<>();
        b.rankPattern.forEach((k, v) -> p.put(k, List.copyOf(v)));
        this.rankPattern = Collections.unmodifiableMap(p);
        this.targeting = targeting;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.initR = initR;
        b.targetR = targetR;
        b.alpha = alpha;
        b.dropout = dropout;
        b.tinit = tinit;
        b.tfinal = tfinal;
        b.deltaT = deltaT;
        b.beta1 = beta1;
        b.beta2 = beta2;
        b.orthRegWeight = orthRegWeight;
        b.totalStep = totalStep;
        b.rankPattern.putAll(rankPattern);
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

    /** {@code init_r}: triplets every layer starts with. */
    public int initR() {
        return initR;
    }

    /** {@code target_r}: the average number of triplets per layer the budget ends at. */
    public int targetR() {
        return targetR;
    }

    /** {@code lora_alpha}: the update is scaled by {@code alpha / (initR + 1e-5)}. */
    public double alpha() {
        return alpha;
    }

    /** {@code alpha / (initR + 1e-5)}, PEFT's {@code scaling / (ranknum + 1e-5)}. */
    public double scaling() {
        return alpha / (initR + 1e-5);
    }

    /** {@code lora_dropout}: dropout on the branch's input. */
    public double dropout() {
        return dropout;
    }

    /** {@code tinit}: optimizer steps before pruning starts. */
    public int tinit() {
        return tinit;
    }

    /** {@code tfinal}: optimizer steps at the end with the ranks fixed. */
    public int tfinal() {
        return tfinal;
    }

    /** {@code deltaT}: steps between two allocations while the budget falls. */
    public int deltaT() {
        return deltaT;
    }

    /** {@code beta1}: smoothing of the importance. */
    public double beta1() {
        return beta1;
    }

    /** {@code beta2}: smoothing of the importance's uncertainty. */
    public double beta2() {
        return beta2;
    }

    /** {@code orth_reg_weight}: weight of the orthogonal regularizer of {@code A} and {@code B}. */
    public double orthRegWeight() {
        return orthRegWeight;
    }

    /** {@code total_step}: the optimizer steps the budget schedule spans. */
    public int totalStep() {
        return totalStep;
    }

    /**
     * The triplets kept per layer ({@code initR} flags each, by the base model's layer name), as
     * saved after an allocation; empty when none was made. Layers listed hold only their kept triplets.
     */
    public Map<String, List<Boolean>> rankPattern() {
        return rankPattern;
    }

    /** Dense layers and 2D convolutions (1D convolutions are refused when the layer is built), as PEFT's AdaLoRA. */
    @Override
    public Set<TargetKind> supportedTargetKinds() {
        return Set.of(TargetKind.DENSE, TargetKind.CONVOLUTION);
    }

    /**
     * The AdaLoRA layer of the target's kind.
     *
     * @throws IllegalArgumentException for a 1D convolution (see {@link AdaLoraConvolutionLayer})
     */
    @Override
    public FrozenBaseLayer adapt(Target target) {
        return target.kind() == TargetKind.CONVOLUTION ? new AdaLoraConvolutionLayer(target, this)
                : new AdaLoraDenseLayer(target, this);
    }

    /** The update of layer {@code layerName} with {@code out} outputs and {@code columns} input columns. */
    SvdUpdate updateFor(String layerName, long out, long columns) {
        List<Boolean> p = rankPattern.get(layerName);
        return new SvdUpdate(initR, alpha, dropout, orthRegWeight, p == null ? null : toArray(p), out, columns);
    }

    /**
     * Refuses a rank pattern naming a layer this config does not adapt in {@code base}: PEFT resizes
     * the layers a pattern names, so such a file is not what it claims. Makes no edit.
     */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        Set<String> outputs = new HashSet<>(conf.getNetworkOutputs());
        for (String name : rankPattern.keySet()) {
            GraphVertex v = conf.getVertices().get(name);
            Layer l = v == null ? null : Vertices.layerOf(v);
            TargetKind kind = l == null ? null : TargetKind.of(l);
            boolean targeted = l != null && targeting.targetModules() != null
                    && targeting.targetModules().matches(name, kind == TargetKind.DENSE, outputs.contains(name))
                    && targeting.typeAllowed(l) && !targeting.isExcluded(name) && !targeting.isModuleToSave(name);
            if (!targeted) {
                throw new IllegalArgumentException("rank_pattern has an entry for layer \"" + name + "\" (key \"" + name
                        + PATTERN_SUFFIX + "\"), which " + (l == null ? "is not a layer of the base model"
                        : "this adapter's targetModules do not adapt") + "; layers are: " + Vertices.describeLayers(conf));
            }
        }
        return List.of();
    }

    /**
     * Hugging Face PEFT's AdaLoRA keys: those of LoRA it writes ({@code r} 8, unused;
     * {@code lora_alpha}, {@code lora_dropout}, {@code use_rslora}, {@code use_dora},
     * {@code fan_in_fan_out} false, {@code init_lora_weights} true) and its own ({@code init_r},
     * {@code target_r}, {@code tinit}, {@code tfinal}, {@code deltaT}, {@code beta1}, {@code beta2},
     * {@code orth_reg_weight}, {@code total_step}, {@code rank_pattern}: null, or
     * {@code "<layer>.lora_E"} to flags).
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("r", 8);
        m.put("lora_alpha", alpha);
        m.put("lora_dropout", dropout);
        m.put("use_rslora", false);
        m.put("use_dora", false);
        m.put("fan_in_fan_out", false);
        m.put("init_lora_weights", true);
        m.put("init_r", initR);
        m.put("target_r", targetR);
        m.put("tinit", tinit);
        m.put("tfinal", tfinal);
        m.put("deltaT", deltaT);
        m.put("beta1", beta1);
        m.put("beta2", beta2);
        m.put("orth_reg_weight", orthRegWeight);
        m.put("total_step", totalStep);
        m.put("rank_pattern", patternJson(rankPattern));
        return m;
    }

    /** {@link #methodConfig()} with the rank pattern the layers of {@code wrapped} hold now (the allocator's, while training). */
    @Override
    public Map<String, Object> toAdapterConfig(ComputationGraph wrapped) {
        Map<String, Object> m = toAdapterConfig();
        Map<String, List<Boolean>> pattern = new TreeMap<>();
        for (org.deeplearning4j.nn.api.Layer l : wrapped.getLayers()) {
            if (l.conf().getLayer() instanceof AdaLoraLayer a && !a.rankPattern().isEmpty()) {
                pattern.put(a.baseLayerName(), a.rankPattern());
            }
        }
        m.put("rank_pattern", patternJson(pattern));
        return m;
    }

    private static Map<String, Object> patternJson(Map<String, List<Boolean>> pattern) {
        if (pattern.isEmpty()) {
            return null;
        }
        Map<String, Object> json = new TreeMap<>();
        pattern.forEach((k, v) -> json.put(k + PATTERN_SUFFIX, new ArrayList<>(v)));
        return json;
    }

    /** Targets, {@code init_r} and the triplets each patterned layer holds fix the layout. */
    @Override
    public String layoutSignature() {
        Map<String, Integer> held = new TreeMap<>();
        rankPattern.forEach((k, v) -> held.put(k, SvdUpdate.kept(toArray(v))));
        return PEFT_TYPE + " init_r=" + initR + " held=" + held + " " + targeting.signature();
    }

    static boolean[] toArray(List<Boolean> l) {
        boolean[] b = new boolean[l.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = l.get(i);
        }
        return b;
    }

    static List<Boolean> toList(boolean[] b) {
        if (b == null) {
            return List.of();
        }
        List<Boolean> l = new ArrayList<>(b.length);
        for (boolean v : b) {
            l.add(v);
        }
        return Collections.unmodifiableList(l);
    }

    /** {@code base} plus {@code orthogonal} when there is one (a new list; {@code base} may be null). */
    static List<Regularization> withOrthogonal(List<Regularization> base, Regularization orthogonal) {
        if (orthogonal == null) {
            return base;
        }
        List<Regularization> l = new ArrayList<>(base == null ? List.of() : base);
        l.add(orthogonal);
        return l;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof AdaLoraConfig)) {
            return false;
        }
        AdaLoraConfig c = (AdaLoraConfig) o;
        return initR == c.initR && targetR == c.targetR && Double.compare(alpha, c.alpha) == 0
                && Double.compare(dropout, c.dropout) == 0 && tinit == c.tinit && tfinal == c.tfinal && deltaT == c.deltaT
                && Double.compare(beta1, c.beta1) == 0 && Double.compare(beta2, c.beta2) == 0
                && Double.compare(orthRegWeight, c.orthRegWeight) == 0 && totalStep == c.totalStep
                && rankPattern.equals(c.rankPattern) && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(initR, targetR, alpha, dropout, tinit, tfinal, deltaT, beta1, beta2, orthRegWeight, totalStep,
                rankPattern, targeting);
    }

    @Override
    public String toString() {
        return "AdaLoraConfig(initR=" + initR + ", targetR=" + targetR + ", alpha=" + alpha + ", dropout=" + dropout
                + ", tinit=" + tinit + ", tfinal=" + tfinal + ", deltaT=" + deltaT + ", beta1=" + beta1 + ", beta2=" + beta2
                + ", orthRegWeight=" + orthRegWeight + ", totalStep=" + totalStep + ", " + targeting
                + (rankPattern.isEmpty() ? "" : ", rankPattern=" + Messages.shorten(rankPattern)) + ")";
    }

    /**
     * Builds an {@link AdaLoraConfig}. Every setter checks its argument at once and says what was
     * wrong; {@link #build()} checks what involves several options ({@code targetR ≤ initR},
     * {@code tinit < totalStep − tfinal}, a set {@code totalStep}, the rank pattern's lengths) and
     * that target modules were given. PEFT's defaults: {@code initR} 12, {@code targetR} 8,
     * {@code alpha} 8, {@code tinit} and {@code tfinal} 0, {@code deltaT} 1, {@code beta1} and
     * {@code beta2} 0.85, {@code orthRegWeight} 0.5; {@code totalStep} has none.
     */
    public static final class Builder extends BiasTargetingBuilder<Builder> {
        private int initR = 12;
        private int targetR = 8;
        private double alpha = 8;
        private double dropout;
        private int tinit;
        private int tfinal;
        private int deltaT = 1;
        private double beta1 = 0.85;
        private double beta2 = 0.85;
        private double orthRegWeight = 0.5;
        private int totalStep;
        private final Map<String, List<Boolean>> rankPattern = new LinkedHashMap<>();

        private Builder() {
        }

        /** {@code init_r}: triplets every layer starts with (default 12). */
        public Builder initR(int initR) {
            if (initR <= 0) {
                throw new IllegalArgumentException("initR (init_r) must be positive; got " + initR);
            }
            this.initR = initR;
            return this;
        }

        /** {@code target_r}: triplets per layer on average once the budget has fallen (default 8; at most {@code initR}). */
        public Builder targetR(int targetR) {
            if (targetR <= 0) {
                throw new IllegalArgumentException("targetR (target_r) must be positive; got " + targetR);
            }
            this.targetR = targetR;
            return this;
        }

        /**
         * {@code lora_alpha} (default 8): the update is scaled by {@code alpha / (initR + 1e-5)}, in
         * float, so alpha must be a positive float.
         */
        public Builder alpha(double alpha) {
            if (!(alpha > 0) || !(alpha <= Float.MAX_VALUE)) {
                throw new IllegalArgumentException("alpha (lora_alpha) must be positive and at most " + Float.MAX_VALUE
                        + ", the largest float; got " + alpha);
            }
            this.alpha = alpha;
            return this;
        }

        /** {@code lora_dropout}: dropout probability on the branch's input, in [0, 1) (default 0). */
        public Builder dropout(double dropout) {
            if (!(dropout >= 0 && dropout < 1)) {
                throw new IllegalArgumentException("dropout (lora_dropout) must be in [0, 1); got " + dropout);
            }
            this.dropout = dropout;
            return this;
        }

        /** {@code tinit}: optimizer steps of warm-up before the budget starts to fall (default 0). */
        public Builder tinit(int tinit) {
            if (tinit < 0) {
                throw new IllegalArgumentException("tinit must not be negative; got " + tinit);
            }
            this.tinit = tinit;
            return this;
        }

        /** {@code tfinal}: optimizer steps at the end that train with the final ranks fixed (default 0). */
        public Builder tfinal(int tfinal) {
            if (tfinal < 0) {
                throw new IllegalArgumentException("tfinal must not be negative; got " + tfinal);
            }
            this.tfinal = tfinal;
            return this;
        }

        /** {@code deltaT}: steps between two allocations while the budget falls (default 1). */
        public Builder deltaT(int deltaT) {
            if (deltaT <= 0) {
                throw new IllegalArgumentException("deltaT must be positive (allocations happen every deltaT steps); got "
                        + deltaT);
            }
            this.deltaT = deltaT;
            return this;
        }

        /** {@code beta1}: smoothing of the importance, in (0, 1) (default 0.85). */
        public Builder beta1(double beta1) {
            this.beta1 = beta("beta1", beta1);
            return this;
        }

        /** {@code beta2}: smoothing of the importance's uncertainty, in (0, 1) (default 0.85). */
        public Builder beta2(double beta2) {
            this.beta2 = beta("beta2", beta2);
            return this;
        }

        private static double beta(String name, double v) {
            if (!(v > 0 && v < 1)) {
                throw new IllegalArgumentException(name + " must be in (0, 1); got " + v);
            }
            return v;
        }

        /** {@code orth_reg_weight}: weight of the orthogonal regularizer, at least 0 (default 0.5). */
        public Builder orthRegWeight(double orthRegWeight) {
            if (!(orthRegWeight >= 0) || Double.isInfinite(orthRegWeight)) {
                throw new IllegalArgumentException("orthRegWeight (orth_reg_weight) must be finite and not negative; got "
                        + orthRegWeight);
            }
            this.orthRegWeight = orthRegWeight;
            return this;
        }

        /** {@code total_step}: the optimizer steps of the training run (required, as in PEFT). */
        public Builder totalStep(int totalStep) {
            if (totalStep <= 0) {
                throw new IllegalArgumentException("totalStep (total_step) must be positive; got " + totalStep);
            }
            this.totalStep = totalStep;
            return this;
        }

        /**
         * The triplets layer {@code layerName} (the base model's name) keeps, {@code initR} flags: the
         * rank pattern an allocation produced (PEFT's {@code rank_pattern} entry
         * {@code "<layerName>.lora_E"}). The layer then holds only the kept triplets, scaled by
         * {@code alpha / (initR + 1e-5)} as before. Normally read from a saved adapter.
         *
         * @throws IllegalArgumentException if the name is empty or given already, or a flag is null
         */
        public Builder rankPattern(String layerName, List<Boolean> kept) {
            Objects.requireNonNull(layerName, "rankPattern layer name must not be null");
            Objects.requireNonNull(kept, "rankPattern flags must not be null");
            if (layerName.isEmpty()) {
                throw new IllegalArgumentException("rankPattern layer name must not be empty");
            }
            if (rankPattern.containsKey(layerName)) {
                throw new IllegalArgumentException("rankPattern: layer \"" + layerName + "\" is given twice");
            }
            if (kept.stream().anyMatch(java.util.Objects::isNull)) {
                throw new IllegalArgumentException("rankPattern of layer \"" + layerName + "\": flags must be true or "
                        + "false; got " + kept);
            }
            rankPattern.put(layerName, List.copyOf(kept));
            return this;
        }

        /**
         * @throws IllegalStateException if no target modules or no {@code totalStep} were set
         * @throws IllegalArgumentException if {@code targetR > initR}, {@code tinit ≥ totalStep − tfinal}
         *     (no step would prune), a rank pattern does not have {@code initR} flags, or the scale
         *     {@code alpha / (initR + 1e-5)} underflows in float
         */
        public AdaLoraConfig build() {
            if (totalStep == 0) {
                throw new IllegalStateException("totalStep (total_step) must be set: the budget schedule spans the "
                        + "training run's optimizer steps (PEFT requires it too)");
            }
            if (targetR > initR) {
                throw new IllegalArgumentException("targetR (target_r) " + targetR + " is above initR (init_r) " + initR
                        + ": the budget only falls; lower targetR or raise initR");
            }
            if (tinit >= totalStep - tfinal) {
                throw new IllegalArgumentException("tinit " + tinit + ", tfinal " + tfinal + " and totalStep " + totalStep
                        + " leave no step for pruning (tinit must be below totalStep - tfinal = " + (totalStep - tfinal)
                        + "); lower tinit or tfinal, or raise totalStep");
            }
            for (Map.Entry<String, List<Boolean>> e : rankPattern.entrySet()) {
                if (e.getValue().size() != initR) {
                    throw new IllegalArgumentException("rankPattern of layer \"" + e.getKey() + "\" has " + e.getValue().size()
                            + " flags; it needs one per triplet, initR = " + initR);
                }
            }
            double scale = alpha / (initR + 1e-5);
            if (!((float) scale >= Float.MIN_NORMAL)) {
                throw new IllegalArgumentException("the scale alpha / (initR + 1e-5) = " + scale + " is below the smallest "
                        + "normal float " + Float.MIN_NORMAL + ", so the adapter would add nothing; raise alpha");
            }
            return new AdaLoraConfig(this, buildTargeting());
        }
    }
}
