package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Each fast kernel against dequantize-then-multiply accumulated in double. */
class KernelEquivalenceTest {

    /** Odd shapes: not multiples of the block, of 4 rows, or of the GEMM tile. */
    private static final int[][] SHAPES = {{1, 1}, {3, 5}, {37, 91}, {130, 64}, {257, 333}, {1100, 1031}};

    private static QuantizedTensor weight(int nIn, int nOut, QuantSpec spec, long seed) {
        float[] w = ErrorStatisticsTest.gaussian(nIn * nOut, seed);
        return QuantizedTensor.quantize(w, new long[] {nIn, nOut}, spec);
    }

    private static double[][] reference(float[] x, int batch, float[] w, int nIn, int nOut) {
        double[][] y = new double[batch][nOut];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < nIn; i++) {
                double xi = x[b * nIn + i];
                for (int j = 0; j < nOut; j++) {
                    y[b][j] += xi * w[i * nOut + j];
                }
            }
        }
        return y;
    }

    private static double[][] referenceTransposed(float[] g, int batch, float[] w, int nIn, int nOut) {
        double[][] out = new double[batch][nIn];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < nIn; i++) {
                double s = 0;
                for (int j = 0; j < nOut; j++) {
                    s += (double) g[b * nOut + j] * w[i * nOut + j];
                }
                out[b][i] = s;
            }
        }
        return out;
    }

    private static void assertClose(double[] expected, float[] actual, int k, String what) {
        // Tolerance relative to the size of the terms summed (|x|·|w| grows like sqrt(k)).
        double scale = 0;
        for (double e : expected) {
            scale = Math.max(scale, Math.abs(e));
        }
        double tol = 1e-4 * Math.max(scale, Math.sqrt(k));
        for (int i = 0; i < expected.length; i++) {
            if (Math.abs(expected[i] - actual[i]) > tol) {
                throw new AssertionError(what + " element " + i + ": expected " + expected[i] + " got " + actual[i]
                        + " (tolerance " + tol + ")");
            }
        }
    }

    @Test
    void gemvEqualsReferenceOnOddShapes() {
        for (QuantSpec spec : new QuantSpec[] {new QuantSpec(QuantType.NF4, 64, false), QuantSpec.nf4(),
                new QuantSpec(QuantType.FP4, 32, true)}) {
            for (int[] s : SHAPES) {
                QuantizedTensor w = weight(s[0], s[1], spec, s[0] * 31L + s[1]);
                float[] x = ErrorStatisticsTest.gaussian(s[0], 1);
                float[] y = new float[s[1]];
                QuantizedMatmul.gemv(x, w, y);
                assertClose(reference(x, 1, w.dequantize(), s[0], s[1])[0], y, s[0], "gemv " + spec + " " + s[0] + "x" + s[1]);

                float[] g = ErrorStatisticsTest.gaussian(s[1], 2);
                float[] e = new float[s[0]];
                QuantizedMatmul.gemvTransposed(g, w, e);
                assertClose(referenceTransposed(g, 1, w.dequantize(), s[0], s[1])[0], e, s[1],
                        "gemvTransposed " + spec + " " + s[0] + "x" + s[1]);
            }
        }
    }

    @Test
    void gemvAlignedFastPathEqualsReference() {
        // nOut a multiple of the block: 519 rows = 64 groups of eight and 7 single rows,
        // through the eight-row and one-row loops of both products, for both code tables.
        for (QuantSpec spec : new QuantSpec[] {QuantSpec.nf4(), new QuantSpec(QuantType.FP4, 128, false)}) {
            QuantizedTensor w = weight(519, 1024, spec, 99);
            float[] x = ErrorStatisticsTest.gaussian(519, 4);
            float[] y = new float[1024];
            QuantizedMatmul.gemv(x, w, y);
            assertClose(reference(x, 1, w.dequantize(), 519, 1024)[0], y, 519, "aligned gemv " + spec);

            float[] g = ErrorStatisticsTest.gaussian(1024, 5);
            float[] e = new float[519];
            QuantizedMatmul.gemvTransposed(g, w, e);
            assertClose(referenceTransposed(g, 1, w.dequantize(), 519, 1024)[0], e, 1024, "aligned gemvTransposed " + spec);
        }
    }

    @Test
    void theScalarKernelsRefuseATableThatIsNotTheirOwn() {
        float[] copy = org.peft4j.quant.internal.Blockwise4bit.pairTable(QuantType.NF4).clone();
        QuantizedTensor w = weight(8, 64, QuantSpec.nf4(), 3);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> org.peft4j.quant.internal.Gemv4bit.gemvScalar(w.packedCodes(), null, 64, copy, 8, 64,
                        new float[8], 0, new float[64], 0));
        org.junit.jupiter.api.Assertions.assertEquals(
                "pair table must be Blockwise4bit.pairTable(type) itself, not a copy", e.getMessage());
    }

    @Test
    void batchedMatmulEqualsReferenceOnOddShapes() {
        int batch = 7;
        for (int[] s : SHAPES) {
            QuantizedTensor w = weight(s[0], s[1], QuantSpec.nf4(), s[0] * 17L + s[1]);
            float[] wd = w.dequantize();
            float[] x = ErrorStatisticsTest.gaussian(batch * s[0], 3);
            INDArray y = QuantizedMatmul.mmul(Nd4j.create(x, new long[] {batch, s[0]}, 'c'), w);
            double[][] ref = reference(x, batch, wd, s[0], s[1]);
            for (int b = 0; b < batch; b++) {
                assertClose(ref[b], y.getRow(b).toFloatVector(), s[0], "mmul " + s[0] + "x" + s[1] + " row " + b);
            }

            float[] g = ErrorStatisticsTest.gaussian(batch * s[1], 5);
            INDArray e = QuantizedMatmul.mmulTransposed(Nd4j.create(g, new long[] {batch, s[1]}, 'c'), w);
            double[][] refT = referenceTransposed(g, batch, wd, s[0], s[1]);
            for (int b = 0; b < batch; b++) {
                assertClose(refT[b], e.getRow(b).toFloatVector(), s[1], "mmulTransposed " + s[0] + "x" + s[1] + " row " + b);
            }
        }
    }

    @Test
    void batchOneMatmulUsesGemvAndAgreesWithNd4j() {
        QuantizedTensor w = weight(300, 200, QuantSpec.nf4(), 8);
        INDArray x = Nd4j.create(ErrorStatisticsTest.gaussian(300, 6), new long[] {1, 300}, 'c');
        INDArray expected = x.mmul(w.toINDArray());
        assertArrayEquals(expected.toFloatVector(), QuantizedMatmul.mmul(x, w).toFloatVector(), 2e-4f);
    }

    @Test
    void multiTileMatmulEqualsReference() {
        // nIn · nOut above one tile (2^20 floats), with a short last tile.
        int nIn = 1500;
        int nOut = 1000;
        QuantizedTensor w = weight(nIn, nOut, QuantSpec.nf4(), 21);
        float[] x = ErrorStatisticsTest.gaussian(3 * nIn, 8);
        INDArray y = QuantizedMatmul.mmul(Nd4j.create(x, new long[] {3, nIn}, 'c'), w);
        double[][] ref = reference(x, 3, w.dequantize(), nIn, nOut);
        for (int b = 0; b < 3; b++) {
            assertClose(ref[b], y.getRow(b).toFloatVector(), nIn, "multi-tile mmul row " + b);
        }
        float[] g = ErrorStatisticsTest.gaussian(3 * nOut, 9);
        INDArray e = QuantizedMatmul.mmulTransposed(Nd4j.create(g, new long[] {3, nOut}, 'c'), w);
        double[][] refT = referenceTransposed(g, 3, w.dequantize(), nIn, nOut);
        for (int b = 0; b < 3; b++) {
            assertClose(refT[b], e.getRow(b).toFloatVector(), nOut, "multi-tile mmulTransposed row " + b);
        }
    }

    @Test
    void toIndArrayEqualsDequantize() {
        QuantizedTensor w = weight(33, 65, QuantSpec.nf4(), 12);
        assertArrayEquals(w.dequantize(), w.toINDArray().reshape(33 * 65).toFloatVector(), 0f);
        float[] part = new float[100];
        w.dequantize(1001, 1101, part, 0);
        float[] all = w.dequantize();
        assertArrayEquals(java.util.Arrays.copyOfRange(all, 1001, 1101), part, 0f);
    }
}
