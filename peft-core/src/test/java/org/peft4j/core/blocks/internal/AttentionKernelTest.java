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
}
