package org.peft4j.core.blocks;

import java.util.Objects;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.dropout.Dropout;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.PreprocessorVertex;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToRnnPreProcessor;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Builders of transformer models as ordinary DL4J {@link ComputationGraph}s.
 *
 * <p>Thread-safety: stateless; each builder is for one thread.
 */
public final class Transformers {

    /** Name of the graph input: token ids {@code [batch, time]}. */
    public static final String INPUT = "tokens";
    /** Name of the output layer: next-token probabilities {@code [batch, vocabSize, time]}. */
    public static final String OUTPUT = "head";
    /** Name of the token embedding. */
    public static final String TOKEN_EMBEDDING = "embed.tokens";
    /** Name of the positional embedding. */
    public static final String POSITION_EMBEDDING = "embed.pos";
    /** Name of the final normalization. */
    public static final String FINAL_NORM = "final.ln";

    private Transformers() {
    }

    /** A builder of a GPT-style decoder; see {@link DecoderBuilder}. */
    public static DecoderBuilder decoder() {
        return new DecoderBuilder();
    }

    /** The name prefix of block {@code i}: {@code block{i}}. */
    public static String block(int i) {
        return "block" + i;
    }

    /**
     * A GPT-style (pre-norm) decoder-only language model. The graph, input {@code tokens}
     * {@code [batch, time]} (token ids as floating-point values, time ≤ maxLength) with an optional
     * feature mask {@code [batch, time]} (1 = real token), output {@code head}:
     * <pre>
     * tokens → embed.tokens (EmbeddingSequenceLayer, [b, d, T]) → embed.pos (PositionalEmbedding)  = x
     * for each block i:
     *   block{i}.ln1 (LayerNorm) → block{i}.attn.q | .k | .v  (DenseLayer, identity, per time step)
     *     → block{i}.attn.core (AttentionCore, causal) → block{i}.attn.o (DenseLayer, per time step)
     *     → block{i}.attn.reshape (PreprocessorVertex, back to [b, d, T])
     *   block{i}.attn.residual = x + attn                       (ElementWiseVertex Add)
     *   block{i}.ln2 (LayerNorm) → block{i}.mlp.up (DenseLayer, GELU, mlpRatio·d)
     *     → block{i}.mlp.down (DenseLayer, identity, d) → block{i}.mlp.reshape
     *   block{i}.mlp.residual = block{i}.attn.residual + mlp     (ElementWiseVertex Add) = x
     * final.ln (LayerNorm) → head (RnnOutputLayer, softmax over vocabSize, loss SPARSE_MCXENT)
     * </pre>
     * Labels are the class ids {@code [batch, 1, time]} (sparse; DL4J's {@code LossSparseMCXENT}
     * works with {@code RnnOutputLayer} and label masks in 1.0.0-M2.1). The dense layers are stock
     * {@code DenseLayer}s with an explicit {@code RnnToFeedForwardPreProcessor}, so tuners adapt them
     * like any dense layer; their output is DL4J's time-distributed {@code [b·T, f]}, which the
     * attention core reads directly and the {@code *.reshape} vertices turn back into {@code [b, f, T]}.
     * Dropout (probability {@code p} of dropping) is DL4J input dropout on {@code attn.o} (the
     * attention context) and on {@code mlp.down} (the MLP hidden activations). The graph does not use
     * {@code setInputTypes} (which overwrites the embedding's vocabulary in 1.0.0-M2.1): every
     * {@code nIn} is explicit.
     *
     * <p>Setters validate at once; {@link #build()} checks the combination. Not thread-safe.
     */
    public static final class DecoderBuilder {
        private long vocabSize = -1;
        private long maxLength = -1;
        private long dModel = -1;
        private int heads = -1;
        private int layers = -1;
        private int mlpRatio = 4;
        private double dropout;
        private long seed = 12345;
        private IUpdater updater = new Adam(1e-3);
        private DataType dataType = DataType.FLOAT;
        private IActivation mlpActivation = Activation.GELU.getActivationFunction();

        private DecoderBuilder() {
        }

        private static long positive(String what, long v) {
            if (v <= 0) {
                throw new IllegalArgumentException(what + " must be positive, got " + v);
            }
            return v;
        }

        /** Number of token ids; ids run from 0 to vocabSize − 1. Required. */
        public DecoderBuilder vocabSize(long vocabSize) {
            this.vocabSize = positive("vocabSize", vocabSize);
            return this;
        }

        /** Longest sequence (size of the positional table). Required. */
        public DecoderBuilder maxLength(long maxLength) {
            this.maxLength = positive("maxLength", maxLength);
            return this;
        }

        /** Width {@code d} of the residual stream. Required; divisible by heads. */
        public DecoderBuilder dModel(long dModel) {
            this.dModel = positive("dModel", dModel);
            return this;
        }

        /** Attention heads per block. Required. */
        public DecoderBuilder heads(int heads) {
            this.heads = (int) positive("heads", heads);
            return this;
        }

        /** Number of blocks. Required. */
        public DecoderBuilder layers(int layers) {
            this.layers = (int) positive("layers", layers);
            return this;
        }

        /** Width of the MLP hidden layer as a multiple of dModel; default 4. */
        public DecoderBuilder mlpRatio(int mlpRatio) {
            this.mlpRatio = (int) positive("mlpRatio", mlpRatio);
            return this;
        }

        /** Probability of dropping an activation, in [0, 1); default 0 (no dropout). */
        public DecoderBuilder dropout(double dropout) {
            if (!(dropout >= 0 && dropout < 1)) {
                throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
            }
            this.dropout = dropout;
            return this;
        }

        /** Seed of the parameter initialization; default 12345. */
        public DecoderBuilder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** Updater of every parameter; default Adam(1e-3). */
        public DecoderBuilder updater(IUpdater updater) {
            this.updater = Objects.requireNonNull(updater, "updater must not be null");
            return this;
        }

        /** Network data type; default FLOAT. */
        public DecoderBuilder dataType(DataType dataType) {
            Objects.requireNonNull(dataType, "dataType must not be null");
            if (!dataType.isFPType()) {
                throw new IllegalArgumentException("dataType must be a floating-point type, got " + dataType);
            }
            this.dataType = dataType;
            return this;
        }

        /**
         * Activation of {@code mlp.up}; default DL4J's {@code Activation.GELU} (the sigmoid
         * approximation {@code x·σ(1.702·x)}, see {@link ExactGelu} for the erf form BERT uses).
         */
        public DecoderBuilder mlpActivation(IActivation activation) {
            this.mlpActivation = Objects.requireNonNull(activation, "mlpActivation must not be null");
            return this;
        }

        private void require(String what, long v) {
            if (v <= 0) {
                throw new IllegalStateException(what + " was not set; call " + what + "(...) before build()");
            }
        }

        /** The configuration, validated. */
        public ComputationGraphConfiguration configuration() {
            require("vocabSize", vocabSize);
            require("maxLength", maxLength);
            require("dModel", dModel);
            require("heads", heads);
            require("layers", layers);
            if (dModel % heads != 0) {
                throw new IllegalArgumentException("dModel " + dModel + " must be divisible by heads " + heads
                        + " (head size = dModel / heads)");
            }
            long d = dModel;
            long hidden = Math.multiplyExact(d, (long) mlpRatio);
            ComputationGraphConfiguration.GraphBuilder g = new NeuralNetConfiguration.Builder()
                    .seed(seed)
                    .dataType(dataType)
                    .updater(updater)
                    .weightInit(WeightInit.XAVIER)
                    .graphBuilder()
                    .addInputs(INPUT);
            g.addLayer(TOKEN_EMBEDDING, new EmbeddingSequenceLayer.Builder().nIn(vocabSize).nOut(d).hasBias(false)
                    .outputDataFormat(RNNFormat.NCW).build(), INPUT);
            g.addLayer(POSITION_EMBEDDING, new PositionalEmbedding(maxLength, d), TOKEN_EMBEDDING);
            String x = POSITION_EMBEDDING;
            for (int i = 0; i < layers; i++) {
                String p = block(i);
                g.addLayer(p + ".ln1", new LayerNorm(d), x);
                for (String proj : new String[] {"q", "k", "v"}) {
                    g.addLayer(p + ".attn." + proj, dense(d, d, Activation.IDENTITY.getActivationFunction(), 0),
                            perStep(), p + ".ln1");
                }
                g.addVertex(p + ".attn.core", new AttentionCore(heads, true), p + ".attn.q", p + ".attn.k", p + ".attn.v");
                g.addLayer(p + ".attn.o", dense(d, d, Activation.IDENTITY.getActivationFunction(), dropout), perStep(),
                        p + ".attn.core");
                g.addVertex(p + ".attn.reshape", new PreprocessorVertex(new FeedForwardToRnnPreProcessor(RNNFormat.NCW)),
                        p + ".attn.o");
                g.addVertex(p + ".attn.residual", new ElementWiseVertex(ElementWiseVertex.Op.Add), x, p + ".attn.reshape");
                g.addLayer(p + ".ln2", new LayerNorm(d), p + ".attn.residual");
                g.addLayer(p + ".mlp.up", dense(d, hidden, mlpActivation, 0), perStep(), p + ".ln2");
                g.addLayer(p + ".mlp.down", dense(hidden, d, Activation.IDENTITY.getActivationFunction(), dropout),
                        p + ".mlp.up");
                g.addVertex(p + ".mlp.reshape", new PreprocessorVertex(new FeedForwardToRnnPreProcessor(RNNFormat.NCW)),
                        p + ".mlp.down");
                g.addVertex(p + ".mlp.residual", new ElementWiseVertex(ElementWiseVertex.Op.Add), p + ".attn.residual",
                        p + ".mlp.reshape");
                x = p + ".mlp.residual";
            }
            g.addLayer(FINAL_NORM, new LayerNorm(d), x);
            g.addLayer(OUTPUT, new RnnOutputLayer.Builder(LossFunctions.LossFunction.SPARSE_MCXENT).nIn(d).nOut(vocabSize)
                    .activation(Activation.SOFTMAX).dataFormat(RNNFormat.NCW).build(), FINAL_NORM);
            g.setOutputs(OUTPUT);
            return g.build();
        }

        /** Builds and initializes the graph. */
        public ComputationGraph build() {
            ComputationGraph graph = new ComputationGraph(configuration());
            graph.init();
            return graph;
        }

        private static DenseLayer dense(long nIn, long nOut, IActivation act, double dropout) {
            DenseLayer.Builder b = new DenseLayer.Builder().nIn(nIn).nOut(nOut).activation(act);
            if (dropout > 0) {
                b.dropOut(new Dropout(1.0 - dropout));
            }
            return b.build();
        }

        private static RnnToFeedForwardPreProcessor perStep() {
            return new RnnToFeedForwardPreProcessor(RNNFormat.NCW);
        }
    }
}
