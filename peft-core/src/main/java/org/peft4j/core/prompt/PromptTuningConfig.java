package org.peft4j.core.prompt;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.ModulesToSaveBuilder;
import org.peft4j.core.Targeting;
import org.peft4j.core.UntargetedConfig;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.spi.Vertices;

/**
 * Configuration of prompt tuning (Lester et al., arXiv 2104.08691), with Hugging Face PEFT's option
 * names: {@code p} ({@link #numVirtualTokens()}) trainable embeddings are prepended to every
 * sequence right after the token embedding, and removed again before the output layer; the whole
 * base model is frozen.
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(decoder, PromptTuningConfig.builder().numVirtualTokens(8).build());
 * PeftModel text = Peft.wrap(decoder, PromptTuningConfig.builder().numVirtualTokens(8)
 *         .initFromTokens(5, 17, 3).build());          // PEFT's prompt_tuning_init="TEXT"
 * }</pre>
 *
 * Two layers are inserted: a {@link PromptEmbeddingLayer} named {@code <embedding>.prompt} after
 * the embedding layer ({@code embed.tokens} by default) and a {@link PromptTrimLayer} named
 * {@code <output>.trim} before the output layer ({@code head} by default). Inputs, feature masks
 * ({@code [batch, T]}, extended with ones for the virtual tokens) and labels keep the caller's
 * length {@code T}; a positional table between them must cover {@code p + T} positions, so
 * sequences may be at most {@code maxLength − p} long. Prompt tuning cannot be merged into stock
 * layers ({@link org.peft4j.core.PeftModel#mergeAndUnload()} refuses it).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class PromptTuningConfig implements UntargetedConfig {

    /** The {@code peft_type} of this method's adapter files. */
    public static final String PEFT_TYPE = "PROMPT_TUNING";

    private final int numVirtualTokens;
    private final PromptInit init;
    private final List<Integer> initTokens;
    private final String embeddingLayer;
    private final String outputLayer;
    private final Targeting targeting;

    private PromptTuningConfig(Builder b, Targeting targeting) {
        this.numVirtualTokens = b.numVirtualTokens;
        this.init = b.init;
        this.initTokens = List.copyOf(b.initTokens);
        this.embeddingLayer = b.embeddingLayer;
        this.outputLayer = b.outputLayer;
        this.targeting = targeting;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.numVirtualTokens = numVirtualTokens;
        b.init = init;
        b.initTokens.addAll(initTokens);
        b.embeddingLayer = embeddingLayer;
        b.outputLayer = outputLayer;
        b.targeting(targeting);
        return b;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    /** {@code p}: virtual tokens (0: the base model exactly). */
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    public PromptInit init() {
        return init;
    }

    /** The token ids whose embeddings start the prompt ({@link PromptInit#TEXT}); empty for random. */
    public List<Integer> initTokens() {
        return initTokens;
    }

    /** The token embedding the prompt follows. */
    public String embeddingLayer() {
        return embeddingLayer;
    }

    /** The vertex name of the inserted {@link PromptEmbeddingLayer}: {@code <embeddingLayer>.prompt}. */
    public String promptLayerName() {
        return embeddingLayer + ".prompt";
    }

    /** The output layer before which the virtual positions are dropped. */
    public String outputLayer() {
        return outputLayer;
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    /**
     * Hugging Face PEFT's {@code adapter_config.json} keys for prompt tuning: {@code peft_type},
     * {@code num_virtual_tokens}, {@code prompt_tuning_init} ({@code "RANDOM"} or {@code "TEXT"}),
     * {@code prompt_tuning_init_text} (always null: peft4j starts from token ids, not text),
     * {@code num_transformer_submodules} 1 (decoder only), {@code modules_to_save}; {@code token_dim}
     * comes from the wrapped graph ({@link #toAdapterConfig(ComputationGraph)}). peft4j's extension
     * keys: {@code embedding_layer}, {@code output_layer} and, for TEXT init, {@code init_token_ids}.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("num_virtual_tokens", numVirtualTokens);
        m.put("token_dim", null);
        m.put("num_transformer_submodules", 1);
        m.put("prompt_tuning_init", init.name());
        m.put("prompt_tuning_init_text", null);
        m.put("tokenizer_name_or_path", null);
        Map<String, Object> ext = new TreeMap<>();
        ext.put("embedding_layer", embeddingLayer);
        ext.put("output_layer", outputLayer);
        if (init == PromptInit.TEXT) {
            ext.put("init_token_ids", new ArrayList<>(initTokens));
        }
        m.put("peft4j", ext);
        return m;
    }

    /** With {@code token_dim}: the width of the prompt in {@code wrapped} (that of the embedding it follows). */
    @Override
    public Map<String, Object> toAdapterConfig(ComputationGraph wrapped) {
        Map<String, Object> m = toAdapterConfig();
        Layer prompt = Vertices.layerOf(wrapped.getConfiguration(), promptLayerName());
        if (prompt instanceof PromptEmbeddingLayer) {
            m.put("token_dim", ((PromptEmbeddingLayer) prompt).getNIn());
        }
        return m;
    }

    /** {@code token_dim}: the embedding width the prompt was trained for. */
    @Override
    public Set<String> baseModelKeys() {
        return Set.of("token_dim");
    }

    /** The number of virtual tokens and where the two layers go (the initial prompt is only a starting value). */
    @Override
    public String layoutSignature() {
        return peftType() + " p=" + numVirtualTokens + " after=" + embeddingLayer + " before=" + outputLayer + " save="
                + targeting.modulesToSave();
    }

    /**
     * The prompt after {@link #embeddingLayer()} and the trim before {@link #outputLayer()}.
     *
     * @throws IllegalArgumentException if either layer is missing, the embedding has no weight
     *     table {@code W [vocab, d]}, or an init token id is outside the vocabulary
     */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        Layer emb = Vertices.layerOf(conf, embeddingLayer);
        if (!(emb instanceof FeedForwardLayer)) {
            throw new IllegalArgumentException("prompt tuning: no embedding layer named \"" + embeddingLayer
                    + "\"; layers are: " + Vertices.describeLayers(conf));
        }
        if (Vertices.layerOf(conf, outputLayer) == null || !conf.getNetworkOutputs().contains(outputLayer)) {
            throw new IllegalArgumentException("prompt tuning: no output layer named \"" + outputLayer
                    + "\"; outputs are " + conf.getNetworkOutputs());
        }
        long d = ((FeedForwardLayer) emb).getNOut();
        INDArray prompt = null;
        if (numVirtualTokens > 0) {
            INDArray table = base.getLayer(embeddingLayer).getParam("W");
            if (table == null || table.rank() != 2 || table.size(1) != d) {
                throw new IllegalArgumentException("prompt tuning: layer \"" + embeddingLayer + "\" has no embedding "
                        + "table W [vocab, " + d + "]");
            }
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                prompt = initialPrompt(table.castTo(DataType.DOUBLE), d);
            }
        }
        return List.of(
                GraphEdit.insertAfter(embeddingLayer, promptLayerName(), new PromptEmbeddingLayer(embeddingLayer, d, prompt)),
                GraphEdit.insertBefore(outputLayer, outputLayer + ".trim", new PromptTrimLayer(d, numVirtualTokens)));
    }

    private INDArray initialPrompt(INDArray table, long d) {
        long vocab = table.size(0);
        INDArray prompt = Nd4j.create(DataType.DOUBLE, d, numVirtualTokens);
        if (init == PromptInit.TEXT) {
            for (int id : initTokens) {
                if (id >= vocab) {
                    throw new IllegalArgumentException("prompt tuning: init token id " + id + " is outside the vocabulary "
                            + "of \"" + embeddingLayer + "\" (" + vocab + " tokens)");
                }
            }
            for (int j = 0; j < numVirtualTokens; j++) {
                prompt.getColumn(j).assign(table.getRow(initTokens.get(j % initTokens.size())));
            }
        } else {
            double std = table.stdNumber().doubleValue();
            prompt.assign(Nd4j.randn(DataType.DOUBLE, d, numVirtualTokens).muli(std > 0 ? std : 1.0));
        }
        return prompt;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof PromptTuningConfig)) {
            return false;
        }
        PromptTuningConfig c = (PromptTuningConfig) o;
        return numVirtualTokens == c.numVirtualTokens && init == c.init && initTokens.equals(c.initTokens)
                && embeddingLayer.equals(c.embeddingLayer) && outputLayer.equals(c.outputLayer)
                && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(numVirtualTokens, init, initTokens, embeddingLayer, outputLayer, targeting);
    }

    @Override
    public String toString() {
        return "PromptTuningConfig(numVirtualTokens=" + numVirtualTokens + ", init=" + init + ", initTokens=" + initTokens
                + ", embeddingLayer=" + embeddingLayer + ", outputLayer=" + outputLayer + ", modulesToSave="
                + targeting.modulesToSave() + ")";
    }

    /** Builds a {@link PromptTuningConfig}; setters validate at once. */
    public static final class Builder extends ModulesToSaveBuilder<Builder> {
        private int numVirtualTokens = -1;
        private PromptInit init = PromptInit.RANDOM;
        private final List<Integer> initTokens = new java.util.ArrayList<>();
        private String embeddingLayer = Transformers.TOKEN_EMBEDDING;
        private String outputLayer = Transformers.OUTPUT;

        private Builder() {
            super(Targeting.Scope.MODULES_TO_SAVE);
        }

        /** {@code p ≥ 0} (required; 0 gives the base model). */
        public Builder numVirtualTokens(int p) {
            if (p < 0) {
                throw new IllegalArgumentException("numVirtualTokens must not be negative; got " + p);
            }
            this.numVirtualTokens = p;
            return this;
        }

        /** Random init (the default): normal with the base embedding table's standard deviation. */
        public Builder initRandom() {
            this.init = PromptInit.RANDOM;
            this.initTokens.clear();
            return this;
        }

        /** TEXT init: the base embedding rows of these token ids, repeated to fill {@code p}. */
        public Builder initFromTokens(int... tokenIds) {
            Objects.requireNonNull(tokenIds, "tokenIds must not be null");
            if (tokenIds.length == 0) {
                throw new IllegalArgumentException("initFromTokens: give at least one token id");
            }
            for (int id : tokenIds) {
                if (id < 0) {
                    throw new IllegalArgumentException("initFromTokens: token ids must not be negative; got "
                            + Arrays.toString(tokenIds));
                }
            }
            this.init = PromptInit.TEXT;
            this.initTokens.clear();
            for (int id : tokenIds) {
                this.initTokens.add(id);
            }
            return this;
        }

        /** The embedding layer the prompt follows (default {@code embed.tokens}). */
        public Builder embeddingLayer(String name) {
            this.embeddingLayer = requireName(name, "embeddingLayer");
            return this;
        }

        /** The output layer before which virtual positions are dropped (default {@code head}). */
        public Builder outputLayer(String name) {
            this.outputLayer = requireName(name, "outputLayer");
            return this;
        }

        private static String requireName(String name, String what) {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException(what + " must not be null or blank");
            }
            return name;
        }

        /** @throws IllegalStateException if numVirtualTokens was not set */
        public PromptTuningConfig build() {
            if (numVirtualTokens < 0) {
                throw new IllegalStateException("numVirtualTokens must be set (0 or more)");
            }
            return new PromptTuningConfig(this, buildTargeting());
        }
    }
}
