package org.peft4j.core.adapter;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.ModulesToSaveBuilder;
import org.peft4j.core.TargetKind;
import org.peft4j.core.TargetModules;
import org.peft4j.core.Targeting;
import org.peft4j.core.UntargetedConfig;
import org.peft4j.core.spi.Vertices;

/**
 * Configuration of bottleneck adapters: a {@link BottleneckAdapterLayer}
 * ({@code y = x + up(act(down(x)))}) inserted after each chosen layer, with the whole base model
 * frozen.
 *
 * <ul>
 *   <li>{@link Builder#houlsby()} (Houlsby et al., arXiv 1902.00751): after the attention output
 *       projection and after the MLP of every block of a peft4j decoder
 *       ({@code block{i}.attn.o}, {@code block{i}.mlp.down}), before each residual add;</li>
 *   <li>{@link Builder#pfeiffer()} (Pfeiffer et al., arXiv 2005.00052): after the MLP only;</li>
 *   <li>{@link Builder#insertAfter(String...)}: after any named layers (plain graphs).</li>
 * </ul>
 *
 * The bottleneck size is {@code m = max(1, d / reductionFactor)} (default reduction factor 16)
 * or a fixed {@link Builder#bottleneckSize(int)}; {@code d} is the chosen layer's {@code nOut}.
 * Each adapter is named {@code <layer>.adapter}. Adapters cannot be merged into stock layers:
 * {@link org.peft4j.core.PeftModel#mergeAndUnload()} refuses them.
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(decoder, AdapterConfig.builder().houlsby().reductionFactor(16).build());
 * PeftModel mlp  = Peft.wrap(graph, AdapterConfig.builder().insertAfter("dense1").bottleneckSize(4).build());
 * }</pre>
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class AdapterConfig implements UntargetedConfig {

    /** The {@code peft_type} of this method's adapter files. */
    public static final String PEFT_TYPE = "BOTTLENECK";

    /** Suffix of an adapter's vertex name: {@code <layer>.adapter}. */
    public static final String NAME_SUFFIX = ".adapter";

    /** Where adapters go. */
    public enum Architecture {
        /** After attention output and MLP of every decoder block. */
        HOULSBY,
        /** After the MLP of every decoder block. */
        PFEIFFER,
        /** After explicitly chosen layers. */
        CUSTOM
    }

    private final Architecture architecture;
    private final TargetModules insertAfter;
    private final int reductionFactor;
    private final int bottleneckSize;
    private final Activation nonlinearity;
    private final Targeting targeting;

    private AdapterConfig(Builder b, Targeting targeting) {
        this.architecture = b.architecture;
        this.insertAfter = b.insertAfter;
        this.reductionFactor = b.reductionFactor;
        this.bottleneckSize = b.bottleneckSize;
        this.nonlinearity = b.nonlinearity;
        this.targeting = targeting;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.architecture = architecture;
        b.insertAfter = insertAfter;
        b.reductionFactor = reductionFactor;
        b.bottleneckSize = bottleneckSize;
        b.reductionSet = bottleneckSize == 0 && reductionFactor != 16;
        b.nonlinearity = nonlinearity;
        b.targeting(targeting);
        return b;
    }

    /**
     * {@code "BOTTLENECK"}: a peft4j extension, Hugging Face PEFT has no bottleneck adapter type
     * (the files say so in their {@code peft4j.note}).
     */
    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    public Architecture architecture() {
        return architecture;
    }

    /** The layers an adapter follows. */
    public TargetModules insertAfter() {
        return insertAfter;
    }

    /** {@code d / m}; 0 when a fixed {@link #bottleneckSize()} is set. */
    public int reductionFactor() {
        return reductionFactor;
    }

    /** A fixed {@code m}; 0 when the {@link #reductionFactor()} decides. */
    public int bottleneckSize() {
        return bottleneckSize;
    }

    /** The bottleneck's activation. */
    public Activation nonlinearity() {
        return nonlinearity;
    }

    /** The bottleneck size for a layer of feature size {@code d}. */
    public long bottleneckFor(long d) {
        return bottleneckSize > 0 ? bottleneckSize : Math.max(1, d / reductionFactor);
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    /**
     * The keys of {@code adapter_config.json}, in Hugging Face PEFT's style (PEFT itself has no
     * bottleneck type; the option names follow AdapterHub's bottleneck configs where they exist):
     * {@code peft_type "BOTTLENECK"}, {@code architecture} ({@code "HOULSBY"}, {@code "PFEIFFER"},
     * {@code "CUSTOM"}), {@code insert_after} (layer names, or a regex string), exactly one of
     * {@code bottleneck_size} and {@code reduction_factor} (the other null), {@code non_linearity}
     * (a DL4J activation name in lower case, e.g. {@code "relu"}), {@code modules_to_save}.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new java.util.TreeMap<>();
        m.put("architecture", architecture.name());
        m.put("insert_after", insertAfter.kind() == TargetModules.Kind.NAMES ? new ArrayList<>(insertAfter.names())
                : insertAfter.regex());
        m.put("bottleneck_size", bottleneckSize > 0 ? bottleneckSize : null);
        m.put("reduction_factor", bottleneckSize > 0 ? null : reductionFactor);
        m.put("non_linearity", nonlinearity.name().toLowerCase(java.util.Locale.ROOT));
        m.put("peft4j", Map.of("note", "peft_type BOTTLENECK is a peft4j extension: Hugging Face PEFT has no "
                + "bottleneck adapter type and cannot load this file. Tensors adapter_down/adapter_up are stored "
                + "in PyTorch orientation [out, in]."));
        return m;
    }

    /** Insert points, sizes and activation (the activation lives in the inserted layers' configuration). */
    @Override
    public String layoutSignature() {
        return peftType() + " " + architecture + " after=" + insertAfter + " factor=" + reductionFactor + " m="
                + bottleneckSize + " act=" + nonlinearity + " save=" + targeting.modulesToSave();
    }

    /**
     * One {@link GraphEdit#insertAfter} per chosen layer.
     *
     * @throws IllegalArgumentException if no layer is chosen, or a chosen vertex has no feature
     *     size (not a feed-forward-type layer)
     */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        var conf = base.getConfiguration();
        Set<String> outputs = new java.util.HashSet<>(conf.getNetworkOutputs());
        if (insertAfter.kind() == TargetModules.Kind.NAMES) {
            for (String n : insertAfter.names()) {
                if (!conf.getVertices().containsKey(n)) {
                    throw new IllegalArgumentException("adapter: no layer named \"" + n + "\" to insert after; layers are: "
                            + Vertices.describeLayers(conf));
                }
            }
        }
        List<GraphEdit> edits = new ArrayList<>();
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            Layer l = Vertices.layerOf(e.getValue());
            if (!insertAfter.matches(e.getKey(), TargetKind.of(l) == TargetKind.DENSE, outputs.contains(e.getKey()))) {
                continue;
            }
            if (!(l instanceof FeedForwardLayer) || ((FeedForwardLayer) l).getNOut() <= 0) {
                throw new IllegalArgumentException("adapter after \"" + e.getKey() + "\": it is a "
                        + (l == null ? e.getValue().getClass().getSimpleName() : l.getClass().getSimpleName())
                        + ", whose feature size is unknown; insert adapters after layers with nOut (dense, LSTM, ...)");
            }
            long d = ((FeedForwardLayer) l).getNOut();
            BottleneckAdapterLayer adapter = new BottleneckAdapterLayer(e.getKey(), d, bottleneckFor(d), nonlinearity.getActivationFunction());
            edits.add(GraphEdit.insertAfter(e.getKey(), e.getKey() + NAME_SUFFIX, adapter));
        }
        if (edits.isEmpty()) {
            throw new IllegalArgumentException("adapter (" + architecture + "): no layer matched insertAfter " + insertAfter
                    + "; layers are: " + Vertices.describeLayers(conf));
        }
        return edits;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof AdapterConfig)) {
            return false;
        }
        AdapterConfig c = (AdapterConfig) o;
        return architecture == c.architecture && insertAfter.equals(c.insertAfter) && reductionFactor == c.reductionFactor
                && bottleneckSize == c.bottleneckSize && nonlinearity == c.nonlinearity
                && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(architecture, insertAfter, reductionFactor, bottleneckSize, nonlinearity, targeting);
    }

    @Override
    public String toString() {
        return "AdapterConfig(architecture=" + architecture + ", insertAfter=" + insertAfter + ", reductionFactor="
                + reductionFactor + ", bottleneckSize=" + bottleneckSize + ", nonlinearity=" + nonlinearity
                + ", modulesToSave=" + targeting.modulesToSave() + ")";
    }

    /**
     * Builds an {@link AdapterConfig}. Every setter checks its argument at once and says what was
     * wrong; {@link #build()} checks that insert points were chosen.
     */
    public static final class Builder extends ModulesToSaveBuilder<Builder> {
        private Architecture architecture;
        private TargetModules insertAfter;
        private int reductionFactor = 16;
        private int bottleneckSize;
        private boolean reductionSet;
        private Activation nonlinearity = Activation.RELU;

        private Builder() {
            super(Targeting.Scope.MODULES_TO_SAVE);
        }

        private Builder where(Architecture a, TargetModules t) {
            if (insertAfter != null) {
                throw new IllegalStateException("insert points were already set to " + architecture + " " + insertAfter);
            }
            this.architecture = a;
            this.insertAfter = t;
            return this;
        }

        /** Houlsby placement on a peft4j decoder: after {@code block{i}.attn.o} and {@code block{i}.mlp.down}. */
        public Builder houlsby() {
            return where(Architecture.HOULSBY, TargetModules.regex("block\\d+\\.(attn\\.o|mlp\\.down)"));
        }

        /** Pfeiffer placement on a peft4j decoder: after {@code block{i}.mlp.down}. */
        public Builder pfeiffer() {
            return where(Architecture.PFEIFFER, TargetModules.regex("block\\d+\\.mlp\\.down"));
        }

        /** Adapters after these layers. */
        public Builder insertAfter(String... layers) {
            return where(Architecture.CUSTOM, TargetModules.names(layers));
        }

        /** Adapters after every layer whose whole name matches {@code regex}. */
        public Builder insertAfterRegex(String regex) {
            return where(Architecture.CUSTOM, TargetModules.regex(regex));
        }

        /** {@code m = max(1, d / factor)} (default 16); exclusive with {@link #bottleneckSize(int)}. */
        public Builder reductionFactor(int factor) {
            if (factor <= 0) {
                throw new IllegalArgumentException("reductionFactor must be positive; got " + factor);
            }
            if (bottleneckSize > 0) {
                throw new IllegalStateException("bottleneckSize was already set to " + bottleneckSize
                        + "; set either reductionFactor or bottleneckSize");
            }
            this.reductionFactor = factor;
            this.reductionSet = true;
            return this;
        }

        /** A fixed bottleneck size {@code m} for every adapter; exclusive with {@link #reductionFactor(int)}. */
        public Builder bottleneckSize(int size) {
            if (size <= 0) {
                throw new IllegalArgumentException("bottleneckSize must be positive; got " + size);
            }
            if (reductionSet || bottleneckSize > 0) {
                throw new IllegalStateException((bottleneckSize > 0 ? "bottleneckSize was already set to " + bottleneckSize
                        : "reductionFactor was already set to " + reductionFactor)
                        + "; set either reductionFactor or bottleneckSize");
            }
            this.bottleneckSize = size;
            this.reductionFactor = 0;
            return this;
        }

        /** The bottleneck's activation (default {@link Activation#RELU}). */
        public Builder nonlinearity(Activation activation) {
            this.nonlinearity = Objects.requireNonNull(activation, "nonlinearity must not be null");
            return this;
        }

        /**
         * @throws IllegalStateException if no insert points were chosen
         */
        public AdapterConfig build() {
            if (insertAfter == null) {
                throw new IllegalStateException("choose where adapters go: houlsby(), pfeiffer(), insertAfter(...) "
                        + "or insertAfterRegex(...)");
            }
            return new AdapterConfig(this, buildTargeting());
        }
    }
}
