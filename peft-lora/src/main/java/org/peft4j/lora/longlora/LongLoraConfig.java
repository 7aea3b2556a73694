package org.peft4j.lora.longlora;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.Targeting;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.blocks.AttentionCore;
import org.peft4j.core.blocks.Normalization;
import org.peft4j.core.blocks.PositionalEmbedding;
import org.peft4j.lora.LoraConfig;

/**
 * LongLoRA (Chen et al., arXiv 2309.12307): fine-tuning a model to a longer context cheaply. Three
 * parts, each where it belongs:
 * <ol>
 *   <li><b>LoRA</b> on the attention projections: the {@link LoraConfig} this config holds.</li>
 *   <li><b>Trainable embeddings and normalization layers</b> beside LoRA (the paper's "LoRA+",
 *       which closes most of the gap to full fine-tuning at long contexts): they are the LoRA
 *       config's modules to save; {@link Builder#trainEmbeddingsAndNormsOf} adds every embedding
 *       ({@code EmbeddingLayer}, {@code EmbeddingSequenceLayer}, {@link PositionalEmbedding}) and
 *       normalization ({@link Normalization}: LayerNorm, RMSNorm) of a base graph.</li>
 *   <li><b>Shifted sparse attention</b> (S²-Attn) while training: every {@link AttentionCore} of the
 *       base is replaced by the same core with {@link AttentionCore#withShiftedSparseAttention}
 *       group size {@link #groupSize()}, so a training step attends within groups (cost
 *       {@code ∝ T·G} instead of {@code T²}); inference and {@link org.peft4j.core.PeftModel#mergeAndUnload()}
 *       use full attention on the same weights.</li>
 * </ol>
 * The longer context itself is a change of the base model, as in the paper (which changes the
 * rotary scaling of the base): extend the positional table first with
 * {@link org.peft4j.core.blocks.PositionInterpolation#extend}, then wrap the extended base.
 *
 * <pre>{@code
 * ComputationGraph longBase = PositionInterpolation.extend(base, 64, 256);
 * PeftModel m = Peft.wrap(longBase, LongLoraConfig.builder()
 *         .lora(LoraConfig.builder().rank(8).alpha(16).targetModulesRegex("block\\d+\\.attn\\.(q|k|v|o)").build())
 *         .groupSize(64)                       // S²-Attn groups of 64 positions while training
 *         .trainEmbeddingsAndNormsOf(longBase) // LoRA+
 *         .build());
 * }</pre>
 *
 * <p>Files: the adapter is a LoRA adapter in Hugging Face PEFT's layout ({@code peft_type}
 * {@code "LORA"}, the embeddings and norms as {@code modules_to_save}), since S²-Attn changes how
 * the model trains, not what it computes at inference; peft4j's extension object records the
 * group size under {@code long_lora}. {@link org.peft4j.core.Peft#load} reads it as a
 * {@link LoraConfig} (full attention); to train on with S²-Attn, load with
 * {@code c -> LongLoraConfig.of((LoraConfig) c, groupSize)}.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class LongLoraConfig implements PeftConfig {

    /** Key of peft4j's extension object in {@code adapter_config.json} holding this config's own values. */
    public static final String FILE_KEY = "long_lora";

    private final LoraConfig lora;
    private final int groupSize;

    private LongLoraConfig(LoraConfig lora, int groupSize) {
        this.lora = lora;
        this.groupSize = groupSize;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * LongLoRA over {@code lora} (its modules to save as they are) with S²-Attn of {@code groupSize}
     * while training; 0 trains with full attention.
     *
     * @throws IllegalArgumentException if {@code groupSize} is negative or odd
     */
    public static LongLoraConfig of(LoraConfig lora, int groupSize) {
        return builder().lora(lora).groupSize(groupSize).build();
    }

    /**
     * The names of every embedding ({@code EmbeddingLayer}, {@code EmbeddingSequenceLayer},
     * {@link PositionalEmbedding}) and normalization ({@link Normalization}) layer of {@code base},
     * in graph order: what LongLoRA's "+" setting trains in full.
     */
    public static List<String> embeddingAndNormLayers(ComputationGraph base) {
        Objects.requireNonNull(base, "base must not be null");
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, GraphVertex> e : base.getConfiguration().getVertices().entrySet()) {
            Layer l = e.getValue() instanceof LayerVertex lv ? lv.getLayerConf().getLayer() : null;
            if (l instanceof EmbeddingLayer || l instanceof EmbeddingSequenceLayer || l instanceof PositionalEmbedding
                    || l instanceof Normalization) {
                out.add(e.getKey());
            }
        }
        return out;
    }

    /** The LoRA part: targets, rank, alpha, and the modules trained in full (embeddings and norms). */
    public LoraConfig lora() {
        return lora;
    }

    /** The S²-Attn group size while training; 0: full attention. */
    public int groupSize() {
        return groupSize;
    }

    // ---- what PeftConfig shares with every method: delegated to the LoRA part in this one spot

    /** {@code "LORA"}: the files are LoRA files. */
    @Override
    public String peftType() {
        return lora.peftType();
    }

    /** The LoRA part's targeting: its targets, and the embeddings and norms among its modules to save. */
    @Override
    public Targeting targeting() {
        return lora.targeting();
    }

    @Override
    public Set<TargetKind> supportedTargetKinds() {
        return lora.supportedTargetKinds();
    }

    @Override
    public FrozenBaseLayer adapt(Target target) {
        return lora.adapt(target);
    }

    @Override
    public FrozenDenseLayer freeze(Target target) {
        return lora.freeze(target);
    }

    @Override
    public Set<String> baseModelKeys() {
        return lora.baseModelKeys();
    }

    /** The LoRA keys, and under {@code peft4j.long_lora}: {@code s2_attn_group_size}. */
    @Override
    public Map<String, Object> methodConfig() {
        return withGroupSize(lora.methodConfig());
    }

    @Override
    public Map<String, Object> toAdapterConfig(ComputationGraph wrapped) {
        return withGroupSize(lora.toAdapterConfig(wrapped));
    }

    private Map<String, Object> withGroupSize(Map<String, Object> keys) {
        Map<String, Object> m = new TreeMap<>(keys);
        Map<String, Object> ext = new TreeMap<>();
        if (m.get("peft4j") instanceof Map<?, ?> existing) {
            existing.forEach((k, v) -> ext.put(String.valueOf(k), v));
        }
        ext.put(FILE_KEY, Map.of("s2_attn_group_size", groupSize));
        m.put("peft4j", ext);
        return m;
    }

    // ---- LongLoRA's own part

    /** The LoRA layout and the group size (a graph with S²-Attn cores is not one without). */
    @Override
    public String layoutSignature() {
        return "LONGLORA G=" + groupSize + " " + lora.layoutSignature();
    }

    /**
     * Every {@link AttentionCore} of {@code base} replaced by itself with S²-Attn of
     * {@link #groupSize()} (none when it is 0).
     *
     * @throws IllegalArgumentException if {@code base} has no attention core to switch, or one has
     *     an odd number of heads (naming it)
     */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        List<GraphEdit> edits = new ArrayList<>(lora.graphEdits(base));
        if (groupSize == 0) {
            return edits;
        }
        ComputationGraphConfiguration conf = base.getConfiguration();
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            GraphVertex v = e.getValue();
            if (v instanceof AttentionCore core && !(v instanceof TunerLayer)) {
                try {
                    edits.add(GraphEdit.replace(e.getKey(), core.withShiftedSparseAttention(groupSize)));
                } catch (IllegalArgumentException ex) {
                    throw new IllegalArgumentException("LongLoRA: attention core \"" + e.getKey() + "\": " + ex.getMessage(),
                            ex);
                }
            }
        }
        if (edits.isEmpty()) {
            StringBuilder layers = new StringBuilder();
            conf.getVertices().forEach((k, v) -> layers.append(layers.length() == 0 ? "" : ", ").append(k).append(" (")
                    .append(v instanceof LayerVertex lv ? lv.getLayerConf().getLayer().getClass().getSimpleName()
                            : v.getClass().getSimpleName()).append(')'));
            throw new IllegalArgumentException("LongLoRA: S²-Attn (groupSize " + groupSize + ") needs peft4j's "
                    + "AttentionCore vertices (the attention of Transformers.decoder() and encoder()), and the base has "
                    + "none; use groupSize 0 for full attention, or a base built with them. Layers are: " + layers);
        }
        return edits;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LongLoraConfig c && groupSize == c.groupSize && lora.equals(c.lora);
    }

    @Override
    public int hashCode() {
        return Objects.hash(lora, groupSize);
    }

    @Override
    public String toString() {
        return "LongLoraConfig(groupSize=" + groupSize + ", lora=" + lora + ")";
    }

    /** Builds a {@link LongLoraConfig}; setters validate at once. */
    public static final class Builder {
        private LoraConfig lora;
        private int groupSize = -1;
        private final Set<String> embeddingsAndNorms = new LinkedHashSet<>();

        private Builder() {
        }

        /** The LoRA part (required): targets, rank, alpha, modules to save. */
        public Builder lora(LoraConfig lora) {
            if (this.lora != null) {
                throw new IllegalStateException("lora was already set to " + this.lora);
            }
            this.lora = Objects.requireNonNull(lora, "lora must not be null");
            return this;
        }

        /**
         * The S²-Attn group size while training (required): an even number ≥ 2, or 0 for full
         * attention. LongLoRA uses a quarter of the training length (e.g. 64 for 256).
         */
        public Builder groupSize(int groupSize) {
            if (groupSize < 0 || groupSize % 2 != 0) {
                throw new IllegalArgumentException("groupSize must be 0 (full attention) or an even number of at least 2 "
                        + "(half of the heads shift by half a group); got " + groupSize);
            }
            this.groupSize = groupSize;
            return this;
        }

        /**
         * LongLoRA's "+" setting: every embedding and normalization layer of {@code base}
         * ({@link #embeddingAndNormLayers}) trains in full, as a module to save of the LoRA part.
         *
         * @throws IllegalArgumentException if {@code base} has none
         */
        public Builder trainEmbeddingsAndNormsOf(ComputationGraph base) {
            List<String> names = embeddingAndNormLayers(base);
            if (names.isEmpty()) {
                throw new IllegalArgumentException("trainEmbeddingsAndNormsOf: the base has no embedding or normalization "
                        + "layer (EmbeddingLayer, EmbeddingSequenceLayer, PositionalEmbedding, LayerNorm, RmsNorm)");
            }
            embeddingsAndNorms.addAll(names);
            return this;
        }

        /** @throws IllegalStateException if lora or groupSize was not set */
        public LongLoraConfig build() {
            if (lora == null) {
                throw new IllegalStateException("lora must be set: LongLoRA trains LoRA on the attention projections");
            }
            if (groupSize < 0) {
                throw new IllegalStateException("groupSize must be set (an even number ≥ 2, or 0 for full attention)");
            }
            LoraConfig l = lora;
            List<String> extra = new ArrayList<>(embeddingsAndNorms);
            extra.removeAll(lora.modulesToSave());
            if (!extra.isEmpty()) {
                l = lora.toBuilder().modulesToSave(extra.toArray(String[]::new)).build();
            }
            return new LongLoraConfig(l, groupSize);
        }
    }
}
