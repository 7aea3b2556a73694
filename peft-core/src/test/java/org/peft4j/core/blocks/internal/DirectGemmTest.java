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
 * {@link DirectGemm#gemm} (a direct {@code cblas_sgemm} for float32 matrices on the CPU backend)
 * against the product computed in double and against {@code Nd4j.gemm} (its fallback): every
 * combination of transposes, 'c'/'f' operands and outputs, {@code alpha}, {@code beta} 0 and 1,
 * views of a flat vector (as parameters and their gradients are), rows of a wider matrix, and the
 * arrays it must leave to {@code Nd4j.gemm} (column slices, double arrays).
 */
class DirectGemmTest {

    private static INDArray random(long seed, long rows, long cols, char order) {
        Nd4j.getRandom().setSeed(seed);
        return Nd4j.rand(DataType.DOUBLE, rows, cols).subi(0.5).castTo(DataType.FLOAT).dup(order);
    }

    /** {@code alpha·op(a)·op(b) + beta·c0} in double. */
    private static INDArray expected(INDArray a, INDArray b, INDArray c0, boolean ta, boolean tb, double alpha,
                                     double beta) {
        INDArray ad = a.castTo(DataType.DOUBLE);
        INDArray bd = b.castTo(DataType.DOUBLE);
        INDArray p = (ta ? ad.transpose() : ad).mmul(tb ? bd.transpose() : bd).muli(alpha);
        return p.addi(c0.castTo(DataType.DOUBLE).mul(beta));
    }

    private static void assertClose(INDArray expected, INDArray actual, double tolerance, String what) {
        assertEquals(expected.size(0), actual.size(0), what);
        assertEquals(expected.size(1), actual.size(1), what);
        for (long r = 0; r < expected.size(0); r++) {
            for (long c = 0; c < expected.size(1); c++) {
                assertEquals(expected.getDouble(r, c), actual.getDouble(r, c), tolerance, what + " (" + r + ", " + c + ")");
            }
        }
    }

    @Test
    void everyOrderAndTransposeGivesTheProductAndMatchesNd4j() {
        assertTrue(DirectGemm.available(), "the tests run on the CPU backend with its OpenBLAS");
        int m = 7;
        int k = 5;
        int n = 9;
        char[] orders = {'c', 'f'};
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                for (char oa : orders) {
                    for (char ob : orders) {
                        for (char oc : orders) {
                            for (double beta : new double[] {0, 1}) {
                                String what = "ta " + ta + " tb " + tb + " " + oa + ob + oc + " beta " + beta;
                                INDArray a = ta ? random(1, k, m, oa) : random(1, m, k, oa);
                                INDArray b = tb ? random(2, n, k, ob) : random(2, k, n, ob);
                                INDArray c = random(3, m, n, oc);
                                INDArray viaNd4j = c.dup(oc);
                                assertTrue(DirectGemm.operand(a) && DirectGemm.operand(b) && DirectGemm.operand(c), what);
                                INDArray want = expected(a, b, c, ta, tb, 0.5, beta);
                                DirectGemm.gemm(a, b, c, ta, tb, 0.5, beta);
                                DirectGemm.gemm(a, b, viaNd4j, ta, tb, 0.5, beta, false);
                                assertEquals(oc, c.ordering(), what);
                                assertClose(want, c, 1e-5, what);
                                assertClose(viaNd4j, c, 1e-6, what + " against Nd4j.gemm");
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void vectorsAndSingleRowsOrColumnsGiveTheProduct() {
        long[][] shapes = {{1, 6, 4}, {6, 1, 4}, {6, 4, 1}, {1, 1, 1}, {1, 6, 1}};
        for (long[] s : shapes) {
            for (char o : new char[] {'c', 'f'}) {
                for (boolean ta : new boolean[] {false, true}) {
                    INDArray a = ta ? random(10, s[1], s[0], o) : random(10, s[0], s[1], o);
                    INDArray b = random(11, s[1], s[2], o);
                    INDArray c = random(12, s[0], s[2], o);
                    String what = java.util.Arrays.toString(s) + " " + o + " ta " + ta;
                    INDArray want = expected(a, b, c, ta, false, 1.0, 1.0);
                    DirectGemm.gemm(a, b, c, ta, false, 1.0, 1.0);
                    assertClose(want, c, 1e-5, what);
                }
            }
        }
    }

    @Test
    void viewsOfAFlatVectorAreReadAndWrittenInPlace() {
        INDArray flat = random(13, 1, 200, 'c');
        INDArray before = flat.dup();
        INDArray a = flat.get(NDArrayIndex.interval(0, 1), NDArrayIndex.interval(10, 10 + 6 * 4)).reshape('f', 6, 4);
        INDArray g = flat.get(NDArrayIndex.interval(0, 1), NDArrayIndex.interval(50, 50 + 6 * 3)).reshape('c', 6, 3);
        INDArray gf = flat.get(NDArrayIndex.interval(0, 1), NDArrayIndex.interval(100, 100 + 6 * 3)).reshape('f', 6, 3);
        INDArray x = random(4, 5, 6, 'c');
        INDArray h = random(5, 5, 3, 'c');
        assertTrue(DirectGemm.operand(a) && DirectGemm.operand(g) && DirectGemm.operand(gf));
        // g = xᵀ·h written into the views: only their 18 elements change
        INDArray want = expected(x, h, g, true, false, 1.0, 0.0);
        DirectGemm.gemm(x, h, g, true, false, 1.0, 0.0);
        DirectGemm.gemm(x, h, gf, true, false, 1.0, 0.0);
        assertClose(want, g, 1e-5, "'c' gradient view");
        assertClose(want, gf, 1e-5, "'f' gradient view");
        for (int i = 0; i < 200; i++) {
            if (i < 50 || i >= 68 && i < 100 || i >= 118) {
                assertEquals(before.getFloat(0, i), flat.getFloat(0, i), 0f, "element " + i + " outside the views");
            }
        }
        INDArray z = random(6, 5, 4, 'c');
        INDArray wantZ = expected(x, a, z, false, false, 2.0, 1.0);
        DirectGemm.gemm(x, a, z, false, false, 2.0, 1.0);
        assertClose(wantZ, z, 1e-5, "parameter view operand");
    }

    @Test
    void rowBlocksOfAWiderMatrixUseItsLeadingDimension() {
        INDArray wide = random(14, 10, 8, 'c');
        INDArray rows = wide.get(NDArrayIndex.interval(3, 7), NDArrayIndex.all());
        INDArray left = wide.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 5));
        INDArray b = random(15, 8, 3, 'c');
        assertTrue(DirectGemm.operand(rows), "rows 3..6 of a 'c' matrix are dense rows");
        assertTrue(DirectGemm.operand(left), "the first 5 columns of a 'c' matrix are rows with leading dimension 8");
        INDArray c = Nd4j.create(DataType.FLOAT, 4, 3);
        DirectGemm.gemm(rows, b, c, false, false, 1.0, 0.0);
        assertClose(expected(rows, b, c, false, false, 1.0, 0.0), c, 1e-5, "row block");
        INDArray b5 = random(16, 5, 3, 'f');
        INDArray c2 = Nd4j.create(DataType.FLOAT, new long[] {10, 3}, 'f');
        DirectGemm.gemm(left, b5, c2, false, false, 1.0, 0.0);
        assertClose(expected(left, b5, c2, false, false, 1.0, 0.0), c2, 1e-5, "column block");
    }

    @Test
    void stridedSlicesAndDoublesAreLeftToNd4j() {
        INDArray wide = random(7, 6, 10, 'c');
        INDArray everyOther = wide.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 2, 8));
        INDArray b = random(8, 4, 3, 'c');
        assertFalse(DirectGemm.operand(everyOther), "columns 0, 2, 4, 6 have stride 2");
        INDArray c = Nd4j.create(DataType.FLOAT, 6, 3);
        DirectGemm.gemm(everyOther, b, c, false, false, 1.0, 0.0);
        assertClose(expected(everyOther, b, c, false, false, 1.0, 0.0), c, 1e-5, "strided slice");
        INDArray ad = random(9, 6, 4, 'c').castTo(DataType.DOUBLE);
        INDArray bd = b.castTo(DataType.DOUBLE);
        INDArray cd = Nd4j.create(DataType.DOUBLE, 6, 3);
        assertFalse(DirectGemm.operand(ad));
        DirectGemm.gemm(ad, bd, cd, false, false, 1.0, 0.0);
        assertClose(ad.mmul(bd), cd, 1e-12, "double");
    }
}
