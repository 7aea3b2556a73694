package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.testing.GradientChecks;

/**
 * {@link AttentionCore#withShiftedSparseAttention}: S²-Attn while training, full attention at
 * inference, gradient-checked, and causal in a whole decoder.
 */
class ShiftedSparseAttentionCoreTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    /** {@code in → below → q, k, v (dense per step) → core → out}, q/k/v of width {@code width}. */
    private static ComputationGraph coreGraph(long seed, AttentionCore core, int width) {
        ComputationGraphConfiguration.GraphBuilder b = BlockGraphs.below(seed, 3, width);
        for (String p : new String[] {"q", "k", "v"}) {
            b.addLayer(p, new DenseLayer.Builder().nIn(width).nOut(width).activation(Activation.IDENTITY).build(),
                    new RnnToFeedForwardPreProcessor(RNNFormat.NCW), "below.rnn");
        }
        b.addVertex("core", core, "q", "k", "v");
        return BlockGraphs.finish(b, "core", width, 3);
    }

    @Test
    void causalS2AttnWithPaddedLastGroupMatchesFiniteDifferences() {
        // T = 7, G = 4: two groups, the last one padded; one head unshifted, one shifted (the numpy
        // reference covers several heads per half, whose grouping is the same permutation)
        ComputationGraph g = coreGraph(50, new AttentionCore(2, true).withShiftedSparseAttention(4), 4);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(51, 2, 3, 7), BlockGraphs.oneHot(52, 2, 3, 7)));
    }

    @Test
    void bidirectionalS2AttnWithPaddingMaskMatchesFiniteDifferences() {
        ComputationGraph g = coreGraph(53, new AttentionCore(2, false).withShiftedSparseAttention(2), 4);
        INDArray mask = BlockGradientCheckTest.padMask(6, 0, 2);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(54, 2, 3, 6), BlockGraphs.oneHot(55, 2, 3, 6),
                mask, mask));
    }

    @Test
    void oneGroupIsExactlyFullAttentionAndInferenceIsAlwaysFull() {
        ComputationGraph full = coreGraph(56, new AttentionCore(2, true), 4);
        ComputationGraph oneGroup = coreGraph(56, new AttentionCore(2, true).withShiftedSparseAttention(6), 4);
        ComputationGraph twoGroups = coreGraph(56, new AttentionCore(2, true).withShiftedSparseAttention(2), 4);
        oneGroup.setParams(full.params());
        twoGroups.setParams(full.params());
        INDArray x = BlockGraphs.inputs(57, 2, 3, 6);
        INDArray reference = full.outputSingle(true, x);
        assertEquals(reference, oneGroup.outputSingle(true, x), "T = G: one group, bit for bit");
        assertNotEquals(reference, twoGroups.outputSingle(true, x), "T > G: S²-Attn attends within groups");
        assertEquals(full.outputSingle(false, x), twoGroups.outputSingle(false, x), "inference: full attention");
    }

    /** The tiny decoder with every attention core switched to S²-Attn of group size {@code g}. */
    static ComputationGraph s2Decoder(int g, int maxLength, long seed) {
        ComputationGraphConfiguration conf = Transformers.decoder().vocabSize(7).maxLength(maxLength).dModel(8).heads(2)
                .layers(2).mlpRatio(2).seed(seed).updater(new NoOp()).dataType(DataType.DOUBLE).configuration();
        for (java.util.Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            if (e.getValue() instanceof AttentionCore) {
                e.setValue(((AttentionCore) e.getValue()).withShiftedSparseAttention(g));
            }
        }
        ComputationGraph graph = new ComputationGraph(conf);
        graph.init();
        return graph;
    }

    @Test
    void decoderTrainingWithS2AttnStaysCausal() {
        ComputationGraph g = s2Decoder(4, 16, 58);
        java.util.Random r = new java.util.Random(59);
        INDArray tokens = Nd4j.create(DataType.DOUBLE, 2, 16);
        for (int i = 0; i < 32; i++) {
            tokens.putScalar(i / 16, i % 16, r.nextInt(7));
        }
        INDArray before = g.outputSingle(true, tokens);
        for (int t : new int[] {0, 1, 2, 3, 5, 8, 13, 15}) {
            INDArray changed = tokens.dup();
            changed.putScalar(0, t, (tokens.getDouble(0, t) + 3) % 7);
            INDArray after = g.outputSingle(true, changed);
            if (t > 0) {
                INDArray earlierBefore = before.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, t));
                INDArray earlierAfter = after.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, t));
                assertEquals(earlierBefore, earlierAfter, "changing token " + t + " changed an earlier output");
            }
            double later = before.get(NDArrayIndex.point(0), NDArrayIndex.all(), NDArrayIndex.interval(t, 16))
                    .sub(after.get(NDArrayIndex.point(0), NDArrayIndex.all(), NDArrayIndex.interval(t, 16)))
                    .amaxNumber().doubleValue();
            assertTrue(later > 1e-9, "changing token " + t + " changed no output at or after it");
        }
    }

    @Test
    void groupSizeSurvivesJsonCloneAndEquality() {
        AttentionCore c = new AttentionCore(4, true).withShiftedSparseAttention(8);
        assertEquals(8, c.getShiftedSparseGroupSize());
        assertEquals(c, c.clone());
        assertNotEquals(new AttentionCore(4, true), c);
        ComputationGraph g = s2Decoder(4, 8, 60);
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson());
        assertEquals(4, ((AttentionCore) back.getVertices().get("block0.attn.core")).getShiftedSparseGroupSize());
        assertEquals(0, new AttentionCore(4, true).withShiftedSparseAttention(8).withShiftedSparseAttention(0)
                .getShiftedSparseGroupSize());
    }

    @Test
    void oddHeadsAreRefusedWhenTheOptionIsSet() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new AttentionCore(3, true).withShiftedSparseAttention(4));
        assertTrue(e.getMessage().contains("number of heads must be even (half of them work on shifted groups); got 3"), e.getMessage());
    }
}
