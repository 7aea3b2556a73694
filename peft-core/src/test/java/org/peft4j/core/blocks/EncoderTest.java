package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;

/**
 * The BERT-style encoder builder: names shared with the decoder, post-norm wiring, a gradient check
 * of the whole encoder with masks, bidirectional attention, padding invariance of the pooled output,
 * the optional head, validation and the copy paths.
 */
class EncoderTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    static Transformers.EncoderBuilder tinyBuilder(int layers) {
        return Transformers.encoder().vocabSize(13).maxLength(10).dModel(8).heads(2).layers(layers).mlpRatio(2)
                .dataType(DataType.DOUBLE).seed(7);
    }

    /** Gains and biases of every LayerNorm and the positional table set to random values (they start at 1/0). */
    static void randomizeNorms(ComputationGraph g, long seed) {
        for (String n : TinyGraphs.layerNames(g)) {
            if (n.endsWith(".ln1") || n.endsWith(".ln2") || n.equals(Transformers.EMBEDDING_NORM)) {
                BlockGraphs.randomize(g, n, 1.0, seed++);
            }
        }
    }

    private static INDArray tokens(double[]... rows) {
        return Nd4j.createFromArray(rows).castTo(DataType.DOUBLE);
    }

    @Test
    void graphHasTheDecoderNamesAPoolAndNoCausalMask() {
        ComputationGraph g = tinyBuilder(2).build();
        ComputationGraphConfiguration c = g.getConfiguration();
        assertEquals(List.of(Transformers.INPUT), c.getNetworkInputs());
        assertEquals(List.of(Transformers.POOL), c.getNetworkOutputs());
        List<String> names = TinyGraphs.layerNames(g);
        for (String n : List.of("embed.tokens", "embed.pos", "embed.ln", "pool")) {
            assertTrue(names.contains(n), n);
        }
        assertFalse(names.contains("classifier"));
        assertFalse(names.contains("final.ln"));
        for (int i = 0; i < 2; i++) {
            for (String s : List.of(".ln1", ".attn.q", ".attn.k", ".attn.v", ".attn.o", ".ln2", ".mlp.up", ".mlp.down")) {
                assertTrue(names.contains("block" + i + s), "block" + i + s);
            }
            for (String s : List.of(".attn.q", ".attn.k", ".attn.v", ".attn.o", ".mlp.up", ".mlp.down")) {
                assertEquals(Dense.class, g.getLayer("block" + i + s).conf().getLayer().getClass());
            }
            assertFalse(((AttentionCore) c.getVertices().get("block" + i + ".attn.core")).isCausal());
            // post-norm: the norms read the residual sums, q/k/v read the previous block's ln2
            assertEquals(List.of("block" + i + ".attn.residual"), c.getVertexInputs().get("block" + i + ".ln1"));
            assertEquals(List.of("block" + i + ".mlp.residual"), c.getVertexInputs().get("block" + i + ".ln2"));
            String in = i == 0 ? "embed.ln" : "block" + (i - 1) + ".ln2";
            assertEquals(List.of(in), c.getVertexInputs().get("block" + i + ".attn.q"));
            // rows between the blocks: the dense layers and residuals read each other directly
            assertEquals(List.of(in, "block" + i + ".attn.o"), c.getVertexInputs().get("block" + i + ".attn.residual"));
            assertEquals(List.of("block" + i + ".ln1", "block" + i + ".mlp.down"),
                    c.getVertexInputs().get("block" + i + ".mlp.residual"));
            assertEquals(List.of("block" + i + ".attn.core"), c.getVertexInputs().get("block" + i + ".attn.o"));
            assertTrue(((AttentionCore) c.getVertices().get("block" + i + ".attn.core")).isRowsOutput());
            for (String s : List.of(".attn.q", ".attn.o", ".mlp.up", ".mlp.down")) {
                assertEquals(null, ((org.deeplearning4j.nn.conf.graph.LayerVertex) c.getVertices().get("block" + i + s))
                        .getPreProcessor(), "block" + i + s + " reads rows with no preprocessor");
            }
            LayerNorm ln = (LayerNorm) g.getLayer("block" + i + ".ln1").conf().getLayer();
            assertEquals(1e-12, ln.eps());
        }
        assertInstanceOf(ExactGelu.class, ((DenseLayer) g.getLayer("block0.mlp.up").conf().getLayer()).getActivationFn());
        assertEquals(13, ((EmbeddingSequenceLayer) g.getLayer("embed.tokens").conf().getLayer()).getNIn());
        assertFalse(((EmbeddingSequenceLayer) g.getLayer("embed.tokens").conf().getLayer()).hasBias());
        assertEquals(16, ((DenseLayer) g.getLayer("block1.mlp.up").conf().getLayer()).getNOut());
        assertTrue(names.stream().noneMatch(n -> n.contains("_")), names.toString());
        assertTrue(c.getVertices().keySet().stream().noneMatch(n -> n.endsWith(".reshape")), c.getVertices().keySet()
                .toString());
        assertTrue(((PositionalEmbedding) g.getLayer("embed.pos").conf().getLayer()).isRowsOutput());
        assertEquals(List.of("block1.ln2"), c.getVertexInputs().get(Transformers.SEQUENCE));
        assertEquals(List.of(Transformers.SEQUENCE), c.getVertexInputs().get("pool"));
        INDArray pooled = g.outputSingle(tokens(new double[] {1, 2, 3}));
        assertArrayEqualsShape(new long[] {1, 8}, pooled.shape());
    }

    private static void assertArrayEqualsShape(long[] expected, long[] actual) {
        assertEquals(java.util.Arrays.toString(expected), java.util.Arrays.toString(actual));
    }

    @Test
    void tinyEncoderWithHeadAndPaddingMatchesFiniteDifferences() {
        ComputationGraph g = Transformers.encoder().vocabSize(5).maxLength(6).dModel(4).heads(2).layers(1).mlpRatio(2)
                .classes(3).layerNormEps(1e-5).dataType(DataType.DOUBLE).updater(new NoOp()).seed(40).build();
        randomizeNorms(g, 41);
        INDArray x = tokens(new double[] {1, 3, 0, 4}, new double[] {2, 2, 1, 0});
        INDArray labels = Nd4j.createFromArray(new double[][] {{0, 1, 0}, {0, 0, 1}});
        INDArray mask = BlockGradientCheckTest.padMask(4, 0, 2);
        assertTrue(GradientChecks.passes(g, x, labels, mask, null));
    }

    @Test
    void changingTokenTChangesEveryPositionBeforeAndAfterIt() {
        ComputationGraph g = tinyBuilder(2).build();
        randomizeNorms(g, 3);
        double[] base = {1, 4, 2, 7, 3, 9};
        INDArray before = g.feedForward(tokens(base), false).get(Transformers.SEQUENCE);
        assertArrayEqualsShape(new long[] {1, 8, 6}, before.shape());
        for (int t = 0; t < base.length; t++) {
            double[] changed = base.clone();
            changed[t] = (changed[t] + 5) % 13;
            INDArray after = g.feedForward(tokens(changed), false).get(Transformers.SEQUENCE);
            for (int s = 0; s < base.length; s++) {
                double diff = before.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(s))
                        .sub(after.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(s)))
                        .amaxNumber().doubleValue();
                assertTrue(diff > 1e-6, "token " + t + " did not change the output at " + s + " (diff " + diff + ")");
            }
        }
    }

    @Test
    void paddingWithMaskZeroDoesNotChangeThePooledOutput() {
        ComputationGraph g = tinyBuilder(2).build();
        randomizeNorms(g, 5);
        INDArray alone = g.outputSingle(tokens(new double[] {5, 9, 3}));
        INDArray aloneB = g.outputSingle(tokens(new double[] {2, 7, 3, 1, 4}));
        // right padding with arbitrary (non-zero) pad ids, batched with a longer sequence
        INDArray x = tokens(new double[] {5, 9, 3, 11, 6}, new double[] {2, 7, 3, 1, 4});
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}});
        INDArray batched = g.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        assertTrue(alone.equalsWithEps(batched.get(NDArrayIndex.interval(0, 1), NDArrayIndex.all()), 1e-10),
                alone + " vs " + batched);
        assertTrue(aloneB.equalsWithEps(batched.get(NDArrayIndex.interval(1, 2), NDArrayIndex.all()), 1e-10));
        // different pad ids give the same result; without the mask the padding does change it
        INDArray x2 = tokens(new double[] {5, 9, 3, 0, 0}, new double[] {2, 7, 3, 1, 4});
        INDArray batched2 = g.output(false, new INDArray[] {x2}, new INDArray[] {mask})[0];
        assertTrue(batched.equalsWithEps(batched2, 1e-10));
        INDArray unmasked = g.outputSingle(x);
        assertTrue(unmasked.get(NDArrayIndex.point(0)).sub(alone.get(NDArrayIndex.point(0))).amaxNumber()
                .doubleValue() > 1e-6);
    }

    @Test
    void blocksCarryTimeDistributedRowsAndPoolIsTheMaskedMeanOfTheLastNorm() {
        ComputationGraph g = tinyBuilder(1).build();
        INDArray x = tokens(new double[] {5, 9, 3, 11}, new double[] {2, 7, 3, 1});
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 0, 0}, {1, 1, 1, 1}});
        g.setLayerMaskArrays(new INDArray[] {mask}, null);
        Map<String, INDArray> acts = g.feedForward(new INDArray[] {x}, false, false);
        g.clearLayerMaskArrays();
        INDArray rows = acts.get("block0.ln2");
        INDArray last = acts.get(Transformers.SEQUENCE);
        assertArrayEqualsShape(new long[] {8, 8}, rows.shape());
        assertArrayEqualsShape(new long[] {2, 8, 4}, last.shape());
        for (int b = 0; b < 2; b++) {
            for (int t = 0; t < 4; t++) {
                // row b + B·t of the rows is time step t of sequence b
                assertEquals(rows.getRow(b + 2L * t), last.get(NDArrayIndex.point(b), NDArrayIndex.all(),
                        NDArrayIndex.point(t)));
            }
        }
        INDArray expected = Nd4j.vstack(
                last.get(NDArrayIndex.point(0), NDArrayIndex.all(), NDArrayIndex.interval(0, 2)).mean(1).reshape(1, 8),
                last.get(NDArrayIndex.point(1), NDArrayIndex.all(), NDArrayIndex.all()).mean(1).reshape(1, 8));
        assertTrue(expected.equalsWithEps(acts.get("pool"), 1e-12), expected + " vs " + acts.get("pool"));
    }

    @Test
    void classifierHeadLearnsAFirstTokenRule() {
        ComputationGraph g = Transformers.encoder().vocabSize(6).maxLength(8).dModel(16).heads(2).layers(1)
                .classes(2).updater(new Adam(1e-2)).dataType(DataType.DOUBLE).seed(3).build();
        assertEquals(List.of(Transformers.CLASSIFIER), g.getConfiguration().getNetworkOutputs());
        int b = 8;
        INDArray x = Nd4j.zeros(DataType.DOUBLE, b, 6);
        INDArray y = Nd4j.zeros(DataType.DOUBLE, b, 2);
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < b; i++) {
            for (int s = 0; s < 6; s++) {
                x.putScalar(i, s, 1 + r.nextInt(5));
            }
            x.putScalar(i, 0, i % 2 == 0 ? 0 : 5);
            y.putScalar(i, i % 2, 1.0);
        }
        DataSet ds = new DataSet(x, y);
        double first = g.score(ds);
        for (int i = 0; i < 60; i++) {
            g.fit(ds);
        }
        double last = g.score(ds);
        assertTrue(last < 0.25 * first, "loss " + first + " -> " + last);
    }

    @Test
    void builderRejectsBadArgumentsWithClearMessages() {
        assertEquals("layerNormEps must be a positive finite number, got 0.0",
                assertThrows(IllegalArgumentException.class, () -> Transformers.encoder().layerNormEps(0)).getMessage());
        assertEquals("classes must be at least 2, got 1",
                assertThrows(IllegalArgumentException.class, () -> Transformers.encoder().classes(1)).getMessage());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Transformers.encoder().vocabSize(10).maxLength(8).dModel(10).heads(3).layers(1).build());
        assertTrue(e.getMessage().contains("dModel 10 must be divisible by heads 3"), e.getMessage());
        IllegalStateException s = assertThrows(IllegalStateException.class,
                () -> Transformers.encoder().vocabSize(10).maxLength(8).dModel(8).heads(2).build());
        assertTrue(s.getMessage().contains("layers was not set"), s.getMessage());
    }

    @Test
    void jsonRoundTripCloneAndModelSerializerGiveIdenticalOutputs() throws java.io.IOException {
        ComputationGraph g = tinyBuilder(1).classes(3).build();
        INDArray x = tokens(new double[] {1, 2, 3, 4});
        ComputationGraph h = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        h.init(g.params().dup(), false);
        assertTrue(g.outputSingle(x).equalsWithEps(h.outputSingle(x), 0));
        assertTrue(g.outputSingle(x).equalsWithEps(g.clone().outputSingle(x), 0));
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        org.deeplearning4j.util.ModelSerializer.writeModel(g, bytes, true);
        ComputationGraph back = org.deeplearning4j.util.ModelSerializer.restoreComputationGraph(
                new java.io.ByteArrayInputStream(bytes.toByteArray()), true);
        assertTrue(g.outputSingle(x).equalsWithEps(back.outputSingle(x), 0));
    }
}
