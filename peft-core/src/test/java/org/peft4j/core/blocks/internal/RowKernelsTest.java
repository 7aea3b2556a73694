package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * {@link RowKernels} writes what ND4J's broadcast add and column-vector multiply give, in both
 * float types and on views with an offset, and refuses (touching nothing) the arrays and masks it
 * does not handle.
 */
class RowKernelsTest {

    private static INDArray random(DataType t, long... shape) {
        Nd4j.getRandom().setSeed(11);
        return Nd4j.rand(DataType.DOUBLE, shape).subi(0.5).castTo(t);
    }

    @Test
    void fillRowsThenAccumulatingGemmEqualsGemmPlusBroadcastBias() {
        for (DataType t : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            INDArray x = random(t, 9, 5);
            INDArray w = random(t, 5, 7).muli(3);
            INDArray b = random(t, 7).addi(2);
            INDArray expected = x.mmul(w).addiRowVector(b);
            INDArray z = Nd4j.createUninitialized(t, 9, 7);
            assertTrue(RowKernels.fillRows(z, b), t.toString());
            for (int r = 0; r < 9; r++) {
                assertEquals(b, z.getRow(r), t + " row " + r + " holds the bias");
            }
            Nd4j.gemm(x, w, z, false, false, 1.0, 1.0);
            assertTrue(expected.equalsWithEps(z, t == DataType.FLOAT ? 1e-6 : 1e-14), t.toString());
        }
    }

    @Test
    void fillRowsWritesOnlyTheRowsOfAViewWithAnOffset() {
        INDArray big = Nd4j.zeros(DataType.FLOAT, 6, 4);
        INDArray view = big.get(NDArrayIndex.interval(2, 5), NDArrayIndex.all());
        INDArray b = Nd4j.createFromArray(1f, 2f, 3f, 4f);
        assertTrue(RowKernels.fillRows(view, b));
        for (int r = 0; r < 6; r++) {
            assertEquals(r >= 2 && r < 5 ? b : Nd4j.zeros(DataType.FLOAT, 4), big.getRow(r), "row " + r);
        }
    }

    @Test
    void fillRowsRefusesFOrderAndABiasOfAnotherLength() {
        INDArray f = Nd4j.zeros(DataType.FLOAT, 3, 4).dup('f');
        assertFalse(RowKernels.fillRows(f, Nd4j.ones(DataType.FLOAT, 4)));
        assertEquals(0.0, f.sumNumber().doubleValue());
        INDArray c = Nd4j.zeros(DataType.FLOAT, 3, 4);
        assertFalse(RowKernels.fillRows(c, Nd4j.ones(DataType.FLOAT, 5)));
        assertFalse(RowKernels.fillRows(c, Nd4j.ones(DataType.FLOAT, 2, 2)));
        assertEquals(0.0, c.sumNumber().doubleValue());
        assertFalse(RowKernels.fillRows(Nd4j.zeros(DataType.HALF, 3, 4), Nd4j.ones(DataType.HALF, 4)));
    }

    @Test
    void zeroMaskedRowsEqualsMultiplyingByABinaryRowMask() {
        for (DataType t : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            INDArray z = random(t, 7, 6);
            // as DL4J's per-row masks come: [rows, 1] in 'f' order, and the mask in another type
            INDArray mask = Nd4j.createFromArray(1f, 0f, 1f, 1f, 0f, 0f, 1f).reshape('f', 7, 1);
            INDArray expected = z.mulColumnVector(mask.castTo(t));
            assertTrue(RowKernels.zeroMaskedRows(z, mask), t.toString());
            assertEquals(expected, z, t.toString());
            INDArray row = Nd4j.createFromArray(1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0).reshape(1, 7);
            INDArray z2 = random(t, 7, 6);
            INDArray expected2 = z2.mulColumnVector(row.reshape(7, 1).castTo(t));
            assertTrue(RowKernels.zeroMaskedRows(z2, row), t.toString());
            assertEquals(expected2, z2, t.toString());
        }
    }

    @Test
    void zeroMaskedRowsReadsAStridedMaskViewAtItsStride() {
        for (DataType t : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            // column 2 of a [7, 3] 'c' matrix: offset 2, stride 3; the other columns hold values that
            // would be wrong as a mask (0.5) or mask other rows
            INDArray m = Nd4j.createFromArray(new double[][] {
                {0, 0.5, 1}, {1, 0.5, 0}, {0, 0.5, 1}, {1, 0.5, 1}, {1, 0.5, 0}, {0, 0.5, 0}, {1, 0.5, 1}})
                    .castTo(t);
            INDArray column = m.getColumn(2, true);
            assertEquals(3, column.stride(0));
            INDArray z = random(t, 7, 4);
            INDArray expected = z.mulColumnVector(Nd4j.createFromArray(1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0)
                    .reshape(7, 1).castTo(t));
            assertTrue(RowKernels.zeroMaskedRows(z, column), t.toString());
            assertEquals(expected, z, t.toString());
            // as a row vector view [1, 7] of the transposed matrix
            INDArray z2 = random(t, 7, 4);
            INDArray expected2 = z2.dup();
            expected2.getRow(1).assign(0);
            expected2.getRow(4).assign(0);
            expected2.getRow(5).assign(0);
            assertTrue(RowKernels.zeroMaskedRows(z2, m.transpose().getRow(2, true)), t.toString());
            assertEquals(expected2, z2, t.toString());
        }
    }

    @Test
    void zeroMaskedRowsRefusesFractionalMasksFOrderAndOtherShapes() {
        INDArray z = random(DataType.FLOAT, 4, 3);
        INDArray before = z.dup();
        assertFalse(RowKernels.zeroMaskedRows(z, Nd4j.createFromArray(1f, 0.5f, 0f, 1f).reshape(4, 1)));
        assertEquals(before, z, "a fractional mask is left to the multiply");
        assertFalse(RowKernels.zeroMaskedRows(z, Nd4j.createFromArray(1f, 0f, 1f).reshape(3, 1)));
        assertFalse(RowKernels.zeroMaskedRows(z, Nd4j.ones(DataType.FLOAT, 4, 3)));
        INDArray f = z.dup('f');
        assertFalse(RowKernels.zeroMaskedRows(f, Nd4j.createFromArray(1f, 0f, 0f, 1f).reshape(4, 1)));
        assertEquals(before, f);
        assertEquals(before, z);
    }

    @Test
    void columnSumsEqualNd4jsSumOverRowsIntoAViewOfAFlatVector() {
        for (DataType t : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            // 37 rows: two full blocks of sixteen and a partial one
            INDArray a = random(t, 37, 5).muli(7);
            INDArray flat = Nd4j.zeros(t, 1, 12);
            INDArray dst = flat.get(NDArrayIndex.point(0), NDArrayIndex.interval(4, 9));
            assertTrue(RowKernels.columnSums(a, dst), t.toString());
            assertTrue(a.sum(0).equalsWithEps(dst, t == DataType.FLOAT ? 1e-5 : 1e-13), t.toString());
            assertEquals(0.0, flat.get(NDArrayIndex.point(0), NDArrayIndex.interval(0, 4)).sumNumber().doubleValue());
            assertEquals(0.0, flat.get(NDArrayIndex.point(0), NDArrayIndex.interval(9, 12)).sumNumber().doubleValue());
            assertFalse(RowKernels.columnSums(a.dup('f'), dst), "'f' order is left to ND4J");
            assertFalse(RowKernels.columnSums(a, Nd4j.zeros(t, 4)), "a vector of another width");
        }
    }

    /**
     * Rows wider than the vector loops (389: whole vectors and a remainder), read from a block of
     * rows inside a larger array (a view at an offset), summed against a double reference.
     */
    @Test
    void columnSumsOfWideRowsInsideALargerArrayMatchADoubleReference() {
        INDArray big = random(DataType.FLOAT, 60, 389);
        INDArray a = big.get(NDArrayIndex.interval(7, 58), NDArrayIndex.all());
        INDArray dst = Nd4j.create(DataType.FLOAT, 389);
        assertTrue(RowKernels.columnSums(a, dst));
        for (int j = 0; j < 389; j++) {
            double want = 0;
            for (int r = 7; r < 58; r++) {
                want += big.getDouble(r, j);
            }
            assertEquals(want, dst.getDouble(j), 1e-5, "column " + j);
        }
    }
}
