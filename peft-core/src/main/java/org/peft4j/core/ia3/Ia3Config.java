package org.peft4j.core.ia3;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.TargetModules;
import org.peft4j.core.Targeting;
import org.peft4j.core.TargetingBuilder;
import org.peft4j.core.spi.Messages;
import org.peft4j.core.spi.Vertices;

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
 * {@link Builder#build()} when both are names, else when wrapping. Targets, exclusions and modules
 * to save are the shared {@link Targeting} options (IA3 has no bias option, as in PEFT).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class Ia3Config implements PeftConfig {

    /** The {@code peft_type} of IA3 adapter files. */
    public static final String PEFT_TYPE = "IA3";

    private final Targeting targeting;
    private final TargetModules feedforwardModules;

    private Ia3Config(Builder b, Targeting targeting) {
        this.targeting = targeting;
        this.feedforwardModules = b.feedforwardModules;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.targeting(targeting);
        b.feedforwardModules = feedforwardModules;
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

    /**
     * Hugging Face PEFT's IA3 keys ({@code feedforward_modules} as a name list or a regex string,
     * as PEFT writes it; {@code fan_in_fan_out} false, {@code init_ia3_weights} true);
     * {@link PeftConfig#toAdapterConfig()} adds {@code peft_type} and the targeting keys.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new java.util.TreeMap<>();
        m.put("feedforward_modules", feedforwardModules == null ? null : feedforwardModules.toJson());
        m.put("fan_in_fan_out", false);
        m.put("init_ia3_weights", true);
        return m;
    }

    /** Whether the named target scales its input (name matched as for targets). */
    public boolean isFeedforward(String layerName) {
        return feedforwardModules != null && feedforwardModules.matches(layerName, false, false);
    }

    @Override
    public FrozenDenseLayer adapt(Target target) {
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
            boolean dense = TargetKind.of(l) == TargetKind.DENSE;
            boolean chosen = targeting.targetModules().matches(e.getKey(), dense, outputs.contains(e.getKey()));
            if (!chosen || !targeting.typeAllowed(l) || targeting.isExcluded(e.getKey())) {
                stray.add(e.getKey());
            }
        }
        if (!any) {
            throw new IllegalArgumentException("no layer matched feedforwardModules "
                    + Messages.shorten(feedforwardModules, Messages.MAX_VALUE_CHARS)
                    + "; layers are: " + Vertices.describeLayers(base.getConfiguration()));
        }
        if (!stray.isEmpty()) {
            throw new IllegalArgumentException("feedforwardModules must be a subset of targetModules "
                    + Messages.shorten(targeting.targetModules(), Messages.MAX_VALUE_CHARS)
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
        return targeting.equals(c.targeting) && Objects.equals(feedforwardModules, c.feedforwardModules);
    }

    @Override
    public int hashCode() {
        return Objects.hash(targeting, feedforwardModules);
    }

    @Override
    public String toString() {
        return "Ia3Config(" + targeting + ", feedforwardModules="
                + (feedforwardModules == null ? "[]" : feedforwardModules.toString()) + ")";
    }

    /**
     * Builds an {@link Ia3Config}. Every setter checks its argument at once and says what was wrong;
     * {@link #build()} checks that targets were given and, when targets and feedforward modules are
     * both names, that the latter are a subset.
     */
    public static final class Builder extends TargetingBuilder<Builder> {
        private TargetModules feedforwardModules;

        private Builder() {
        }

        /**
         * Targets that scale their input (PEFT's {@code feedforward_modules}): those whose name equals
         * one of {@code names} or ends with {@code "."} plus one of them.
         */
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

        /**
         * @throws IllegalStateException if no target modules were set
         * @throws IllegalArgumentException if feedforward modules given by name can be no targets
         */
        public Ia3Config build() {
            Targeting targeting = buildTargeting();
            TargetModules targetModules = targeting.targetModules();
            if (feedforwardModules != null && feedforwardModules.kind() == TargetModules.Kind.NAMES
                    && targetModules.kind() == TargetModules.Kind.NAMES) {
                // A feedforward entry whose layers cannot be chosen by any target entry (neither
                // equal nor a "."-suffix of the other) names no target in any graph.
                Set<String> stray = new TreeSet<>();
                for (String n : feedforwardModules.names()) {
                    if (targetModules.names().stream().noneMatch(t -> n.equals(t) || n.endsWith("." + t)
                            || t.endsWith("." + n))) {
                        stray.add(n);
                    }
                }
                if (!stray.isEmpty()) {
                    throw new IllegalArgumentException("feedforwardModules must be a subset of targetModules "
                            + Messages.shorten(targetModules, Messages.MAX_VALUE_CHARS) + "; not targets: " + Messages.list(stray));
                }
            }
            return new Ia3Config(this, targeting);
        }
    }
}
