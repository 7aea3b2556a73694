package org.peft4j.core.blocks;

import java.util.Objects;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.dropout.Dropout;
import org.deeplearning4j.nn.conf.graph.PreprocessorVertex;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.GlobalPoolingLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.PoolingType;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Builders of transformer models as ordinary DL4J {@link ComputationGraph}s: a GPT-style decoder
 * ({@link #decoder()}) and a BERT-style encoder ({@link #encoder()}). Both use the same layer names
 * ({@code embed.tokens}, {@code embed.pos}, {@code block{i}.attn.q/k/v/o}, {@code block{i}.mlp.up/down},
 * {@code block{i}.ln1/ln2}), so a tuner configuration written for one finds its targets in the other.
 *
 * <p>Thread-safety: stateless; each builder is for one thread.
 */
public final class Transformers {

    /** Name of the graph input: token ids {@code [batch, time]}. */
    public static final String INPUT = "tokens";
    /** Name of the decoder's output layer: next-token probabilities {@code [batch, vocabSize, time]}. */
    public static final String OUTPUT = "head";
    /** Name of the token embedding. */
    public static final String TOKEN_EMBEDDING = "embed.tokens";
    /** Name of the positional embedding. */
    public static final String POSITION_EMBEDDING = "embed.pos";
    /** Name of the decoder's final normalization. */
    public static final String FINAL_NORM = "final.ln";
    /** Name of the encoder's embedding normalization. */
    public static final String EMBEDDING_NORM = "embed.ln";
    /** Name of the encoder's masked mean pooling, {@code [batch, dModel]}: the output of a headless encoder. */
    public static final String POOL = "pool";
    /** Name of the encoder's optional classification head, {@code [batch, classes]}. */
    public static final String CLASSIFIER = "classifier";
    /**
     * Name of the vertex that turns the blocks' time-distributed rows back into a sequence
     * {@code [batch, dModel, time]} for the decoder's {@link #OUTPUT} and the encoder's {@link #POOL}.
     */
    public static final String SEQUENCE = "final.seq";

    private Transformers() {
    }

    /** A builder of a GPT-style decoder; see {@link DecoderBuilder}. */
    public static DecoderBuilder decoder() {
        return new DecoderBuilder();
    }

    /** A builder of a BERT-style encoder; see {@link EncoderBuilder}. */
    public static EncoderBuilder encoder() {
        return new EncoderBuilder();
    }

    /** The name prefix of block {@code i}: {@code block{i}}. */
    public static String block(int i) {
        return "block" + i;
    }

    /**
     * The settings both builders share: sizes, dropout, seed, updater, data type and the MLP
     * activation. Setters validate at once and return the concrete builder. Not thread-safe.
     *
     * @param <B> the concrete builder
     */
    public abstract static class ModelBuilder<B extends ModelBuilder<B>> {
        long vocabSize = -1;
        long maxLength = -1;
        long dModel = -1;
        int heads = -1;
        int layers = -1;
        int mlpRatio = 4;
        double dropout;
        long seed = 12345;
        IUpdater updater = new Adam(1e-3);
        DataType dataType = DataType.FLOAT;
        IActivation mlpActivation;

        ModelBuilder(IActivation mlpActivation) {
            this.mlpActivation = mlpActivation;
        }

        @SuppressWarnings("unchecked")
        private B self() {
            return (B) this;
        }

        static long positive(String what, long v) {
            if (v <= 0) {
                throw new IllegalArgumentException(what + " must be positive, got " + v);
            }
            return v;
        }

        /** Number of token ids; ids run from 0 to vocabSize − 1. Required. */
        public B vocabSize(long vocabSize) {
            this.vocabSize = positive("vocabSize", vocabSize);
            return self();
        }

        /** Longest sequence (size of the positional table). Required. */
        public B maxLength(long maxLength) {
            this.maxLength = positive("maxLength", maxLength);
            return self();
        }

        /** Width {@code d} of the residual stream. Required; divisible by heads. */
        public B dModel(long dModel) {
            this.dModel = positive("dModel", dModel);
            return self();
        }

        /** Attention heads per block. Required. */
        public B heads(int heads) {
            this.heads = (int) positive("heads", heads);
            return self();
        }

        /** Number of blocks. Required. */
        public B layers(int layers) {
            this.layers = (int) positive("layers", layers);
            return self();
        }

        /** Width of the MLP hidden layer as a multiple of dModel; default 4. */
        public B mlpRatio(int mlpRatio) {
            this.mlpRatio = (int) positive("mlpRatio", mlpRatio);
            return self();
        }

        /** Probability of dropping an activation, in [0, 1); default 0 (no dropout). */
        public B dropout(double dropout) {
            if (!(dropout >= 0 && dropout < 1)) {
                throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
            }
            this.dropout = dropout;
            return self();
        }

        /** Seed of the parameter initialization; default 12345. */
        public B seed(long seed) {
            this.seed = seed;
            return self();
        }

        /** Updater of every parameter; default Adam(1e-3). */
        public B updater(IUpdater updater) {
            this.updater = Objects.requireNonNull(updater, "updater must not be null");
            return self();
        }

        /** Network data type; default FLOAT. */
        public B dataType(DataType dataType) {
            Objects.requireNonNull(dataType, "dataType must not be null");
            if (!dataType.isFPType()) {
                throw new IllegalArgumentException("dataType must be a floating-point type, got " + dataType);
            }
            this.dataType = dataType;
            return self();
        }

        /**
         * Activation of {@code mlp.up}. The decoder's default is DL4J's {@code Activation.GELU} (the
         * sigmoid approximation {@code x·σ(1.702·x)}), the encoder's is {@link ExactGelu} (the erf form
         * BERT uses).
         */
        public B mlpActivation(IActivation activation) {
            this.mlpActivation = Objects.requireNonNull(activation, "mlpActivation must not be null");
            return self();
        }

        private static void require(String what, long v) {
            if (v <= 0) {
                throw new IllegalStateException(what + " was not set; call " + what + "(...) before build()");
            }
        }

        /** The configuration, validated. */
        public abstract ComputationGraphConfiguration configuration();

        /** Builds and initializes the graph. */
        public ComputationGraph build() {
            ComputationGraph graph = new ComputationGraph(configuration());
            graph.init();
            return graph;
        }

        /** Checks the required sizes and starts a graph with input {@link #INPUT}. */
        ComputationGraphConfiguration.GraphBuilder start() {
            require("vocabSize", vocabSize);
            require("maxLength", maxLength);
            require("dModel", dModel);
            require("heads", heads);
            require("layers", layers);
            if (dModel % heads != 0) {
                throw new IllegalArgumentException("dModel " + dModel + " must be divisible by heads " + heads
                        + " (head size = dModel / heads)");
            }
            Math.multiplyExact(dModel, (long) mlpRatio);
            return new NeuralNetConfiguration.Builder()
                    .seed(seed)
                    .dataType(dataType)
                    .updater(updater)
                    .weightInit(WeightInit.XAVIER)
                    .graphBuilder()
                    .addInputs(INPUT);
        }

        /**
         * {@code embed.tokens} (no bias, a sequence {@code [b, d, T]}) → {@code embed.pos}, which emits
         * time-distributed rows {@code [b·T, d]}; returns the name of the last vertex.
         */
        String embeddings(ComputationGraphConfiguration.GraphBuilder g) {
            g.addLayer(TOKEN_EMBEDDING, new EmbeddingSequenceLayer.Builder().nIn(vocabSize).nOut(dModel).hasBias(false)
                    .outputDataFormat(RNNFormat.NCW).build(), INPUT);
            g.addLayer(POSITION_EMBEDDING, new PositionalEmbedding(maxLength, dModel, PositionalEmbedding.DEFAULT_INIT_STD,
                    true), TOKEN_EMBEDDING);
            return POSITION_EMBEDDING;
        }

        /**
         * The attention sub-block of block {@code p} reading rows {@code in}: q/k/v → core → o, then
         * {@code p.attn.residual = residual + attention}; returns the residual's name.
         */
        String attention(ComputationGraphConfiguration.GraphBuilder g, String p, String in, String residual,
                         boolean causal) {
            IActivation id = Activation.IDENTITY.getActivationFunction();
            for (String proj : new String[] {"q", "k", "v"}) {
                g.addLayer(p + ".attn." + proj, dense(dModel, dModel, id, 0), in);
            }
            g.addVertex(p + ".attn.core", new AttentionCore(heads, causal, true), p + ".attn.q", p + ".attn.k",
                    p + ".attn.v");
            g.addLayer(p + ".attn.o", dense(dModel, dModel, id, dropout), p + ".attn.core");
            g.addVertex(p + ".attn.residual", new ResidualAdd(), residual, p + ".attn.o");
            return p + ".attn.residual";
        }

        /**
         * The MLP sub-block of block {@code p} reading rows {@code in}: up → down, then
         * {@code p.mlp.residual = residual + mlp}; returns the residual's name.
         */
        String mlp(ComputationGraphConfiguration.GraphBuilder g, String p, String in, String residual) {
            long hidden = dModel * mlpRatio;
            g.addLayer(p + ".mlp.up", dense(dModel, hidden, mlpActivation, 0), in);
            g.addLayer(p + ".mlp.down", dense(hidden, dModel, Activation.IDENTITY.getActivationFunction(), dropout),
                    p + ".mlp.up");
            g.addVertex(p + ".mlp.residual", new ResidualAdd(), residual, p + ".mlp.down");
            return p + ".mlp.residual";
        }

        /** {@link #SEQUENCE}: rows {@code x} back to a sequence {@code [b, d, T]} (and the mask to {@code [b, T]}). */
        static String sequence(ComputationGraphConfiguration.GraphBuilder g, String x) {
            g.addVertex(SEQUENCE, new PreprocessorVertex(new RowsToSequence()), x);
            return SEQUENCE;
        }

        private static Dense dense(long nIn, long nOut, IActivation act, double dropout) {
            DenseLayer.Builder b = new DenseLayer.Builder().nIn(nIn).nOut(nOut).activation(act);
            if (dropout > 0) {
                b.dropOut(new Dropout(1.0 - dropout));
            }
            return Dense.of(b.build());
        }

    }

    /**
     * A GPT-style (pre-norm) decoder-only language model. The graph, input {@code tokens}
     * {@code [batch, time]} (token ids as floating-point values, time ≤ maxLength) with an optional
     * feature mask {@code [batch, time]} (1 = real token), output {@code head}:
     * <pre>
     * tokens → embed.tokens (EmbeddingSequenceLayer, [b, d, T]) → embed.pos (PositionalEmbedding, rows)  = x
     * for each block i:
     *   block{i}.ln1 (LayerNorm) → block{i}.attn.q | .k | .v  (Dense, identity)
     *     → block{i}.attn.core (AttentionCore, causal) → block{i}.attn.o (Dense)
     *   block{i}.attn.residual = x + attn                       (ResidualAdd)
     *   block{i}.ln2 (LayerNorm) → block{i}.mlp.up (Dense, GELU, mlpRatio·d)
     *     → block{i}.mlp.down (Dense, identity, d)
     *   block{i}.mlp.residual = block{i}.attn.residual + mlp     (ResidualAdd) = x
     * final.ln (LayerNorm) → final.seq (back to [b, d, T])
     *   → head (RnnOutputLayer, softmax over vocabSize, loss SPARSE_MCXENT)
     * </pre>
     * Labels are the class ids {@code [batch, 1, time]} (sparse; DL4J's {@code LossSparseMCXENT}
     * works with {@code RnnOutputLayer} and label masks in 1.0.0-M2.1). Between {@code embed.pos} and
     * {@link #SEQUENCE} every activation is DL4J's time-distributed rows {@code [b·T, d]} (row
     * {@code b + B·t}, as {@code RnnToFeedForwardPreProcessor} lays them out) with the per-row mask
     * {@code [b·T, 1]}: the dense layers ({@link Dense}, DL4J's {@code DenseLayer} with peft4j's
     * implementation) have no preprocessor, so tuners adapt them like any dense layer and no layer pays
     * a conversion; the inputs, outputs and masks at the graph's boundary are sequences. Dropout (probability {@code p} of dropping) is DL4J input dropout on {@code attn.o} (the
     * attention context) and on {@code mlp.down} (the MLP hidden activations). The graph does not use
     * {@code setInputTypes} (which overwrites the embedding's vocabulary in 1.0.0-M2.1): every
     * {@code nIn} is explicit.
     *
     * <p>Setters validate at once; {@link #build()} checks the combination. Not thread-safe.
     */
    public static final class DecoderBuilder extends ModelBuilder<DecoderBuilder> {

        private DecoderBuilder() {
            super(Activation.GELU.getActivationFunction());
        }

        @Override
        public ComputationGraphConfiguration configuration() {
            ComputationGraphConfiguration.GraphBuilder g = start();
            String x = embeddings(g);
            for (int i = 0; i < layers; i++) {
                String p = block(i);
                g.addLayer(p + ".ln1", new LayerNorm(dModel), x);
                String attn = attention(g, p, p + ".ln1", x, true);
                g.addLayer(p + ".ln2", new LayerNorm(dModel), attn);
                x = mlp(g, p, p + ".ln2", attn);
            }
            g.addLayer(FINAL_NORM, new LayerNorm(dModel), x);
            g.addLayer(OUTPUT, new RnnOutputLayer.Builder(LossFunctions.LossFunction.SPARSE_MCXENT).nIn(dModel)
                    .nOut(vocabSize).activation(Activation.SOFTMAX).dataFormat(RNNFormat.NCW).build(),
                    sequence(g, FINAL_NORM));
            g.setOutputs(OUTPUT);
            return g.build();
        }
    }

    /**
     * A BERT-style (post-norm, bidirectional) encoder with masked mean pooling, the shape of
     * sentence-transformers models such as all-MiniLM-L6-v2. Input {@code tokens} {@code [batch, time]}
     * (token ids as floating-point values, time ≤ maxLength) with an optional feature mask
     * {@code [batch, time]} (1 = real token, 0 = padding); output {@code pool} {@code [batch, d]}, or
     * {@code classifier} {@code [batch, classes]} when {@link #classes(int)} asks for a head:
     * <pre>
     * tokens → embed.tokens (EmbeddingSequenceLayer, no bias, [b, d, T]) → embed.pos (PositionalEmbedding, rows)
     *   → embed.ln (LayerNorm)                                         = x
     * for each block i:
     *   x → block{i}.attn.q | .k | .v  (Dense, identity)
     *     → block{i}.attn.core (AttentionCore, not causal, key-padding mask) → block{i}.attn.o
     *   block{i}.attn.residual = x + attn;   block{i}.ln1 = LayerNorm(block{i}.attn.residual)
     *   block{i}.ln1 → block{i}.mlp.up (Dense, ExactGelu, mlpRatio·d) → block{i}.mlp.down
     *   block{i}.mlp.residual = block{i}.ln1 + mlp;   block{i}.ln2 = LayerNorm(block{i}.mlp.residual) = x
     * final.seq (back to [b, d, T]) → pool (GlobalPoolingLayer AVG over the unmasked time steps, [b, d])
     *   [→ classifier (OutputLayer, softmax, MCXENT, classes)]
     * </pre>
     * As in the decoder, the activations between {@code embed.pos} and {@link #SEQUENCE} are
     * time-distributed rows {@code [b·T, d]}. The names are the decoder's, with {@code ln1}/{@code ln2} the post-attention and post-MLP
     * norms, so tuner configurations written for the decoder (LoRA on {@code attn.q|v}, IA3 on
     * {@code attn.k|v} and {@code mlp.down}, Houlsby/Pfeiffer adapters after {@code attn.o}/{@code mlp.down})
     * apply unchanged. Every LayerNorm uses {@link #layerNormEps(double)} (default {@code 1e-12}, BERT's).
     *
     * <p>Token types: BERT adds a token-type (segment) embedding row to every position. This encoder
     * is single-segment (type 0 everywhere), so that row is a constant vector added at every time step
     * and is folded into the positional table: {@code embed.pos.W[t] = position[t] + tokenType[0]}
     * (what {@code org.peft4j.core.onnx.BertOnnxImport} writes). Sentence pairs with type 1 are not
     * represented.
     *
     * <p>Padding: the key-padding mask keeps padded tokens out of every attention, and the pooling
     * averages the unmasked steps only, so padding never changes {@code pool}. Dropout (probability
     * {@code p}) is DL4J input dropout on {@code attn.o} and {@code mlp.down}, as in the decoder.
     *
     * <p>Setters validate at once; {@link #build()} checks the combination. Not thread-safe.
     */
    public static final class EncoderBuilder extends ModelBuilder<EncoderBuilder> {
        /** BERT's LayerNorm epsilon. */
        public static final double BERT_LAYER_NORM_EPS = 1e-12;

        private double layerNormEps = BERT_LAYER_NORM_EPS;
        private int classes;

        private EncoderBuilder() {
            super(new ExactGelu());
        }

        /** The {@code eps} of every LayerNorm; default {@code 1e-12} (BERT). */
        public EncoderBuilder layerNormEps(double eps) {
            if (!(eps > 0) || Double.isInfinite(eps)) {
                throw new IllegalArgumentException("layerNormEps must be a positive finite number, got " + eps);
            }
            this.layerNormEps = eps;
            return this;
        }

        /**
         * Adds the classification head {@code classifier} (OutputLayer, softmax, MCXENT) with
         * {@code classes} outputs after {@code pool}; labels are one-hot {@code [batch, classes]}.
         * Without this call the graph has no head and its output is {@code pool}.
         */
        public EncoderBuilder classes(int classes) {
            if (classes < 2) {
                throw new IllegalArgumentException("classes must be at least 2, got " + classes);
            }
            this.classes = classes;
            return this;
        }

        @Override
        public ComputationGraphConfiguration configuration() {
            ComputationGraphConfiguration.GraphBuilder g = start();
            g.addLayer(EMBEDDING_NORM, new LayerNorm(dModel, layerNormEps), embeddings(g));
            String x = EMBEDDING_NORM;
            for (int i = 0; i < layers; i++) {
                String p = block(i);
                g.addLayer(p + ".ln1", new LayerNorm(dModel, layerNormEps), attention(g, p, x, x, false));
                g.addLayer(p + ".ln2", new LayerNorm(dModel, layerNormEps), mlp(g, p, p + ".ln1", p + ".ln1"));
                x = p + ".ln2";
            }
            g.addLayer(POOL, new GlobalPoolingLayer.Builder(PoolingType.AVG).collapseDimensions(true).build(),
                    sequence(g, x));
            if (classes > 0) {
                g.addLayer(CLASSIFIER, new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(dModel)
                        .nOut(classes).activation(Activation.SOFTMAX).build(), POOL);
                g.setOutputs(CLASSIFIER);
            } else {
                g.setOutputs(POOL);
            }
            return g.build();
        }
    }
}
