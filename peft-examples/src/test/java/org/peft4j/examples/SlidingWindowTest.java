package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.blocks.Transformers;

/** Sliding-window scoring: a window covering the sequence is plain causal scoring; a shorter one differs. */
class SlidingWindowTest {

    @Test
    void aWindowAsLongAsTheSequenceIsFullScoringAndAShorterOneIsNot() {
        ComputationGraph g = Transformers.decoder().vocabSize(6).maxLength(12).dModel(8).heads(2).layers(1).seed(4)
                .updater(new Adam(1e-3)).dataType(DataType.FLOAT).build();
        Nd4j.getRandom().setSeed(5);
        DataSet ds = new DataSet(Nd4j.rand(DataType.FLOAT, 3, 12).muli(6).castTo(DataType.INT32).castTo(DataType.FLOAT),
                Nd4j.rand(DataType.FLOAT, 3, 1, 12).muli(6).castTo(DataType.INT32).castTo(DataType.FLOAT));
        double full = HeldOutMetrics.of(g, List.of(ds), 6).bitsPerChar();
        assertEquals(full, SlidingWindow.bitsPerChar(g, List.of(ds), 12), 1e-5);
        assertTrue(Math.abs(full - SlidingWindow.bitsPerChar(g, List.of(ds), 4)) > 1e-4, "a window of 4 sees less");
    }
}
