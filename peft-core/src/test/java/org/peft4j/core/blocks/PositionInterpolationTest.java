package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Adam;

/** Position interpolation of learned tables: the formula, and a decoder extended to a longer context. */
class PositionInterpolationTest {

    @Test
    void newRowsSampleTheTrainedRowsLinearly() {
        INDArray w = Nd4j.createFromArray(new double[][] {{0, 10}, {1, 20}, {3, 40}, {7, 80}, {99, 99}});
        INDArray out = PositionInterpolation.interpolate(w, 4, 8);
        double[][] expected = {{0, 10}, {0.5, 15}, {1, 20}, {2, 30}, {3, 40}, {5, 60}, {7, 80}, {7, 80}};
        assertEquals(Nd4j.createFromArray(expected), out, "row 2m is trained row m; odd rows average; the last clamps");
        INDArray thirds = PositionInterpolation.interpolate(w, 4, 12);
        assertEquals(w.getDouble(1, 0) * 2 / 3 + w.getDouble(2, 0) / 3, thirds.getDouble(4, 0), 1e-15);
        assertEquals(w.get(NDArrayIndex.interval(0, 4), NDArrayIndex.all()), PositionInterpolation.interpolate(w, 4, 4),
                "same length: the trained rows");
    }

    @Test
    void extendedDecoderTakesTheLongerContextAndKeepsEveryOtherWeight() {
        ComputationGraph base = Transformers.decoder().vocabSize(6).maxLength(10).dModel(4).heads(2).layers(1)
                .mlpRatio(2).seed(3).updater(new Adam(1e-3)).dataType(DataType.FLOAT).build();
        INDArray before = base.params().dup();
        ComputationGraph longer = PositionInterpolation.extend(base, 8, 32);
        assertEquals(before, base.params(), "the base graph is not changed");
        assertEquals(32L, ((PositionalEmbedding) longer.getLayer(Transformers.POSITION_EMBEDDING).conf().getLayer())
                .maxLength());
        assertEquals(PositionInterpolation.interpolate(base.getLayer(Transformers.POSITION_EMBEDDING).getParam("W"), 8, 32),
                longer.getLayer(Transformers.POSITION_EMBEDDING).getParam("W"));
        for (String l : new String[] {Transformers.TOKEN_EMBEDDING, "block0.attn.q", "block0.ln1", Transformers.OUTPUT}) {
            assertEquals(base.getLayer(l).params(), longer.getLayer(l).params(), l);
        }
        INDArray tokens = Nd4j.zeros(DataType.FLOAT, 1, 32);
        assertEquals(32L, longer.outputSingle(tokens).size(2));
        Exception e = assertThrows(Exception.class, () -> base.outputSingle(tokens));
        assertTrue(String.valueOf(e.getMessage()).contains("exceeds the positional embedding's maxLength 10"),
                e.getMessage());
    }

    @Test
    void badLengthsAndGraphsWithoutATableAreRefused() {
        ComputationGraph base = Transformers.decoder().vocabSize(6).maxLength(10).dModel(4).heads(2).layers(1).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PositionInterpolation.extend(base, 11, 40));
        assertTrue(e.getMessage().contains("\"embed.pos\" holds 10 positions; trainedLength must be in [1, 10], got 11"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PositionInterpolation.extend(base, 8, 4));
        assertTrue(e.getMessage().contains("newLength 4 must not be shorter than trainedLength 8"), e.getMessage());
        ComputationGraph noTable = BlockGraphs.aroundLayer(1, 3, 4, new LayerNorm(4), 4, 3);
        e = assertThrows(IllegalArgumentException.class, () -> PositionInterpolation.extend(noTable, 4, 8));
        assertTrue(e.getMessage().startsWith("no positional table (PositionalEmbedding) to extend; layers are: below"),
                e.getMessage());
    }
}
