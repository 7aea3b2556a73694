package org.peft4j.core.ia3;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.BiasMode;
import org.peft4j.core.DenseTarget;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.TargetModules;
import org.peft4j.core.internal.ConfigChecks;
import org.peft4j.core.internal.GraphRewriter;
import org.peft4j.core.internal.Messages;
import org.peft4j.core.internal.Vertices;

/**
 * Configuration of IA3 ("Infused Adapter by Inhibiting and Amplifying Inner Activations",
 * arXiv 2205.05638), with Hugging Face PEFT's option names: every target learns one scale vector
 * {@code l}, initialised to ones.
 *
 * <ul>
 *   <li>a target that is not in {@link #feedforwardModules()} scales its output:
 *       {@code z = (x·W + b) ⊙ l}, {@code l [nOut]} (PEFT: keys and values of attention);</li>
 *   <li>a target in {@link #feedforwardModules()} scales its input:
 *       {@code z = (x ⊙ l)·W + b}, {@code l [nIn]} (PEFT: the second feed-forward projection).</li>
 * </ul>
 *
 * <pre>{@code
 * Ia3Config cfg = Ia3Config.builder()
 *     .targetModulesRegex("block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down")
 *     .feedforwardModulesRegex("block\\d+\\.mlp\\.down")
 *     .build();
 * }</pre>
 *
 * IA3 merges: {@code W' = W·diag(l)}, {@code b' = b ⊙ l} (output scaling) or
 * {@code W' = diag(l)·W} (input scaling), so {@link org.peft4j.core.PeftModel#mergeAndUnload()}
 * gives stock layers. The feedforward modules must be a subset of the targets: checked in
 * {@link Builder#build()} when both are names, else when wrapping.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class Ia3Config implements PeftConfig {

    private final TargetModules targetModules;
    private final TargetModules feedforwardModules;
    private final Set<Class<? extends Layer>> targetTypes;
    private final List<String> modulesToSave;

    private Ia3Config(Builder b) {
        this.targetModules = b.targetModules;
        this.feedforwardModules = b.feedforwardModules;
        this.targetTypes = Set.copyOf(b.targetTypes);
        this.modulesToSave = List.copyOf(b.modulesToSave);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.targetModules = targetModules;
        b.feedforwardModules = feedforwardModules;
        b.targetTypes.addAll(targetTypes);
        b.modulesToSave.addAll(modulesToSave);
        return b;
    }

    @Override
    public String peftType() {
        return "IA3";
    }

    @Override
    public TargetModules targetModules() {
        return targetModules;
    }

    /**
     * The default signature plus the feed-forward modules: whether a target scales its input or its
     * output is fixed in the wrapped layer, so two adapters that differ there cannot share a graph.
     */
    @Override
    public String layoutSignature() {
        return PeftConfig.super.layoutSignature() + " feedforward=" + feedforwardModules;
    }

    /** Targets whose input (not output) is scaled, or null when there are none. */
    public TargetModules feedforwardModules() {
        return feedforwardModules;
    }

    @Override
    public Set<Class<? extends Layer>> targetTypes() {
        return targetTypes;
    }

    @Override
    public List<String> modulesToSave() {
        return modulesToSave;
    }

    /**
     * Hugging Face PEFT's {@code adapter_config.json} keys for IA3 ({@code target_modules} and
     * {@code feedforward_modules} as name lists or regex strings, as PEFT writes them).
     */
    @Override
    public java.util.Map<String, Object> toAdapterConfig() {
        java.util.Map<String, Object> m = new java.util.TreeMap<>();
        m.put("peft_type", "IA3");
        m.put("target_modules", targetsJson(targetModules));
        m.put("feedforward_modules", feedforwardModules == null ? null : targetsJson(feedforwardModules));
        m.put("modules_to_save", modulesToSave.isEmpty() ? null : new java.util.ArrayList<>(modulesToSave));
        m.put("fan_in_fan_out", false);
        m.put("init_ia3_weights", true);
        m.put("inference_mode", true);
        m.put("task_type", null);
        m.put("base_model_name_or_path", null);
        return m;
    }

    private static Object targetsJson(TargetModules t) {
        switch (t.kind()) {
            case NAMES:
                return new java.util.ArrayList<>(t.names());
            case REGEX:
                return t.regex();
            default:
                return "all-linear";
        }
    }

    /** IA3 trains no base biases. */
    @Override
    public BiasMode bias() {
        return BiasMode.NONE;
    }

    /** Whether the named target scales its input. */
    public boolean isFeedforward(String layerName) {
        return feedforwardModules != null && feedforwardModules.matches(layerName, false, false);
    }

    @Override
    public FrozenDenseLayer adaptDense(DenseTarget target) {
        return new Ia3DenseLayer(target, isFeedforward(target.layerName()));
    }

    /** IA3 edits no structure; checks that every feedforward module of {@code base} is a target. */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        if (feedforwardModules == null) {
            return List.of();
        }
        Set<String> outputs = new java.util.HashSet<>(base.getConfiguration().getNetworkOutputs());
        Set<String> stray = new TreeSet<>();
        boolean any = false;
        for (Map.Entry<String, GraphVertex> e : base.getConfiguration().getVertices().entrySet()) {
            if (!isFeedforward(e.getKey())) {
                continue;
            }
            any = true;
            Layer l = Vertices.layerOf(e.getValue());
            boolean dense = GraphRewriter.isDenseType(l);
            boolean typed = targetTypes.isEmpty() || targetTypes.stream().anyMatch(c -> c.isInstance(l));
            if (!targetModules.matches(e.getKey(), dense, outputs.contains(e.getKey())) || !typed) {
                stray.add(e.getKey());
            }
        }
        if (feedforwardModules.kind() == TargetModules.Kind.NAMES) {
            for (String n : feedforwardModules.names()) {
                if (!base.getConfiguration().getVertices().containsKey(n)) {
                    throw new IllegalArgumentException("no layer matched feedforward module \"" + n
                            + "\" of feedforwardModules " + feedforwardModules + "; layers are: "
                            + GraphRewriter.describeLayers(base.getConfiguration()));
                }
            }
        }
        if (!any) {
            throw new IllegalArgumentException("no layer matched feedforwardModules " + feedforwardModules
                    + "; layers are: " + GraphRewriter.describeLayers(base.getConfiguration()));
        }
        if (!stray.isEmpty()) {
            throw new IllegalArgumentException("feedforwardModules must be a subset of targetModules " + targetModules
                    + "; these feedforward modules are not targets: " + Messages.list(stray));
        }
        return List.of();
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof Ia3Config)) {
            return false;
        }
        Ia3Config c = (Ia3Config) o;
        return targetModules.equals(c.targetModules) && Objects.equals(feedforwardModules, c.feedforwardModules)
                && targetTypes.equals(c.targetTypes) && modulesToSave.equals(c.modulesToSave);
    }

    @Override
    public int hashCode() {
        return Objects.hash(targetModules, feedforwardModules, targetTypes, modulesToSave);
    }

    @Override
    public String toString() {
        return "Ia3Config(targetModules=" + targetModules + ", feedforwardModules="
                + (feedforwardModules == null ? "[]" : feedforwardModules.toString()) + ", targetTypes="
                + targetTypes.stream().map(Class::getSimpleName).sorted().toList() + ", modulesToSave="
                + modulesToSave + ")";
    }

    /**
     * Builds an {@link Ia3Config}. Every setter checks its argument at once and says what was wrong;
     * {@link #build()} checks that targets were given and, when targets and feedforward modules are
     * both names, that the latter are a subset.
     */
    public static final class Builder {
        private TargetModules targetModules;
        private TargetModules feedforwardModules;
        private final Set<Class<? extends Layer>> targetTypes = new LinkedHashSet<>();
        private final Set<String> modulesToSave = new LinkedHashSet<>();

        private Builder() {
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

        /** Targets that scale their input, by exact name (PEFT's {@code feedforward_modules}). */
        public Builder feedforwardModules(String... names) {
            return feedforwardModules(TargetModules.names(names));
        }

        /** Targets that scale their input, by names or a regex ({@link TargetModules#ALL_LINEAR} is refused). */
        public Builder feedforwardModules(TargetModules modules) {
            Objects.requireNonNull(modules, "feedforwardModules must not be null");
            if (modules.kind() == TargetModules.Kind.ALL_LINEAR) {
                throw new IllegalArgumentException("feedforwardModules must be names or a regex, not all-linear");
            }
            if (this.feedforwardModules != null) {
                throw new IllegalStateException("feedforwardModules was already set to " + this.feedforwardModules);
            }
            this.feedforwardModules = modules;
            return this;
        }

        /** Targets that scale their input: those whose whole name matches {@code regex}. */
        public Builder feedforwardModulesRegex(String regex) {
            return feedforwardModules(TargetModules.regex(regex));
        }

        /** Keep only targets whose layer configuration is an instance of one of these types. */
        @SafeVarargs
        public final Builder targetTypes(Class<? extends Layer>... types) {
            ConfigChecks.addTargetTypes(targetTypes, types);
            return this;
        }

        /** Layers trained in full alongside the scales (e.g. a new head). */
        public Builder modulesToSave(String... names) {
            ConfigChecks.addModulesToSave(modulesToSave, names);
            return this;
        }

        /**
         * @throws IllegalStateException if no target modules were set
         * @throws IllegalArgumentException if feedforward modules given by name are not targets
         */
        public Ia3Config build() {
            ConfigChecks.requireTargetModules(targetModules);
            if (feedforwardModules != null && feedforwardModules.kind() == TargetModules.Kind.NAMES
                    && targetModules.kind() != TargetModules.Kind.ALL_LINEAR) {
                Set<String> stray = new TreeSet<>();
                for (String n : feedforwardModules.names()) {
                    if (!targetModules.matches(n, false, false)) {
                        stray.add(n);
                    }
                }
                if (!stray.isEmpty()) {
                    throw new IllegalArgumentException("feedforwardModules must be a subset of targetModules "
                            + targetModules + "; not targets: " + Messages.list(stray));
                }
            }
            return new Ia3Config(this);
        }
    }
}
