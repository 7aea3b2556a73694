package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.quant.QuantType;

/**
 * The fused AVX-512 products of small batches, {@code out = g · dequant(W)ᵀ} and
 * {@code y = x · dequant(W)}, against dequantize-then-multiply in double: every register width of
 * the batch (1 to 4 vectors, full and partial) and batches that leave a short last group of rows,
 * row counts that leave a short last strip or chunk, row and column ranges that write only their
 * own part, 'c' and 'f' inputs (and outputs of the transposed product), both scale forms, FP4, the
 * smallest and the largest block, and the split over threads; and what they leave to the tiles.
 */
class FusedProductsTest {

    private static final Object[][] CASES = {
        // nIn, nOut, block, type, nested
        {13, 256, 32, QuantType.NF4, false},
        {131, 1024, 64, QuantType.NF4, true},
        {70, 384, 128, QuantType.FP4, true},
        {7, 4096, 4096, QuantType.NF4, false},
    };
    // batch 1 is the GEMV's (QuantizedProducts); 2 and 5 fill part of one vector, 16 all of it
    private static final int[] BATCHES = {2, 5, 16, 17, 33, 48, 64};

    private static boolean avx512() {
        return NativeKernels.level() == NativeKernels.LEVEL_AVX512;
    }

    private static double[][] reference(float[][] g, NativeKernelsTest.Matrix m) {
        double[][] out = new double[g.length][m.nIn()];
        for (int b = 0; b < g.length; b++) {
            for (int i = 0; i < m.nIn(); i++) {
                double s = 0;
                for (int k = 0; k < m.nOut(); k++) {
                    s += (double) g[b][k] * m.dense()[i * m.nOut() + k];
                }
                out[b][i] = s;
            }
        }
        return out;
    }

    /** Tolerance relative to the size of the k terms summed, as {@link NativeKernelsTest}'s. */
    private static void assertClose(double[][] expected, INDArray out, int i0, int i1, int k, String what) {
        float[][] actual = out.toFloatMatrix();
        double tol = 4e-4 * Math.sqrt(k);
        for (int b = 0; b < expected.length; b++) {
            for (int i = 0; i < expected[b].length; i++) {
                boolean inside = i >= i0 && i < i1;
                if (inside ? !(Math.abs(expected[b][i] - actual[b][i]) <= tol) : !Float.isNaN(actual[b][i])) {
                    throw new AssertionError(what + " [" + b + ", " + i + "]: expected "
                            + (inside ? String.valueOf(expected[b][i]) : "untouched NaN") + ", got " + actual[b][i]);
                }
            }
        }
    }

    private static INDArray nans(int rows, int cols, char order) {
        INDArray a = Nd4j.create(DataType.FLOAT, new long[] {rows, cols}, order);
        a.assign(Float.NaN);
        return a;
    }

    @Test
    void fusedProductEqualsReferenceForEveryBatchWidthLayoutAndRowRange() {
        assumeTrue(avx512(), "the fused kernel is AVX-512 only: " + NativeKernels.status());
        for (Object[] c : CASES) {
            NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random((int) c[0], (int) c[1], (int) c[2],
                    (QuantType) c[3], (boolean) c[4], 9);
            for (int batch : BATCHES) {
                INDArray gc = Nd4j.create(TestArrays.gaussian(batch * m.nOut(), batch), new long[] {batch, m.nOut()}, 'c');
                double[][] ref = reference(gc.toFloatMatrix(), m);
                for (char gOrder : new char[] {'c', 'f'}) {
                    for (char outOrder : new char[] {'c', 'f'}) {
                        INDArray g = gc.dup(gOrder);
                        String what = Arrays.toString(c) + " batch " + batch + " g '" + gOrder + "' out '" + outOrder + "'";
                        INDArray out = nans(batch, m.nIn(), outOrder);
                        assertTrue(NativeKernels.gemmTransposed(m.packed(), m.scales(), m.blockSize(), m.pair(), m.nIn(),
                                m.nOut(), g, out), what);
                        assertClose(ref, out, 0, m.nIn(), m.nOut(), what);
                        int i0 = m.nIn() / 3;
                        int i1 = m.nIn() - 1;
                        INDArray part = nans(batch, m.nIn(), outOrder);
                        NativeKernels.gemmTransposedRows(m.packed(), m.scales(), m.blockSize(), m.pair(), m.nIn(),
                                m.nOut(), g, part, i0, i1);
                        assertClose(ref, part, i0, i1, m.nOut(), what + " rows [" + i0 + ", " + i1 + ")");
                    }
                }
            }
        }
    }

    @Test
    void tiledMatmulTakesTheFusedKernelForSmallBatchesSplitOverThreads() {
        assumeTrue(avx512(), "the fused kernel is AVX-512 only: " + NativeKernels.status());
        // 64 · 131 · 1024 multiply-adds: enough to be split over the pool
        NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random(131, 1024, 64, QuantType.NF4, true, 10);
        INDArray g = Nd4j.create(TestArrays.gaussian(64 * 1024, 13), new long[] {64, 1024}, 'c');
        INDArray out = TiledMatmul.mmulTransposed(g, m.packed(), m.scales(), 64, m.pair(), 131, 1024, true, true);
        assertClose(reference(g.toFloatMatrix(), m), out, 0, 131, 1024, "through TiledMatmul");
    }

    @Test
    void largerBatchesViewsAndOtherLevelsAreLeftToTheTiles() {
        NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random(16, 256, 64, QuantType.NF4, false, 11);
        INDArray g65 = Nd4j.rand(DataType.FLOAT, 65, 256);
        assertFalse(NativeKernels.gemmTransposed(m.packed(), m.scales(), 64, m.pair(), 16, 256, g65,
                nans(65, 16, 'c')), "batch 65");
        INDArray big = Nd4j.rand(DataType.FLOAT, 4, 260);
        INDArray view = big.get(NDArrayIndex.all(), NDArrayIndex.interval(2, 258));
        INDArray out = nans(4, 16, 'c');
        assertFalse(NativeKernels.gemmTransposed(m.packed(), m.scales(), 64, m.pair(), 16, 256, view, out), "g a view");
        assertTrue(Float.isNaN(out.getFloat(0, 0)), "out untouched");
        INDArray outView = nans(4, 20, 'c').get(NDArrayIndex.all(), NDArrayIndex.interval(0, 16));
        assertFalse(NativeKernels.gemmTransposed(m.packed(), m.scales(), 64, m.pair(), 16, 256,
                Nd4j.rand(DataType.FLOAT, 4, 256), outView), "out a view");
        if (!avx512()) {
            assertFalse(NativeKernels.gemmTransposed(m.packed(), m.scales(), 64, m.pair(), 16, 256,
                    Nd4j.rand(DataType.FLOAT, 4, 256), nans(4, 16, 'c')), "no AVX-512: " + NativeKernels.status());
        }
    }

    private static double[][] forwardReference(float[][] x, NativeKernelsTest.Matrix m) {
        double[][] y = new double[x.length][m.nOut()];
        for (int b = 0; b < x.length; b++) {
            for (int i = 0; i < m.nIn(); i++) {
                for (int j = 0; j < m.nOut(); j++) {
                    y[b][j] += (double) x[b][i] * m.dense()[i * m.nOut() + j];
                }
            }
        }
        return y;
    }

    @Test
    void fusedForwardEqualsReferenceForEveryBatchLayoutAndColumnRange() {
        assumeTrue(avx512(), "the fused kernel is AVX-512 only: " + NativeKernels.status());
        for (Object[] c : CASES) {
            NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random((int) c[0], (int) c[1], (int) c[2],
                    (QuantType) c[3], (boolean) c[4], 12);
            for (int batch : new int[] {2, 5, 6, 7, 16, 33, 64}) {
                INDArray xc = Nd4j.create(TestArrays.gaussian(batch * m.nIn(), batch + 40), new long[] {batch, m.nIn()}, 'c');
                double[][] ref = forwardReference(xc.toFloatMatrix(), m);
                for (char xOrder : new char[] {'c', 'f'}) {
                    INDArray x = xc.dup(xOrder);
                    String what = Arrays.toString(c) + " batch " + batch + " x '" + xOrder + "'";
                    INDArray y = nans(batch, m.nOut(), 'c');
                    assertTrue(NativeKernels.mmulFused(m.packed(), m.scales(), m.blockSize(), m.pair(), m.nIn(), m.nOut(),
                            x, y), what);
                    assertClose(ref, y, 0, m.nOut(), m.nIn(), what);
                    int j0 = m.nOut() > 128 ? 64 : 0;
                    int j1 = m.nOut() > 128 ? m.nOut() - 64 : m.nOut();
                    INDArray part = nans(batch, m.nOut(), 'c');
                    NativeKernels.mmulFusedColumns(m.packed(), m.scales(), m.blockSize(), m.pair(), m.nIn(), m.nOut(),
                            x, part, j0, j1);
                    assertClose(ref, part, j0, j1, m.nIn(), what + " columns [" + j0 + ", " + j1 + ")");
                }
            }
        }
    }

    @Test
    void tiledMatmulTakesTheFusedForwardForSmallBatchesSplitOverThreads() {
        assumeTrue(avx512(), "the fused kernel is AVX-512 only: " + NativeKernels.status());
        // 64 · 300 · 1024 multiply-adds: enough to be split over the pool
        NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random(300, 1024, 64, QuantType.NF4, true, 13);
        INDArray x = Nd4j.create(TestArrays.gaussian(64 * 300, 14), new long[] {64, 300}, 'c');
        INDArray y = TiledMatmul.mmul(x, m.packed(), m.scales(), 64, m.pair(), 300, 1024, true, true);
        assertClose(forwardReference(x.toFloatMatrix(), m), y, 0, 1024, 300, "through TiledMatmul");
    }

    @Test
    void theFusedForwardLeavesNarrowWeightsLargerBatchesAndOtherOutputsToTheTiles() {
        NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random(16, 96, 32, QuantType.NF4, false, 15);
        assertFalse(NativeKernels.mmulFused(m.packed(), m.scales(), 32, m.pair(), 16, 96,
                Nd4j.rand(DataType.FLOAT, 4, 16), nans(4, 96, 'c')), "96 columns: not whole 64-column strips");
        NativeKernelsTest.Matrix w = NativeKernelsTest.Matrix.random(16, 256, 64, QuantType.NF4, false, 16);
        assertFalse(NativeKernels.mmulFused(w.packed(), w.scales(), 64, w.pair(), 16, 256,
                Nd4j.rand(DataType.FLOAT, 65, 16), nans(65, 256, 'c')), "batch 65");
        INDArray yF = nans(4, 256, 'f');
        assertFalse(NativeKernels.mmulFused(w.packed(), w.scales(), 64, w.pair(), 16, 256,
                Nd4j.rand(DataType.FLOAT, 4, 16), yF), "y in 'f' order");
        assertTrue(Float.isNaN(yF.getFloat(0, 0)), "y untouched");
    }
}
