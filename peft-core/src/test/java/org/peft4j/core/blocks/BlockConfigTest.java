package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Block configurations: validation, equality over every field, JSON round trip. */
class BlockConfigTest {

    @Test
    void configurationsValidateTheirArguments() {
        assertEquals("MultiHeadAttention: nOut 6 is not divisible by heads 4; set headSize explicitly",
                assertThrows(IllegalArgumentException.class,
                        () -> MultiHeadAttention.builder().nIn(6).nOut(6).heads(4).build()).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new LayerNorm(4, 0)).getMessage()
                .contains("eps must be a positive finite number"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new PositionalEmbedding(0, 4)).getMessage()
                .contains("maxLength must be positive"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new AttentionCore(0, true)).getMessage()
                .contains("heads must be positive"));
    }

    @Test
    void equalityCoversEveryField() {
        assertEquals(new LayerNorm(4), new LayerNorm(4));
        assertNotEquals(new LayerNorm(4), new LayerNorm(4, 1e-3));
        assertNotEquals(new LayerNorm(4, 1e-6), new RmsNorm(4, 1e-6));
        assertNotEquals(new PositionalEmbedding(8, 4), new PositionalEmbedding(9, 4));
        MultiHeadAttention a = MultiHeadAttention.builder().nIn(4).nOut(4).heads(2).causal(true).build();
        assertEquals(a, MultiHeadAttention.builder().nIn(4).nOut(4).heads(2).causal(true).build());
        assertNotEquals(a, MultiHeadAttention.builder().nIn(4).nOut(4).heads(2).build());
        assertNotEquals(new AttentionCore(2, true), new AttentionCore(2, false));
    }

    @Test
    void everyBlockSurvivesAJsonRoundTrip() {
        MultiHeadAttention mha = MultiHeadAttention.builder().nIn(4).nOut(4).heads(2).causal(true).bias(true).build();
        org.deeplearning4j.nn.conf.ComputationGraphConfiguration.GraphBuilder b = BlockGraphs.below(1, 3, 4);
        b.addLayer("pos", new PositionalEmbedding(5, 4), "below.rnn")
                .addLayer("rms", new RmsNorm(4, 1e-4), "pos")
                .addLayer("mha", mha, "rms");
        ComputationGraph g = BlockGraphs.finish(b, "mha", 4, 3);
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson());
        assertEquals(g.getConfiguration(), back);
        ComputationGraph h = new ComputationGraph(back);
        h.init(g.params().dup(), false);
        INDArray x = BlockGraphs.inputs(2, 2, 3, 4);
        assertTrue(g.outputSingle(x).equalsWithEps(h.outputSingle(x), 0));
    }
}
