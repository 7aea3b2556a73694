package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.PreprocessorVertex;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToRnnPreProcessor;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * {@link RowsToSequence} gives exactly what DL4J's {@link FeedForwardToRnnPreProcessor} gives,
 * forward (rows to {@code [b, d, T]}) and backward (the sequence's gradient back to rows), on its
 * host-copy path (float32 {@code 'c'} arrays, {@code 'f'} gradients, more rows than one copy block, a
 * view with an offset) and on the arrays it leaves to the superclass; the encoder builder uses it and it survives JSON.
 */
class RowsToSequenceTest {
    private static final LayerWorkspaceMgr MGR = LayerWorkspaceMgr.noWorkspaces();

    private static INDArray random(DataType t, long seed, long... shape) {
        Nd4j.getRandom().setSeed(seed);
        return Nd4j.rand(DataType.DOUBLE, shape).subi(0.5).castTo(t);
    }

    private static void assertSame(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what + " shape");
        assertEquals(expected, actual, what);
    }

    @Test
    void forwardAndBackwardEqualDl4jsPreprocessor() {
        FeedForwardToRnnPreProcessor stock = new FeedForwardToRnnPreProcessor(RNNFormat.NCW);
        RowsToSequence fast = new RowsToSequence();
        int[][] cases = {{1, 1, 1}, {1, 5, 7}, {3, 70, 13}, {8, 64, 384}, {2, 1, 9}, {4, 33, 1}};
        for (DataType t : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            for (int[] c : cases) {
                int b = c[0];
                int steps = c[1];
                int d = c[2];
                String what = t + " b " + b + " T " + steps + " d " + d;
                INDArray rows = random(t, 1, (long) b * steps, d);
                assertSame(stock.preProcess(rows.dup('c'), b, MGR), fast.preProcess(rows.dup('c'), b, MGR),
                        what + " forward");
                INDArray grad = random(t, 2, b, d, steps);
                assertSame(stock.backprop(grad.dup('c'), b, MGR), fast.backprop(grad.dup('c'), b, MGR),
                        what + " backward");
                // 'f' inputs and gradients (the superclass's path)
                assertSame(stock.preProcess(rows.dup('f'), b, MGR), fast.preProcess(rows.dup('f'), b, MGR),
                        what + " forward, 'f' rows");
                INDArray stockRows = stock.backprop(grad.dup('f'), b, MGR);
                INDArray fastRows = fast.backprop(grad.dup('f'), b, MGR);
                assertSame(stockRows, fastRows, what + " backward, 'f' gradient");
                if (t == DataType.FLOAT && (long) b * steps > 1 && d > 1) {
                    // the host copy (as DL4J's masked pooling passes its gradient): 'c' rows, bit for bit
                    assertEquals('c', fastRows.ordering(), what + " backward, 'f' gradient: host path");
                    assertArrayEquals(stockRows.dup('c').data().asFloat(), fastRows.dup('c').data().asFloat(),
                            what + " backward, 'f' gradient, bits");
                }
            }
        }
    }

    @Test
    void rowsThatAreAViewWithAnOffsetAreReadFromTheirOffset() {
        INDArray big = random(DataType.FLOAT, 3, 20, 6);
        INDArray view = big.get(NDArrayIndex.interval(4, 16), NDArrayIndex.all());
        INDArray expected = new FeedForwardToRnnPreProcessor(RNNFormat.NCW).preProcess(view.dup('c'), 3, MGR);
        assertSame(expected, new RowsToSequence().preProcess(view, 3, MGR), "view");
    }

    @Test
    void nwcFormatIsTheSuperclasssResult() {
        FeedForwardToRnnPreProcessor stock = new FeedForwardToRnnPreProcessor(RNNFormat.NWC);
        RowsToSequence fast = new RowsToSequence(RNNFormat.NWC);
        INDArray rows = random(DataType.FLOAT, 4, 12, 5);
        assertSame(stock.preProcess(rows.dup(), 3, MGR), fast.preProcess(rows.dup(), 3, MGR), "NWC forward");
        INDArray grad = random(DataType.FLOAT, 5, 3, 4, 5);
        assertSame(stock.backprop(grad.dup(), 3, MGR), fast.backprop(grad.dup(), 3, MGR), "NWC backward");
        assertEquals(RNNFormat.NWC, fast.clone().getRnnDataFormat());
        assertInstanceOf(RowsToSequence.class, fast.clone());
    }

    @Test
    void theEncoderEndsWithItAndItSurvivesJson() {
        ComputationGraphConfiguration conf = Transformers.encoder().vocabSize(20).maxLength(8).dModel(8).heads(2)
                .layers(1).mlpRatio(2).classes(2).seed(1).build().getConfiguration();
        PreprocessorVertex v = (PreprocessorVertex) conf.getVertices().get(Transformers.SEQUENCE);
        assertInstanceOf(RowsToSequence.class, v.getPreProcessor());
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(conf.toJson());
        PreprocessorVertex w = (PreprocessorVertex) back.getVertices().get(Transformers.SEQUENCE);
        assertInstanceOf(RowsToSequence.class, w.getPreProcessor());
        assertEquals(RNNFormat.NCW, ((RowsToSequence) w.getPreProcessor()).getRnnDataFormat());
    }
}
