package org.peft4j.quant.internal;

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
 * against dequantize-then-multiply accumulated in double, over several tiles with a short last
 * one, for plain inputs and for inputs that are views (offset and strided).
 */
class TiledMatmulTest {
    /** 1500 · 1000 floats span two tiles of 1048 rows and 452 rows. */
    private static final int N_IN = 1500;
    private static final int N_OUT = 1000;

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
        float[] w = TestArrays.gaussian(N_IN * N_OUT, 3);
        QuantizedTensor q = QuantizedTensor.quantize(w, new long[] {N_IN, N_OUT}, QuantSpec.nf4());
        byte[] packed = q.packedCodes();
        BlockScales scales = BlockScales.plain(q.absmax());
        float[] pair = Blockwise4bit.pairTable(QuantType.NF4);
        float[] dq = q.dequantize();
        int batch = 3;

        INDArray xBig = Nd4j.create(TestArrays.gaussian(5 * (N_IN + 7), 4), new long[] {5, N_IN + 7}, 'c');
        INDArray gBig = Nd4j.create(TestArrays.gaussian(5 * (N_OUT + 7), 5), new long[] {5, N_OUT + 7}, 'c');
        INDArray[] xs = {
            xBig.get(NDArrayIndex.interval(0, batch), NDArrayIndex.interval(0, N_IN)).dup('c'),
            xBig.get(NDArrayIndex.interval(2, 2 + batch), NDArrayIndex.interval(5, 5 + N_IN)),
            xBig.get(NDArrayIndex.interval(1, 1 + batch), NDArrayIndex.interval(3, 3 + N_IN)).dup('f'),
        };
        INDArray[] gs = {
            gBig.get(NDArrayIndex.interval(0, batch), NDArrayIndex.interval(0, N_OUT)).dup('c'),
            gBig.get(NDArrayIndex.interval(2, 2 + batch), NDArrayIndex.interval(5, 5 + N_OUT)),
            gBig.get(NDArrayIndex.interval(1, 1 + batch), NDArrayIndex.interval(3, 3 + N_OUT)).dup('f'),
        };
        for (boolean direct : new boolean[] {true, false}) {
            for (int v = 0; v < xs.length; v++) {
                String what = (direct ? "direct BLAS" : "Nd4j.gemm")
                        + (v == 0 ? ", plain input" : v == 1 ? ", view input" : ", F-order input");
                INDArray y = TiledMatmul.mmul(xs[v], packed, scales, 64, pair, N_IN, N_OUT, direct);
                assertClose(forward(xs[v].toFloatMatrix(), dq), y.toFloatMatrix(), N_IN, "mmul, " + what);
                INDArray e = TiledMatmul.mmulTransposed(gs[v], packed, scales, 64, pair, N_IN, N_OUT, direct);
                assertClose(transposed(gs[v].toFloatMatrix(), dq), e.toFloatMatrix(), N_OUT, "mmulTransposed, " + what);
            }
        }
    }

    private static double[][] forward(float[][] x, float[] w) {
        double[][] y = new double[x.length][N_OUT];
        for (int b = 0; b < x.length; b++) {
            for (int i = 0; i < N_IN; i++) {
                for (int j = 0; j < N_OUT; j++) {
                    y[b][j] += (double) x[b][i] * w[i * N_OUT + j];
                }
            }
        }
        return y;
    }

    private static double[][] transposed(float[][] g, float[] w) {
        double[][] out = new double[g.length][N_IN];
        for (int b = 0; b < g.length; b++) {
            for (int i = 0; i < N_IN; i++) {
                double s = 0;
                for (int j = 0; j < N_OUT; j++) {
                    s += (double) g[b][j] * w[i * N_OUT + j];
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
