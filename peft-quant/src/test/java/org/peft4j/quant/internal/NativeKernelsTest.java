package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.quant.QuantType;

/**
 * The native GEMVs (every CPU level this machine has, so the AVX2 kernel is tested on AVX-512
 * machines too) against dequantize-then-multiply in double, the bounds the Java side checks
 * before calling C, and that a build that compiled the library really uses it: peft-quant's
 * native profile sets {@code peft4j.test.native.expected=true}, so a library that silently failed
 * to load fails here instead of every other test quietly running the Java kernels.
 */
class NativeKernelsTest {

    /** A quantized [nIn, nOut] matrix (plain or double-quantized scales) and its dequantized floats (shared with FusedTransposedTest). */
    record Matrix(int nIn, int nOut, int blockSize, float[] pair, byte[] packed, BlockScales scales,
                          float[] dense) {
        static Matrix random(int nIn, int nOut, int blockSize, QuantType type, boolean nested, long seed) {
            float[] w = TestArrays.gaussian(nIn * nOut, seed);
            byte[] packed = new byte[w.length / 2];
            float[] absmax = new float[w.length / blockSize];
            Blockwise4bit.quantize(w, 0, w.length, blockSize, type, packed, absmax);
            BlockScales scales = nested ? BlockScales.doubleQuantize(absmax, 256) : BlockScales.plain(absmax);
            float[] pair = Blockwise4bit.pairTable(type);
            float[] dense = new float[w.length];
            Blockwise4bit.dequantize(packed, scales, blockSize, pair, 0, w.length, dense, 0);
            return new Matrix(nIn, nOut, blockSize, pair, packed, scales, dense);
        }
    }

    private static final Object[][] CASES = {
        // nIn, nOut, block, type, nested: odd row counts (the one-row tail of the two-row loop),
        // the smallest block, FP4, and both scale forms.
        {37, 256, 32, QuantType.NF4, false},
        {519, 1024, 64, QuantType.NF4, true},
        {64, 384, 128, QuantType.FP4, true},
        {3, 4096, 4096, QuantType.NF4, false},
    };

    private static int[] levels() {
        return NativeKernels.level() == NativeKernels.LEVEL_AVX512
                ? new int[] {NativeKernels.LEVEL_AVX2, NativeKernels.LEVEL_AVX512}
                : new int[] {NativeKernels.LEVEL_AVX2};
    }

    private static void assertClose(double[] expected, float[] actual, int off, int from, int to, int k, String what) {
        double tol = 1e-4 * Math.sqrt(k) * 4;
        for (int i = from; i < to; i++) {
            if (!(Math.abs(expected[i] - actual[off + i]) <= tol)) {
                throw new AssertionError(what + " element " + i + ": expected " + expected[i] + " got "
                        + actual[off + i] + " (tolerance " + tol + ")");
            }
        }
    }

    @Test
    void nativeKernelsAreInUseWhereTheBuildMadeThem() {
        assumeTrue(Boolean.getBoolean("peft4j.test.native.expected"), "this build did not compile the native library");
        assertTrue(NativeKernels.enabled(), NativeKernels.status());
    }

    @Test
    void forwardEqualsReferenceOnColumnRangesAtEveryLevel() {
        assumeTrue(NativeKernels.enabled(), NativeKernels.status());
        for (Object[] c : CASES) {
            Matrix m = Matrix.random((int) c[0], (int) c[1], (int) c[2], (QuantType) c[3], (boolean) c[4], 7);
            float[] x = TestArrays.gaussian(m.nIn + 3, 11);
            double[] ref = new double[m.nOut];
            for (int i = 0; i < m.nIn; i++) {
                for (int j = 0; j < m.nOut; j++) {
                    ref[j] += (double) x[3 + i] * m.dense[i * m.nOut + j];
                }
            }
            int[][] ranges = {{0, m.nOut}, {m.blockSize, m.nOut - (m.nOut > m.blockSize ? m.blockSize : 0)}};
            for (int level : levels()) {
                for (int[] r : ranges) {
                    if (r[0] > r[1]) {
                        continue;
                    }
                    float[] y = new float[m.nOut + 5];
                    Arrays.fill(y, Float.NaN);
                    NativeKernels.gemvColumns(level, m.packed, m.scales, m.blockSize, m.pair, m.nIn, m.nOut,
                            x, 3, y, 5, r[0], r[1]);
                    String what = "level " + level + " " + Arrays.toString(c) + " columns " + Arrays.toString(r);
                    assertClose(ref, y, 5, r[0], r[1], m.nIn, what);
                    for (int j = 0; j < y.length; j++) {
                        if (j < 5 + r[0] || j >= 5 + r[1]) {
                            assertTrue(Float.isNaN(y[j]), what + ": wrote outside its range at " + j);
                        }
                    }
                }
            }
        }
    }

    @Test
    void transposedEqualsReferenceOnRowRangesAtEveryLevel() {
        assumeTrue(NativeKernels.enabled(), NativeKernels.status());
        for (Object[] c : CASES) {
            Matrix m = Matrix.random((int) c[0], (int) c[1], (int) c[2], (QuantType) c[3], (boolean) c[4], 8);
            float[] g = TestArrays.gaussian(m.nOut + 2, 12);
            double[] ref = new double[m.nIn];
            for (int i = 0; i < m.nIn; i++) {
                for (int j = 0; j < m.nOut; j++) {
                    ref[i] += (double) g[2 + j] * m.dense[i * m.nOut + j];
                }
            }
            for (int level : levels()) {
                int i0 = m.nIn / 3;
                int i1 = m.nIn - 1;
                float[] out = new float[m.nIn + 1];
                Arrays.fill(out, Float.NaN);
                NativeKernels.gemvTransposedRows(level, m.packed, m.scales, m.blockSize, m.pair, m.nIn, m.nOut,
                        g, 2, out, 1, i0, i1);
                String what = "level " + level + " " + Arrays.toString(c) + " rows " + i0 + ".." + i1;
                assertClose(ref, out, 1, i0, i1, m.nOut, what);
                for (int i = 0; i < out.length; i++) {
                    if (i < 1 + i0 || i >= 1 + i1) {
                        assertTrue(Float.isNaN(out[i]), what + ": wrote outside its range at " + i);
                    }
                }
            }
        }
    }

    @Test
    void theDispatchingProductsAgreeWithTheJavaKernels() {
        assumeTrue(NativeKernels.enabled(), NativeKernels.status());
        // Large enough to be split over the pool.
        Matrix m = Matrix.random(512, 1024, 64, QuantType.NF4, true, 9);
        float[] x = TestArrays.gaussian(512, 13);
        float[] yNative = new float[1024];
        float[] yJava = new float[1024];
        Gemv4bit.gemv(m.packed, m.scales, 64, m.pair, 512, 1024, x, 0, yNative, 0);
        Gemv4bit.gemvScalar(m.packed, m.scales, 64, m.pair, 512, 1024, x, 0, yJava, 0);
        double[] expected = new double[1024];
        for (int j = 0; j < 1024; j++) {
            expected[j] = yJava[j];
        }
        assertClose(expected, yNative, 0, 0, 1024, 512, "gemv");

        float[] g = TestArrays.gaussian(1024, 14);
        float[] eNative = new float[512];
        float[] eJava = new float[512];
        Gemv4bit.gemvTransposed(m.packed, m.scales, 64, m.pair, 512, 1024, g, 0, eNative, 0);
        Gemv4bit.gemvTransposedScalar(m.packed, m.scales, 64, m.pair, 512, 1024, g, 0, eJava, 0);
        double[] expectedT = new double[512];
        for (int i = 0; i < 512; i++) {
            expectedT[i] = eJava[i];
        }
        assertClose(expectedT, eNative, 0, 0, 512, 1024, "gemvTransposed");
    }

    @Test
    void boundsAreCheckedBeforeTheCCodeRuns() {
        assumeTrue(NativeKernels.enabled(), NativeKernels.status());
        Matrix m = Matrix.random(8, 64, 32, QuantType.NF4, false, 10);
        int lvl = NativeKernels.LEVEL_AVX2;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, new float[8], 0, new float[63], 0, 0, 64));
        assertEquals("y[0, 64) is outside its array of length 63", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, new float[8], 1, new float[64], 0, 0, 64));
        assertEquals("x[1, 9) is outside its array of length 8", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, new float[8], 0, new float[64], 0, 16, 64));
        assertEquals("columns [16, 64) must lie in [0, 64] on multiples of 32", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(lvl,
                Arrays.copyOf(m.packed, 255), m.scales, 32, m.pair, 8, 64, new float[8], 0, new float[64], 0, 0, 64));
        assertEquals("packed codes hold 255 bytes; [8, 64] needs 256", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvTransposedRows(lvl,
                m.packed, BlockScales.plain(new float[15]), 32, m.pair, 8, 64, new float[64], 0, new float[8], 0, 0, 8));
        assertEquals("15 block scales; [8, 64] at block 32 needs 16", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvTransposedRows(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, new float[64], 0, new float[8], 0, 2, 9));
        assertEquals("rows [2, 9) must lie in [0, 8]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(lvl,
                m.packed, m.scales, 16, m.pair, 8, 64, new float[8], 0, new float[64], 0, 0, 64));
        assertEquals("native kernels need a power-of-two block size >= 32 that divides nOut; got block 16, nOut 64",
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(lvl,
                m.packed, m.scales, 32, m.pair.clone(), 8, 64, new float[8], 0, new float[64], 0, 0, 64));
        assertEquals("pair table must be Blockwise4bit.pairTable(type) itself, not a copy", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.gemvColumns(NativeKernels.level() + 1,
                m.packed, m.scales, 32, m.pair, 8, 64, new float[8], 0, new float[64], 0, 0, 64));
        assertTrue(e.getMessage().startsWith("native kernel level " + (NativeKernels.level() + 1) + " is not available here"),
                e.getMessage());
    }

    @Test
    void dequantizedRectanglesEqualTheJavaDequantizerBitForBitAtEveryLevel() {
        assumeTrue(NativeKernels.enabled(), NativeKernels.status());
        for (Object[] c : CASES) {
            Matrix m = Matrix.random((Integer) c[0], (Integer) c[1], (Integer) c[2], (QuantType) c[3], (Boolean) c[4], 21);
            int bs = m.blockSize;
            // whole rows, a column band of whole blocks from the second block, and a single block
            int[][] rects = {{0, m.nIn, 0, m.nOut}, {1, m.nIn - 1, Math.min(bs, m.nOut - bs), m.nOut - Math.min(bs, m.nOut - bs)},
                {m.nIn - 1, 1, m.nOut - bs, bs}};
            for (int lvl : levels()) {
                for (int[] r : rects) {
                    INDArray out = Nd4j.zeros(DataType.FLOAT, (long) r[1] * r[3] + 3);
                    NativeKernels.dequantizeRect(lvl, m.packed, m.scales, bs, m.pair, m.nIn, m.nOut, r[0], r[1], r[2], r[3],
                            out, 3);
                    float[] got = out.toFloatVector();
                    for (int i = 0; i < r[1]; i++) {
                        for (int j = 0; j < r[3]; j++) {
                            float expected = m.dense[(r[0] + i) * m.nOut + r[2] + j];
                            assertEquals(expected, got[3 + i * r[3] + j], 0f, "level " + lvl + " rect "
                                    + Arrays.toString(r) + " at (" + i + ", " + j + ")");
                        }
                    }
                    assertEquals(0f, got[0], 0f, "nothing is written before the offset");
                }
            }
        }
    }

    @Test
    void dequantizedRectanglesAreBoundsChecked() {
        assumeTrue(NativeKernels.enabled(), NativeKernels.status());
        Matrix m = Matrix.random(8, 64, 32, QuantType.NF4, false, 22);
        int lvl = NativeKernels.LEVEL_AVX2;
        INDArray out = Nd4j.zeros(DataType.FLOAT, 8, 64);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.dequantizeRect(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, 4, 5, 0, 64, out, 0));
        assertEquals("rows [4, 9) must lie in [0, 8]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.dequantizeRect(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, 0, 8, 16, 32, out, 0));
        assertEquals("columns [16, 48) must lie in [0, 64] on multiples of 32", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.dequantizeRect(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, 0, 8, 0, 64, out, 1));
        assertTrue(e.getMessage().startsWith("the output must be a float32 host array with room for 512 elements"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.dequantizeRect(lvl,
                m.packed, m.scales, 32, m.pair, 8, 64, 0, 8, 0, 64, Nd4j.zeros(DataType.DOUBLE, 8, 64), 0));
        assertTrue(e.getMessage().startsWith("the output must be a float32 host array"), e.getMessage());
    }

    @Test
    void thePropertyTakesAutoTrueOrFalseOnly() {
        assertEquals("auto", NativeKernels.mode(" AUTO "));
        assertEquals("false", NativeKernels.mode("false"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.mode("yes"));
        assertEquals("system property peft4j.native must be auto, true or false, got 'yes'", e.getMessage());
    }

    @Test
    void blocksThatStraddleRowsFallBackToTheJavaKernel() {
        // Blocks that straddle rows (nOut 48, block 32) are not for the C kernels: gemv must still
        // give the right product, through the Java kernel.
        Matrix m = Matrix.random(4, 48, 32, QuantType.NF4, false, 15);
        assertTrue(!NativeKernels.supports(32, 48));
        float[] x = TestArrays.gaussian(4, 16);
        float[] y = new float[48];
        Gemv4bit.gemv(m.packed, m.scales, 32, m.pair, 4, 48, x, 0, y, 0);
        double[] ref = new double[48];
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 48; j++) {
                ref[j] += (double) x[i] * m.dense[i * 48 + j];
            }
        }
        assertClose(ref, y, 0, 0, 48, 4, "nOut 48, block 32");
    }
}
