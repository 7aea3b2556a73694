package org.peft4j.lora.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/** The heap LoRA branch for small batches equals ND4J's two GEMMs on every layout it accepts. */
class SmallBatchBranchTest {

    /** {@code rows × cols} as a view at a non-zero offset of a flat vector, like DL4J's parameter views. */
    private static INDArray paramView(INDArray flat, long offset, char order, long rows, long cols) {
        return flat.get(NDArrayIndex.point(0), NDArrayIndex.interval(offset, offset + rows * cols))
                .reshape(order, rows, cols);
    }

    @ParameterizedTest(name = "x {0}, params {1}, batch {2}")
    @CsvSource({"c, f, 1", "c, c, 1", "f, f, 3", "f, c, 3", "c, f, 5"})
    void addsTheScaledLowRankProductLikeNd4j(char xOrder, char paramOrder, int batch) {
        int nIn = 37;
        int nOut = 29;
        int rank = 4;
        Nd4j.getRandom().setSeed(7);
        INDArray flat = Nd4j.randn(DataType.FLOAT, 1, 3 + nIn * rank + nOut * rank);
        INDArray a = paramView(flat, 3, paramOrder, nIn, rank);
        INDArray b = paramView(flat, 3 + (long) nIn * rank, paramOrder, rank, nOut);
        INDArray x = Nd4j.randn(DataType.FLOAT, batch, nIn).dup(xOrder);
        INDArray z = Nd4j.randn(DataType.FLOAT, batch, nOut);
        INDArray expected = z.dup();
        Nd4j.gemm(x.mmul(a), b, expected, false, false, 1.75, 1.0);

        assertTrue(SmallBatchBranch.applies(x, a, b, z));
        SmallBatchBranch.addInto(x, a, b, 1.75, z);

        double scale = expected.amaxNumber().doubleValue();
        assertEquals(0.0, z.sub(expected).amaxNumber().doubleValue(), 1e-6 * scale);
    }

    @Test
    void declinesWhatItDoesNotHandle() {
        INDArray a = Nd4j.randn(DataType.FLOAT, 16, 2);
        INDArray b = Nd4j.randn(DataType.FLOAT, 2, 16);
        INDArray x = Nd4j.randn(DataType.FLOAT, 1, 16);
        INDArray z = Nd4j.randn(DataType.FLOAT, 1, 16);
        assertTrue(SmallBatchBranch.applies(x, a, b, z));
        // double precision stays on ND4J (and so under the gradient checks)
        assertFalse(SmallBatchBranch.applies(x.castTo(DataType.DOUBLE), a, b, z));
        // a strided view is not dense
        INDArray wide = Nd4j.randn(DataType.FLOAT, 1, 32);
        INDArray strided = wide.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 2, 32));
        assertFalse(SmallBatchBranch.applies(strided, a, b, z));
        // more work than MAX_WORK multiply-adds goes to BLAS
        int batch = (int) (SmallBatchBranch.MAX_WORK / (2 * 32)) + 1;
        assertFalse(SmallBatchBranch.applies(Nd4j.randn(DataType.FLOAT, batch, 16), a, b,
                Nd4j.randn(DataType.FLOAT, batch, 16)));
    }
}
