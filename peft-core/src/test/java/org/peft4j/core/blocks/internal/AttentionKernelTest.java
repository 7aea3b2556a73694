package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * The two masked-softmax paths of {@link AttentionKernel#forward}: float32 through ND4J's softmax op
 * with the disallowed scores pushed down, other types through separate ops (the path the
 * double-precision gradient checks validate). They agree, masked keys get exactly zero probability,
 * and a query with no allowed key (a fully padded sequence, or left padding under the causal mask)
 * gives zero probabilities and a zero output, never NaN.
 */
class AttentionKernelTest {

    @Test
    void floatAndDoublePathsAgreeWithMaskedAndFullyMaskedRows() {
        Nd4j.getRandom().setSeed(4);
        INDArray q = Nd4j.randn(DataType.DOUBLE, 3, 2, 5, 4).muli(2);
        INDArray k = Nd4j.randn(DataType.DOUBLE, 3, 2, 5, 4).muli(2);
        INDArray v = Nd4j.randn(DataType.DOUBLE, 3, 2, 5, 4);
        // right padding, a fully padded sequence, left padding
        INDArray keyMask = Nd4j.createFromArray(new double[][] {{1, 1, 1, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 1, 1, 1}});
        for (boolean causal : new boolean[] {false, true}) {
            INDArray allowedD = AttentionKernel.allowedKeys(3, 5, 5, causal, keyMask, DataType.DOUBLE);
            INDArray allowedF = AttentionKernel.allowedKeys(3, 5, 5, causal, keyMask, DataType.FLOAT);
            AttentionKernel.Forward d = AttentionKernel.forward(q, k, v, 0.5, allowedD);
            AttentionKernel.Forward f = AttentionKernel.forward(q.castTo(DataType.FLOAT), k.castTo(DataType.FLOAT),
                    v.castTo(DataType.FLOAT), 0.5, allowedF);
            assertTrue(Double.isFinite(f.out().sumNumber().doubleValue()) && Double.isFinite(d.out().sumNumber().doubleValue()));
            assertTrue(d.probs().equalsWithEps(f.probs().castTo(DataType.DOUBLE), 1e-6), "causal " + causal);
            assertTrue(d.out().equalsWithEps(f.out().castTo(DataType.DOUBLE), 1e-5), "causal " + causal);
            for (int b = 0; b < 3; b++) {
                for (int i = 0; i < 5; i++) {
                    for (int j = 0; j < 5; j++) {
                        if (allowedD.getDouble(b, i, j) == 0) {
                            for (int h = 0; h < 2; h++) {
                                assertEquals(0.0, f.probs().getDouble(b, h, i, j), 0.0, b + "," + h + "," + i + "," + j);
                            }
                        }
                    }
                }
            }
            // the fully padded sequence attends to nothing
            assertEquals(0.0, f.out().get(NDArrayIndex.point(1)).amaxNumber().doubleValue(), 0.0);
        }
    }

    @Test
    void softmaxBackwardRowKernelEqualsNd4jsOpsInFloatAndDouble() {
        for (DataType t : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            Nd4j.getRandom().setSeed(9);
            INDArray s = Nd4j.randn(DataType.DOUBLE, 2, 3, 7, 9).muli(3);
            INDArray p = Nd4j.exec(new org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax(s, s.dup(), -1))[0]
                    .castTo(t);
            INDArray dp = Nd4j.randn(DataType.DOUBLE, 2, 3, 7, 9).castTo(t);
            INDArray rowDot = dp.mul(p).sum(3);
            INDArray expected = dp.dup();
            Nd4j.getExecutioner().exec(new org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp(expected, rowDot,
                    expected, 0, 1, 2));
            expected.muli(p).muli(0.3);
            INDArray pBefore = p.dup();
            assertTrue(AttentionKernel.softmaxBackwardRows(dp, p, 0.3), t.toString());
            assertTrue(expected.equalsWithEps(dp, t == DataType.FLOAT ? 1e-6 : 1e-13), t.toString());
            assertEquals(pBefore, p, "the probabilities are read only");
            assertTrue(!AttentionKernel.softmaxBackwardRows(dp.dup('f'), p, 0.3), "'f' order is left to ND4J");
        }
    }

    @Test
    void productsWrittenIntoGivenViewsEqualTheAllocatedOnes() {
        Nd4j.getRandom().setSeed(5);
        long b = 2;
        int h = 3;
        long t = 4;
        int d = 5;
        // q, k, v as views of time-distributed rows [b·T, h·d] (row b + B·t), as the attention core sees them
        INDArray[] rows = new INDArray[3];
        INDArray[] heads = new INDArray[3];
        for (int i = 0; i < 3; i++) {
            rows[i] = Nd4j.randn(DataType.FLOAT, b * t, h * d);
            heads[i] = Layouts.timeDistributedToHeads(rows[i], b, h, "test");
        }
        INDArray keyMask = Nd4j.createFromArray(new float[][] {{1, 1, 1, 1}, {1, 1, 0, 0}});
        INDArray allowed = AttentionKernel.allowedKeys(b, t, t, false, keyMask, DataType.FLOAT);
        AttentionKernel.Forward plain = AttentionKernel.forward(heads[0], heads[1], heads[2], 0.4, allowed);
        INDArray outRows = Nd4j.createUninitialized(DataType.FLOAT, b * t, h * d);
        INDArray scores = Nd4j.createUninitialized(DataType.FLOAT, b, h, t, t);
        AttentionKernel.Forward given = AttentionKernel.forward(heads[0], heads[1], heads[2], 0.4, allowed, scores,
                Layouts.timeDistributedToHeads(outRows, b, h, "test"));
        assertTrue(plain.probs().equalsWithEps(scores, 1e-6));
        assertTrue(plain.out().equalsWithEps(Layouts.timeDistributedToHeads(outRows, b, h, "test"), 1e-6));
        INDArray dOut = Nd4j.randn(DataType.FLOAT, b, h, t, d);
        AttentionKernel.Backward bwPlain = AttentionKernel.backward(heads[0], heads[1], heads[2], plain.probs(), dOut,
                0.4);
        INDArray[] gradRows = new INDArray[3];
        INDArray[] targets = new INDArray[3];
        for (int i = 0; i < 3; i++) {
            gradRows[i] = Nd4j.createUninitialized(DataType.FLOAT, b * t, h * d);
            targets[i] = Layouts.timeDistributedToHeads(gradRows[i], b, h, "test");
        }
        AttentionKernel.backward(heads[0], heads[1], heads[2], given.probs(), dOut, 0.4, targets[0], targets[1],
                targets[2], Nd4j.createUninitialized(DataType.FLOAT, b, h, t, t));
        INDArray[] expected = {bwPlain.dq(), bwPlain.dk(), bwPlain.dv()};
        for (int i = 0; i < 3; i++) {
            assertTrue(expected[i].equalsWithEps(targets[i], 1e-5), "gradient " + i);
        }
    }
}
