package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The decoder builds, runs forward and takes a training step. */
class DecoderSmokeTest {
    @Test
    void buildsRunsAndTakesATrainingStep() {
        ComputationGraph g = Transformers.decoder().vocabSize(11).maxLength(8).dModel(8).heads(2).layers(1).build();
        INDArray tokens = Nd4j.createFromArray(new float[][] {{1, 2, 3, 4, 5}, {3, 4, 5, 6, 7}});
        INDArray out = g.outputSingle(tokens);
        assertArrayEquals(new long[] {2, 11, 5}, out.shape());
        INDArray labels = Nd4j.createFromArray(new float[][] {{2, 3, 4, 5, 6}, {4, 5, 6, 7, 8}}).reshape(2, 1, 5);
        g.fit(new org.nd4j.linalg.dataset.DataSet(tokens, labels));
        org.junit.jupiter.api.Assertions.assertTrue(Double.isFinite(g.score()));
    }
}
