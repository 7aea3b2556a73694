package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.testing.TinyGraphs;

/** The decoder builder: structure, names, causality, masks, validation, copy paths and learning. */
class DecoderTest {

    private static ComputationGraph tiny(int layers, DataType dt) {
        return Transformers.decoder().vocabSize(13).maxLength(10).dModel(8).heads(2).layers(layers).mlpRatio(2)
                .dataType(dt).seed(7).build();
    }

    private static INDArray tokens(DataType dt, double[]... rows) {
        return Nd4j.createFromArray(rows).castTo(dt);
    }

    @Test
    void graphHasTheContractNamesAndDenseProjections() {
        ComputationGraph g = tiny(2, DataType.FLOAT);
        ComputationGraphConfiguration c = g.getConfiguration();
        assertEquals(List.of(Transformers.INPUT), c.getNetworkInputs());
        assertEquals(List.of(Transformers.OUTPUT), c.getNetworkOutputs());
        List<String> names = TinyGraphs.layerNames(g);
        for (String n : List.of("embed.tokens", "embed.pos", "final.ln", "head")) {
            assertTrue(names.contains(n), n);
        }
        for (int i = 0; i < 2; i++) {
            for (String s : List.of(".ln1", ".attn.q", ".attn.k", ".attn.v", ".attn.o", ".ln2", ".mlp.up", ".mlp.down")) {
                assertTrue(names.contains("block" + i + s), "block" + i + s);
            }
            for (String s : List.of(".attn.q", ".attn.k", ".attn.v", ".attn.o", ".mlp.up", ".mlp.down")) {
                assertEquals(Dense.class, g.getLayer("block" + i + s).conf().getLayer().getClass());
            }
            assertInstanceOf(AttentionCore.class, c.getVertices().get("block" + i + ".attn.core"));
            assertTrue(((AttentionCore) c.getVertices().get("block" + i + ".attn.core")).isCausal());
            // time-distributed rows between the blocks: no preprocessor, no reshape vertex
            assertTrue(((AttentionCore) c.getVertices().get("block" + i + ".attn.core")).isRowsOutput());
            assertEquals(List.of("block" + i + ".attn.core"), c.getVertexInputs().get("block" + i + ".attn.o"));
            assertEquals(List.of("block" + i + ".ln2"), c.getVertexInputs().get("block" + i + ".mlp.up"));
        }
        assertTrue(names.stream().noneMatch(n -> n.contains("_")), names.toString());
        assertTrue(c.getVertices().keySet().stream().noneMatch(n -> n.endsWith(".reshape")));
        assertEquals(List.of("final.ln"), c.getVertexInputs().get(Transformers.SEQUENCE));
        assertEquals(List.of(Transformers.SEQUENCE), c.getVertexInputs().get("head"));
        // setInputTypes would have overwritten the vocabulary with 1 (DESIGN.md); it is not used
        assertEquals(13, ((EmbeddingSequenceLayer) g.getLayer("embed.tokens").conf().getLayer()).getNIn());
        assertEquals(8, ((DenseLayer) g.getLayer("block1.mlp.down").conf().getLayer()).getNOut());
        assertEquals(16, ((DenseLayer) g.getLayer("block1.mlp.up").conf().getLayer()).getNOut());
    }

    @Test
    void changingTokenTChangesNoEarlierOutputButSomeLaterOne() {
        ComputationGraph g = tiny(2, DataType.DOUBLE);
        double[] base = {1, 4, 2, 7, 3, 9};
        INDArray before = g.outputSingle(tokens(DataType.DOUBLE, base));
        for (int t = 0; t < base.length; t++) {
            double[] changed = base.clone();
            changed[t] = (changed[t] + 5) % 13;
            INDArray after = g.outputSingle(tokens(DataType.DOUBLE, changed));
            for (int s = 0; s < base.length; s++) {
                double diff = before.get(NDArrayIndex.all(),
                        NDArrayIndex.all(), NDArrayIndex.point(s))
                        .sub(after.get(NDArrayIndex.all(),
                                NDArrayIndex.all(),
                                NDArrayIndex.point(s))).amaxNumber().doubleValue();
                if (s < t) {
                    assertEquals(0.0, diff, 1e-12, "token " + t + " changed the output at " + s);
                } else if (s == t) {
                    assertTrue(diff > 1e-6, "token " + t + " did not change the output at " + s);
                }
            }
        }
    }

    @Test
    void keyPaddingMaskIsUsedAndDoesNotOutliveItsCall() {
        ComputationGraph g = tiny(1, DataType.DOUBLE);
        // left padding: with the mask, steps 2..4 must not see the two padding tokens
        INDArray x = tokens(DataType.DOUBLE, new double[] {5, 9, 3, 1, 4}, new double[] {2, 7, 3, 1, 4});
        INDArray mask = Nd4j.createFromArray(new double[][] {{0, 0, 1, 1, 1}, {0, 0, 1, 1, 1}});
        INDArray unmaskedBefore = g.outputSingle(x);
        INDArray masked = g.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        INDArray unmaskedAfter = g.outputSingle(x);
        INDArray real = masked.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(2, 5));
        // the two rows differ only in their masked tokens: equal outputs at the real steps
        assertTrue(real.get(NDArrayIndex.point(0)).equalsWithEps(real.get(NDArrayIndex.point(1)), 1e-10));
        INDArray realUnmasked = unmaskedBefore.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(2, 5));
        assertTrue(realUnmasked.get(NDArrayIndex.point(0)).sub(realUnmasked.get(NDArrayIndex.point(1)))
                .amaxNumber().doubleValue() > 1e-6);
        // DL4J clears layer masks but not vertex state: the next unmasked call must not reuse the mask
        assertTrue(unmaskedAfter.equalsWithEps(unmaskedBefore, 0));
    }

    @Test
    void fullyMaskedSequenceGivesFiniteOutputs() {
        ComputationGraph g = tiny(1, DataType.DOUBLE);
        INDArray x = tokens(DataType.DOUBLE, new double[] {1, 2, 3}, new double[] {4, 5, 6});
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 0}, {0, 0, 0}});
        INDArray out = g.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        assertTrue(Double.isFinite(out.sumNumber().doubleValue()));
    }

    @Test
    void sequenceLongerThanMaxLengthFailsWithBothLengths() {
        ComputationGraph g = tiny(1, DataType.FLOAT);
        Exception e = assertThrows(Exception.class, () -> g.outputSingle(Nd4j.zeros(DataType.FLOAT, 1, 11)));
        Throwable root = e;
        while (root.getCause() != null && !root.getMessage().contains("maxLength")) {
            root = root.getCause();
        }
        assertTrue(root.getMessage().contains("11") && root.getMessage().contains("maxLength 10"), root.getMessage());
    }

    @Test
    void builderRejectsBadArgumentsWithClearMessages() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Transformers.decoder().vocabSize(10).maxLength(8).dModel(10).heads(3).layers(1).build());
        assertTrue(e.getMessage().contains("dModel 10 must be divisible by heads 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Transformers.decoder().vocabSize(0));
        assertEquals("vocabSize must be positive, got 0", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Transformers.decoder().dropout(1.0));
        assertTrue(e.getMessage().contains("dropout must be in [0, 1)"), e.getMessage());
        IllegalStateException s = assertThrows(IllegalStateException.class,
                () -> Transformers.decoder().vocabSize(10).dModel(8).heads(2).layers(1).build());
        assertTrue(s.getMessage().contains("maxLength was not set"), s.getMessage());
    }

    @Test
    void jsonRoundTripAndCloneGiveIdenticalOutputs() {
        ComputationGraph g = tiny(1, DataType.FLOAT);
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson());
        ComputationGraph h = new ComputationGraph(back);
        h.init(g.params().dup(), false);
        INDArray x = tokens(DataType.FLOAT, new double[] {1, 2, 3, 4});
        assertTrue(g.outputSingle(x).equalsWithEps(h.outputSingle(x), 0));
        assertTrue(g.outputSingle(x).equalsWithEps(g.clone().outputSingle(x), 0));
    }

    @Test
    void modelSerializerRoundTripGivesIdenticalOutputs() throws java.io.IOException {
        ComputationGraph g = tiny(1, DataType.FLOAT);
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        org.deeplearning4j.util.ModelSerializer.writeModel(g, bytes, true);
        ComputationGraph back = org.deeplearning4j.util.ModelSerializer.restoreComputationGraph(
                new java.io.ByteArrayInputStream(bytes.toByteArray()), true);
        INDArray x = tokens(DataType.FLOAT, new double[] {4, 3, 2, 1});
        assertTrue(g.outputSingle(x).equalsWithEps(back.outputSingle(x), 0));
    }

    @Test
    void dropoutTrainsAndLeavesInferenceDeterministic() {
        ComputationGraph g = Transformers.decoder().vocabSize(6).maxLength(6).dModel(8).heads(2).layers(1)
                .dropout(0.2).seed(5).build();
        INDArray x = tokens(DataType.FLOAT, new double[] {1, 2, 3, 4});
        INDArray y = Nd4j.createFromArray(new float[] {2, 3, 4, 5}).reshape(1, 1, 4);
        g.fit(new DataSet(x, y));
        assertTrue(Double.isFinite(g.score()));
        assertTrue(g.outputSingle(x).equalsWithEps(g.outputSingle(x), 0));
    }

    @Test
    void lossDropsOnARepetitiveSequence() {
        ComputationGraph g = Transformers.decoder().vocabSize(6).maxLength(12).dModel(16).heads(2).layers(1)
                .updater(new Adam(1e-2)).seed(3).build();
        int b = 4;
        int t = 12;
        INDArray x = Nd4j.zeros(DataType.FLOAT, b, t);
        INDArray y = Nd4j.zeros(DataType.FLOAT, b, 1, t);
        for (int i = 0; i < b; i++) {
            for (int s = 0; s < t; s++) {
                x.putScalar(i, s, (i + s) % 6);
                y.putScalar(new int[] {i, 0, s}, (i + s + 1) % 6);
            }
        }
        DataSet ds = new DataSet(x, y);
        double first = g.score(ds);
        for (int i = 0; i < 40; i++) {
            g.fit(ds);
        }
        double last = g.score(ds);
        assertTrue(last < 0.25 * first, "loss " + first + " -> " + last);
    }
}
