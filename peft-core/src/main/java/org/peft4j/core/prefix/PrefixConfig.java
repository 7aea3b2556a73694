package org.peft4j.core.prefix;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.ModulesToSaveBuilder;
import org.peft4j.core.PeftModel;
import org.peft4j.core.Targeting;
import org.peft4j.core.UntargetedConfig;
import org.peft4j.core.blocks.AttentionCore;
import org.peft4j.core.prefix.internal.PrefixEncoderLayerImpl;
import org.peft4j.core.spi.Vertices;

/**
 * Configuration of prefix tuning (Li &amp; Liang, arXiv 2101.00190), with Hugging Face PEFT's option
 * names: every {@link AttentionCore} of the base graph (each {@code block{i}.attn.core} of a peft4j
 * decoder) is replaced by a {@link PrefixAttentionCore} that attends to {@code p}
 * ({@link #numVirtualTokens()}) trainable key and value vectors before the real keys and values.
 * The vectors come from a {@link PrefixEncoderLayer} named {@code block{i}.attn.prefix} (added
 * next to the core, reading the graph's input for the batch size only), so DL4J's parameter
 * vector, updater and serializers handle them like any layer's. The rest of the base model is
 * frozen. With {@code p = 0} the cores are replaced by prefix-free equivalents: the base model.
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(decoder, PrefixConfig.builder().numVirtualTokens(8).build());
 * // with PEFT's prefix_projection: a tanh MLP produces the prefixes during training
 * PeftModel reparam = Peft.wrap(decoder, PrefixConfig.builder().numVirtualTokens(8).encoderHiddenSize(32).build());
 * PrefixConfig.foldReparameterization(reparam);   // for inference: evaluate the MLP once, keep the prefixes
 * }</pre>
 *
 * <p>Reparameterisation: with {@link Builder#encoderHiddenSize(int)} each prefix layer holds a small
 * tanh MLP (see {@link PrefixEncoderLayer}) instead of the prefixes; HF PEFT shares one MLP across
 * layers, here each core has its own. After training, {@link #foldReparameterization(PeftModel)}
 * replaces the MLP's output by fixed prefixes stored in the layers' configurations (they travel with
 * {@code clone()}, the configuration JSON and {@code ModelSerializer}); training a folded model is
 * refused until {@link #unfoldReparameterization(PeftModel)}. Prefix tuning cannot be merged into
 * stock layers ({@link PeftModel#mergeAndUnload()} refuses it). The prefix parameters take the
 * updater of each core's key projection. The graph's first input must be the tokens
 * {@code [batch, time]} (as in {@code Transformers.decoder()}).
 *
 * <p>Adapter files: {@link org.peft4j.core.PeftModel#saveAdapter} writes PEFT's
 * {@code PREFIX_TUNING} layout, {@code prompt_embeddings [p, num_layers·2·token_dim]} holding the
 * prefixes inference needs (the MLP's output when reparameterised), plus, while the MLP is live
 * (not folded), the MLP's weights so training can resume; see {@link PrefixEncoderLayer} for the
 * names. A folded model saves the prefixes only and loads back as plain prefixes.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe. Folding changes the model: not
 * while another thread uses it.
 */
public final class PrefixConfig implements UntargetedConfig {

    /** The {@code peft_type} of this method's adapter files. */
    public static final String PEFT_TYPE = "PREFIX_TUNING";

    private final int numVirtualTokens;
    private final int encoderHiddenSize;
    private final Targeting targeting;

    private PrefixConfig(Builder b, Targeting targeting) {
        this.numVirtualTokens = b.numVirtualTokens;
        this.encoderHiddenSize = b.encoderHiddenSize;
        this.targeting = targeting;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this config's values, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.numVirtualTokens = numVirtualTokens;
        b.encoderHiddenSize = encoderHiddenSize;
        b.targeting(targeting);
        return b;
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    /** {@code p}, the prefix length (0: the base model exactly). */
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    /** Hidden size of the reparameterisation MLP; 0 for plain prefixes. */
    public int encoderHiddenSize() {
        return encoderHiddenSize;
    }

    /** PEFT's {@code prefix_projection}: whether an MLP produces the prefixes. */
    public boolean prefixProjection() {
        return encoderHiddenSize > 0;
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    /**
     * Per {@link AttentionCore} vertex: {@link GraphEdit#add} of its {@link PrefixEncoderLayer}
     * and {@link GraphEdit#replace(String, GraphVertex, String...)} of the core.
     *
     * @throws IllegalArgumentException if the graph has no attention core, or a core's key or value
     *     input is not a layer with a known width
     */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        List<GraphEdit> edits = new ArrayList<>();
        String tokens = conf.getNetworkInputs().get(0);
        List<String> cores = attentionCores(base, AttentionCore.class);
        long[] firstWidths = null;
        for (int i = 0; i < cores.size(); i++) {
            String core = cores.get(i);
            AttentionCore ac = (AttentionCore) conf.getVertices().get(core);
            if (numVirtualTokens == 0) {
                edits.add(GraphEdit.replace(core, new PrefixAttentionCore(ac, 0)));
                continue;
            }
            List<String> in = conf.getVertexInputs().get(core);
            Layer k = Vertices.layerOf(conf, in.get(1));
            Layer v = Vertices.layerOf(conf, in.get(2));
            if (!(k instanceof FeedForwardLayer) || !(v instanceof FeedForwardLayer)) {
                throw new IllegalArgumentException("prefix tuning: the key and value inputs of attention core \""
                        + core + "\" (" + in.get(1) + ", " + in.get(2) + ") must be layers with nOut to size the prefixes");
            }
            long[] widths = {((FeedForwardLayer) k).getNOut(), ((FeedForwardLayer) v).getNOut()};
            if (firstWidths == null) {
                firstWidths = widths;
            } else if (!java.util.Arrays.equals(firstWidths, widths)) {
                throw new IllegalArgumentException("prefix tuning needs the same key and value widths in every attention "
                        + "core (PEFT's token_dim): \"" + cores.get(0) + "\" has dk=" + firstWidths[0] + ", dv="
                        + firstWidths[1] + ", \"" + core + "\" has dk=" + widths[0] + ", dv=" + widths[1]);
            }
            PrefixEncoderLayer prefix = new PrefixEncoderLayer(core, i, cores.size(), numVirtualTokens, widths[0],
                    widths[1], encoderHiddenSize);
            if (k instanceof BaseLayer) {
                prefix.setIUpdater(((BaseLayer) k).getIUpdater());
            }
            String prefixName = prefixName(core);
            edits.add(GraphEdit.add(prefixName, prefix, tokens));
            edits.add(GraphEdit.replace(core, new PrefixAttentionCore(ac, numVirtualTokens), prefixName));
        }
        if (edits.isEmpty()) {
            throw new IllegalArgumentException("prefix tuning: the graph has no attention core (AttentionCore vertex) "
                    + "to extend; build the base with org.peft4j.core.blocks.Transformers.decoder(). Vertices are: "
                    + Vertices.describeLayers(conf));
        }
        return edits;
    }

    /**
     * The vertices of exactly class {@code type} in topological order (block order of a decoder,
     * whatever the order of the configuration's vertex map): the order of PEFT's {@code num_layers}.
     */
    private static List<String> attentionCores(ComputationGraph g, Class<?> type) {
        List<String> out = new ArrayList<>();
        org.deeplearning4j.nn.graph.vertex.GraphVertex[] vertices = g.getVertices();
        for (int idx : g.topologicalSortOrder()) {
            String name = vertices[idx].getVertexName();
            GraphVertex v = g.getConfiguration().getVertices().get(name);
            if (v != null && v.getClass() == type) {
                out.add(name);
            }
        }
        return out;
    }

    /**
     * Hugging Face PEFT's {@code adapter_config.json} keys for prefix tuning: {@code peft_type},
     * {@code num_virtual_tokens}, {@code prefix_projection}, {@code encoder_hidden_size} (null for
     * plain prefixes), {@code num_transformer_submodules} 1, {@code modules_to_save}; the keys
     * describing the base ({@code token_dim}, {@code num_layers}, {@code num_attention_heads}) come
     * from the wrapped graph ({@link #toAdapterConfig(ComputationGraph)}). peft4j's extension key
     * {@code prefix_encoder_saved} says whether the file holds the reparameterisation MLP (see
     * {@link PrefixEncoderLayer}); without it the adapter loads as plain prefixes, as PEFT loads it.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new java.util.TreeMap<>();
        m.put("num_virtual_tokens", numVirtualTokens);
        m.put("token_dim", null);
        m.put("num_layers", null);
        m.put("num_attention_heads", null);
        m.put("num_transformer_submodules", 1);
        m.put("prefix_projection", prefixProjection());
        m.put("encoder_hidden_size", prefixProjection() ? encoderHiddenSize : null);
        m.put("peft4j", new java.util.TreeMap<>(Map.of("prefix_encoder_saved", prefixProjection())));
        return m;
    }

    /**
     * With the base's {@code token_dim} (key width of the attention cores), {@code num_layers} (how
     * many cores) and {@code num_attention_heads}, and {@code prefix_encoder_saved} false when the
     * MLP is folded (only the prefixes are saved then).
     */
    @Override
    public Map<String, Object> toAdapterConfig(ComputationGraph wrapped) {
        Map<String, Object> m = toAdapterConfig();
        ComputationGraphConfiguration conf = wrapped.getConfiguration();
        List<String> cores = attentionCores(wrapped, PrefixAttentionCore.class);
        m.put("num_layers", cores.size());
        if (!cores.isEmpty()) {
            PrefixAttentionCore first = (PrefixAttentionCore) conf.getVertices().get(cores.get(0));
            m.put("num_attention_heads", first.getHeads());
            Layer k = Vertices.layerOf(conf, conf.getVertexInputs().get(cores.get(0)).get(1));
            if (k instanceof FeedForwardLayer) {
                m.put("token_dim", ((FeedForwardLayer) k).getNOut());
            }
        }
        boolean folded = false;
        for (org.deeplearning4j.nn.api.Layer l : wrapped.getLayers()) {
            if (l.conf().getLayer() instanceof PrefixEncoderLayer) {
                folded |= ((PrefixEncoderLayer) l.conf().getLayer()).foldedPrefix() != null;
            }
        }
        m.put("peft4j", new java.util.TreeMap<>(Map.of("prefix_encoder_saved", prefixProjection() && !folded)));
        return m;
    }

    /** {@code token_dim}, {@code num_layers}, {@code num_attention_heads}: the shape of the base's attention. */
    @Override
    public Set<String> baseModelKeys() {
        return Set.of("token_dim", "num_layers", "num_attention_heads");
    }

    /** Prefix length, MLP size and trained modules fix the parameters. */
    @Override
    public String layoutSignature() {
        return peftType() + " p=" + numVirtualTokens + " e=" + encoderHiddenSize + " save=" + targeting.modulesToSave();
    }

    /** {@code block0.attn.core} → {@code block0.attn.prefix}; otherwise {@code <core>.prefix}. */
    static String prefixName(String core) {
        return core.endsWith(".core") ? core.substring(0, core.length() - ".core".length()) + ".prefix" : core + ".prefix";
    }

    private static List<org.deeplearning4j.nn.api.Layer> prefixLayers(PeftModel model) {
        List<org.deeplearning4j.nn.api.Layer> out = new ArrayList<>();
        for (org.deeplearning4j.nn.api.Layer l : model.graph().getLayers()) {
            if (l.conf().getLayer() instanceof PrefixEncoderLayer) {
                out.add(l);
            }
        }
        return out;
    }

    /**
     * Evaluates each prefix layer's reparameterisation MLP once and stores the resulting prefix
     * {@code [dk + dv, p]} in the layer's configuration; forward then uses it directly. For
     * inference: training a folded model throws an {@link IllegalStateException}.
     *
     * @return how many prefix layers were folded (0 for plain prefixes, which need no folding)
     * @throws IllegalStateException if already folded
     */
    public static int foldReparameterization(PeftModel model) {
        Objects.requireNonNull(model, "model must not be null");
        int n = 0;
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (org.deeplearning4j.nn.api.Layer l : prefixLayers(model)) {
                PrefixEncoderLayer c = (PrefixEncoderLayer) l.conf().getLayer();
                if (c.encoderHiddenSize() == 0) {
                    continue;
                }
                if (c.foldedPrefix() != null) {
                    throw new IllegalStateException("prefix layer \"" + c.getLayerName() + "\" is already folded; "
                            + "call unfoldReparameterization first");
                }
                INDArray p = ((PrefixEncoderLayerImpl) l).prefix().dup();
                c.setFoldedPrefix(p);
                n++;
            }
        }
        return n;
    }

    /** Drops the folded prefixes so the MLPs train again; returns how many layers were unfolded. */
    public static int unfoldReparameterization(PeftModel model) {
        Objects.requireNonNull(model, "model must not be null");
        int n = 0;
        for (org.deeplearning4j.nn.api.Layer l : prefixLayers(model)) {
            PrefixEncoderLayer c = (PrefixEncoderLayer) l.conf().getLayer();
            if (c.foldedPrefix() != null) {
                c.setFoldedPrefix(null);
                n++;
            }
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof PrefixConfig)) {
            return false;
        }
        PrefixConfig c = (PrefixConfig) o;
        return numVirtualTokens == c.numVirtualTokens && encoderHiddenSize == c.encoderHiddenSize
                && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(numVirtualTokens, encoderHiddenSize, targeting);
    }

    @Override
    public String toString() {
        return "PrefixConfig(numVirtualTokens=" + numVirtualTokens + ", encoderHiddenSize=" + encoderHiddenSize
                + ", modulesToSave=" + targeting.modulesToSave() + ")";
    }

    /** Builds a {@link PrefixConfig}; setters validate at once. */
    public static final class Builder extends ModulesToSaveBuilder<Builder> {
        private int numVirtualTokens = -1;
        private int encoderHiddenSize;

        private Builder() {
            super(Targeting.Scope.MODULES_TO_SAVE);
        }

        /** {@code p ≥ 0}: the prefix length (required; 0 gives the base model). */
        public Builder numVirtualTokens(int p) {
            if (p < 0) {
                throw new IllegalArgumentException("numVirtualTokens must not be negative; got " + p);
            }
            this.numVirtualTokens = p;
            return this;
        }

        /** Train the prefixes through a tanh MLP of this hidden size (PEFT's {@code prefix_projection}). */
        public Builder encoderHiddenSize(int size) {
            if (size <= 0) {
                throw new IllegalArgumentException("encoderHiddenSize must be positive; got " + size);
            }
            this.encoderHiddenSize = size;
            return this;
        }

        /** @throws IllegalStateException if numVirtualTokens was not set */
        public PrefixConfig build() {
            if (numVirtualTokens < 0) {
                throw new IllegalStateException("numVirtualTokens must be set (0 or more)");
            }
            return new PrefixConfig(this, buildTargeting());
        }
    }
}
