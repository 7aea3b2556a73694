package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;


import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.quant.QuantSpec;
import org.peft4j.quant.QuantType;
import org.peft4j.quant.QuantizedTensor;

/**
 * Both product paths of {@link TiledMatmul} — OpenBLAS called directly and {@code Nd4j.gemm} —
 * against dequantize-then-multiply accumulated in double, over several panels with short last
 * ones, for plain inputs and for inputs that are views (offset and strided): a width of whole
 * 64-blocks (panels filled by the native kernel where it runs) and one that is not (the Java fill).
 */
class TiledMatmulTest {

    @Test
    void directBlasIsAvailableOnTheCpuBackendSoTheFastPathIsTested() {
        assertTrue(HostSgemm.available(), "tests run on ND4J's CPU backend, where cblas_sgemm must be found");
    }

    @Test
    void plainMeansDenseCOrderFromTheStartOfItsBuffer() {
        INDArray big = Nd4j.rand(DataType.FLOAT, 4, 6);
        assertTrue(HostSgemm.isPlain(big));
        assertFalse(HostSgemm.isPlain(big.get(NDArrayIndex.interval(1, 3), NDArrayIndex.all())), "row slice with offset");
        assertFalse(HostSgemm.isPlain(big.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 3))), "column slice");
        assertFalse(HostSgemm.isPlain(big.dup('f')), "F order");
        assertFalse(HostSgemm.isPlain(big.castTo(DataType.DOUBLE)), "double");
    }

    @Test
    void bothPathsEqualTheReferenceForPlainAndViewInputs() {
        // [1500, 1000]: row panels of 262 rows (five, and 190), transposed panels of 512 and 488
        // columns (not whole blocks: the Java fill) by 512 rows (two, and 476)
        check(1500, 1000);
        // [1300, 1536]: row panels of 128 rows (ten, and 20), transposed panels of 512 columns
        // (whole blocks)
        check(1300, 1536);
    }

    @Test
    void smallBatchesUseForwardTilesOfAtMost128RowsOfAWideWeight() {
        assertEquals(128, TiledMatmul.forwardRows(32, 1024, 1024), "1 MiB tile = 256 rows, capped");
        assertEquals(128, TiledMatmul.forwardRows(64, 384, 1536), "170 rows, capped");
        assertEquals(256, TiledMatmul.forwardRows(512, 1024, 1024), "a large batch keeps the full tile");
        assertEquals(682, TiledMatmul.forwardRows(64, 1536, 384), "a narrow weight keeps the full tile");
        assertEquals(64, TiledMatmul.forwardRows(64, 4096, 4096), "tiles already below the cap");
    }

    /**
     * {@code mmulOnto} adds {@code x·W} to what {@code y} holds, over several row panels (the first
     * one included), for a plain and an 'f'-order {@code x}; {@code accumulates} refuses what the
     * tiles cannot accumulate onto (the fused kernels' batches, double, an 'f'-order {@code y}).
     */
    @Test
    void theAccumulatingProductAddsToWhatYHolds() {
        int nIn = 600;
        int nOut = 512; // row panels of 512 rows and 88
        int batch = 70;
        float[] w = TestArrays.gaussian(nIn * nOut, 6);
        QuantizedTensor q = QuantizedTensor.quantize(w, new long[] {nIn, nOut}, QuantSpec.nf4());
        float[] dq = q.dequantize();
        float[] pair = Blockwise4bit.pairTable(QuantType.NF4);
        INDArray y0 = Nd4j.create(TestArrays.gaussian(batch * nOut, 7), new long[] {batch, nOut}, 'c');
        for (char order : new char[] {'c', 'f'}) {
            INDArray x = Nd4j.create(TestArrays.gaussian(batch * nIn, 8), new long[] {batch, nIn}, 'c').dup(order);
            INDArray y = y0.dup('c');
            assertTrue(TiledMatmul.accumulates(x, y));
            TiledMatmul.mmulOnto(x, q.packedCodes(), BlockScales.plain(q.absmax()), 64, pair, nIn, nOut, y);
            double[][] expected = forward(x.toFloatMatrix(), dq, nIn, nOut);
            float[][] start = y0.toFloatMatrix();
            for (int b = 0; b < batch; b++) {
                for (int j = 0; j < nOut; j++) {
                    expected[b][j] += start[b][j];
                }
            }
            assertClose(expected, y.toFloatMatrix(), nIn, "mmulOnto, x '" + order + "'");
        }
        INDArray x = Nd4j.rand(DataType.FLOAT, batch, nIn);
        assertFalse(TiledMatmul.accumulates(x.get(NDArrayIndex.interval(0, 64), NDArrayIndex.all()).dup(),
                Nd4j.create(DataType.FLOAT, 64, nOut)), "64 rows: the fused kernels' batch");
        assertFalse(TiledMatmul.accumulates(x.castTo(DataType.DOUBLE), Nd4j.create(DataType.DOUBLE, batch, nOut)));
        assertFalse(TiledMatmul.accumulates(x, Nd4j.create(DataType.FLOAT, new long[] {batch, nOut}, 'f')));
    }

    private static void check(int nIn, int nOut) {
        float[] w = TestArrays.gaussian(nIn * nOut, 3);
        QuantizedTensor q = QuantizedTensor.quantize(w, new long[] {nIn, nOut}, QuantSpec.nf4());
        byte[] packed = q.packedCodes();
        BlockScales scales = BlockScales.plain(q.absmax());
        float[] pair = Blockwise4bit.pairTable(QuantType.NF4);
        float[] dq = q.dequantize();
        int batch = 3;

        INDArray xBig = Nd4j.create(TestArrays.gaussian(5 * (nIn + 7), 4), new long[] {5, nIn + 7}, 'c');
        INDArray gBig = Nd4j.create(TestArrays.gaussian(5 * (nOut + 7), 5), new long[] {5, nOut + 7}, 'c');
        INDArray[] xs = {
            xBig.get(NDArrayIndex.interval(0, batch), NDArrayIndex.interval(0, nIn)).dup('c'),
            xBig.get(NDArrayIndex.interval(2, 2 + batch), NDArrayIndex.interval(5, 5 + nIn)),
            xBig.get(NDArrayIndex.interval(1, 1 + batch), NDArrayIndex.interval(3, 3 + nIn)).dup('f'),
        };
        INDArray[] gs = {
            gBig.get(NDArrayIndex.interval(0, batch), NDArrayIndex.interval(0, nOut)).dup('c'),
            gBig.get(NDArrayIndex.interval(2, 2 + batch), NDArrayIndex.interval(5, 5 + nOut)),
            gBig.get(NDArrayIndex.interval(1, 1 + batch), NDArrayIndex.interval(3, 3 + nOut)).dup('f'),
        };
        for (boolean direct : new boolean[] {true, false}) {
            for (int v = 0; v < xs.length; v++) {
                String what = (direct ? "direct BLAS" : "Nd4j.gemm")
                        + (v == 0 ? ", plain input" : v == 1 ? ", view input" : ", F-order input");
                INDArray y = TiledMatmul.mmul(xs[v], packed, scales, 64, pair, nIn, nOut, direct, false);
                assertClose(forward(xs[v].toFloatMatrix(), dq, nIn, nOut), y.toFloatMatrix(), nIn, "mmul, " + what);
                INDArray e = TiledMatmul.mmulTransposed(gs[v], packed, scales, 64, pair, nIn, nOut, direct, false);
                assertClose(transposed(gs[v].toFloatMatrix(), dq, nIn, nOut), e.toFloatMatrix(), nOut, "mmulTransposed, " + what);
            }
        }
    }

    private static double[][] forward(float[][] x, float[] w, int nIn, int nOut) {
        double[][] y = new double[x.length][nOut];
        for (int b = 0; b < x.length; b++) {
            for (int i = 0; i < nIn; i++) {
                for (int j = 0; j < nOut; j++) {
                    y[b][j] += (double) x[b][i] * w[i * nOut + j];
                }
            }
        }
        return y;
    }

    private static double[][] transposed(float[][] g, float[] w, int nIn, int nOut) {
        double[][] out = new double[g.length][nIn];
        for (int b = 0; b < g.length; b++) {
            for (int i = 0; i < nIn; i++) {
                double s = 0;
                for (int j = 0; j < nOut; j++) {
                    s += (double) g[b][j] * w[i * nOut + j];
                }
                out[b][i] = s;
            }
        }
        return out;
    }

    /** Tolerance relative to the size of the terms summed (|x|·|w| grows like sqrt(k)). */
    private static void assertClose(double[][] expected, float[][] actual, int k, String what) {
        double tol = 1e-4 * Math.sqrt(k);
        for (int b = 0; b < expected.length; b++) {
            for (int j = 0; j < expected[b].length; j++) {
                if (Math.abs(expected[b][j] - actual[b][j]) > tol) {
                    throw new AssertionError(what + " [" + b + ", " + j + "]: expected " + expected[b][j]
                            + " got " + actual[b][j] + " (tolerance " + tol + ")");
                }
            }
        }
    }
}
