package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.testing.GradientChecks;

/**
 * Every hand-written backward pass of the blocks against finite differences (double precision).
 * A trainable dense layer sits below each block, so the epsilon each block passes down is checked
 * through that layer's gradient.
 */
class BlockGradientCheckTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    /** {@code [b, T]} mask with the last {@code pad[i]} steps of sequence i masked out. */
    static INDArray padMask(int t, int... pad) {
        INDArray m = Nd4j.ones(DataType.DOUBLE, pad.length, t);
        for (int i = 0; i < pad.length; i++) {
            for (int s = t - pad[i]; s < t; s++) {
                m.putScalar(i, s, 0.0);
            }
        }
        return m;
    }

    @Test
    void layerNormOnSequencesMatchesFiniteDifferences() {
        ComputationGraph g = BlockGraphs.aroundLayer(1, 3, 5, new LayerNorm(5), 5, 3);
        BlockGraphs.randomize(g, "block", 1.0, 11);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(2, 2, 3, 4), BlockGraphs.oneHot(3, 2, 3, 4)));
    }

    @Test
    void rmsNormOnSequencesMatchesFiniteDifferences() {
        ComputationGraph g = BlockGraphs.aroundLayer(4, 3, 5, new RmsNorm(5), 5, 3);
        BlockGraphs.randomize(g, "block", 1.0, 12);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(5, 2, 3, 4), BlockGraphs.oneHot(6, 2, 3, 4)));
    }

    @Test
    void normsOnRowsMatchFiniteDifferences() {
        for (Normalization n : new Normalization[] {new LayerNorm(5, 1e-3), new RmsNorm(5, 1e-3)}) {
            ComputationGraphConfiguration.GraphBuilder b = BlockGraphs.base(7).graphBuilder().addInputs("in")
                    .addLayer("below", new DenseLayer.Builder().nIn(3).nOut(5).activation(Activation.TANH).build(),
                            new RnnToFeedForwardPreProcessor(RNNFormat.NCW), "in")
                    .addLayer("block", n, "below");
            ComputationGraph g = BlockGraphs.finishRows(b, "block", 5, 3);
            BlockGraphs.randomize(g, "block", 1.0, 13);
            assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(8, 2, 3, 3), BlockGraphs.oneHot(9, 2, 3, 3)),
                    n.getClass().getSimpleName());
        }
    }

    @Test
    void positionalEmbeddingMatchesFiniteDifferences() {
        ComputationGraph g = BlockGraphs.aroundLayer(10, 3, 4, new PositionalEmbedding(6, 4, 0.5), 4, 3);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(11, 2, 3, 4), BlockGraphs.oneHot(12, 2, 3, 4)));
    }

    @Test
    void causalAttentionCoreOnPerStepProjectionsMatchesFiniteDifferences() {
        ComputationGraph g = coreGraph(20, true);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(21, 2, 3, 4), BlockGraphs.oneHot(22, 2, 3, 4)));
    }

    @Test
    void attentionCoreWithPaddingMaskMatchesFiniteDifferences() {
        INDArray mask = padMask(5, 0, 2);
        for (boolean causal : new boolean[] {false, true}) {
            ComputationGraph g = coreGraph(23, causal);
            assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(24, 2, 3, 5), BlockGraphs.oneHot(25, 2, 3, 5),
                    mask, mask), "causal=" + causal);
        }
    }

    /** {@code in → below → q, k, v (dense per step) → core (2 heads) → out}. */
    private static ComputationGraph coreGraph(long seed, boolean causal) {
        ComputationGraphConfiguration.GraphBuilder b = BlockGraphs.below(seed, 3, 4);
        for (String p : new String[] {"q", "k", "v"}) {
            b.addLayer(p, new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.IDENTITY).build(),
                    new RnnToFeedForwardPreProcessor(RNNFormat.NCW), "below.rnn");
        }
        b.addVertex("core", new AttentionCore(2, causal), "q", "k", "v");
        return BlockGraphs.finish(b, "core", 4, 3);
    }

    @Test
    void fusedMultiHeadAttentionMatchesFiniteDifferences() {
        MultiHeadAttention mha = MultiHeadAttention.builder().nIn(4).nOut(3).heads(2).headSize(2).causal(true)
                .bias(true).build();
        ComputationGraph g = BlockGraphs.aroundLayer(30, 3, 4, mha, 3, 3);
        BlockGraphs.randomize(g, "block", 0.7, 31);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(32, 2, 3, 4), BlockGraphs.oneHot(33, 2, 3, 4)));
    }

    @Test
    void fusedMultiHeadAttentionWithPaddingMaskMatchesFiniteDifferences() {
        MultiHeadAttention mha = MultiHeadAttention.builder().nIn(4).nOut(4).heads(2).build();
        ComputationGraph g = BlockGraphs.aroundLayer(34, 3, 4, mha, 4, 3);
        INDArray mask = padMask(4, 1, 0);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(35, 2, 3, 4), BlockGraphs.oneHot(36, 2, 3, 4),
                mask, mask));
    }

    @Test
    void tinyDecoderEndToEndMatchesFiniteDifferences() {
        ComputationGraph g = Transformers.decoder().vocabSize(5).maxLength(6).dModel(4).heads(2).layers(1).mlpRatio(2)
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(40).build();
        for (String ln : new String[] {"block0.ln1", "block0.ln2", "final.ln"}) {
            BlockGraphs.randomize(g, ln, 1.0, 41);
        }
        INDArray tokens = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4}, {2, 2, 1, 0}});
        INDArray labels = Nd4j.createFromArray(new double[][] {{3, 0, 4, 1}, {2, 1, 0, 3}}).reshape(2, 1, 4);
        INDArray mask = padMask(4, 0, 1);
        assertTrue(GradientChecks.passes(g, tokens, labels, mask, mask));
    }
}
