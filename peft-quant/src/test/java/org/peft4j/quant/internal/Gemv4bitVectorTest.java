package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.peft4j.quant.QuantType;

/**
 * The Vector API GEMV against dequantize-then-multiply in double, and the run-time choice of
 * kernel. The kernel uses the JVM's preferred species; peft-quant's build runs this class twice,
 * once as the hardware gives (16 lanes on AVX-512) and once with {@code -XX:MaxVectorSize=32}
 * (8 lanes, the two-vector table), and the system property {@code peft4j.test.lanes} names the
 * lane count each run must see, so a run that silently tested the other layout fails.
 */
class Gemv4bitVectorTest {

    /** A random quantized [nIn, nOut] matrix: packed codes, plain scales, and its dequantized floats. */
    private record Matrix(int nIn, int nOut, int blockSize, QuantType type, byte[] packed, BlockScales scales,
                          float[] dense) {
        static Matrix random(int nIn, int nOut, int blockSize, QuantType type, long seed) {
            Random r = new Random(seed);
            float[] w = new float[nIn * nOut];
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) r.nextGaussian();
            }
            byte[] packed = new byte[w.length / 2];
            float[] absmax = new float[w.length / blockSize];
            Blockwise4bit.quantize(w, 0, w.length, blockSize, type, packed, absmax);
            BlockScales scales = BlockScales.plain(absmax);
            float[] dense = new float[w.length];
            Blockwise4bit.dequantize(packed, scales, blockSize, Blockwise4bit.pairTable(type), 0, w.length, dense, 0);
            return new Matrix(nIn, nOut, blockSize, type, packed, scales, dense);
        }
    }


    private static void assertMatchesReference(Matrix m) {
        assertTrue(Gemv4bitVector.supports(m.blockSize, m.nOut));
        float[] x = TestArrays.gaussian(m.nIn + 3, m.nIn);
        float[] y = new float[m.nOut + 2];
        y[0] = Float.NaN;
        y[m.nOut + 1] = Float.NaN;
        // Offsets: x read from 3, y written from 1; the guard elements must stay untouched.
        Gemv4bitVector.gemv(m.packed, m.scales, m.blockSize, Blockwise4bit.pairTable(m.type), m.nIn, m.nOut,
                x, 3, y, 1);
        assertTrue(Float.isNaN(y[0]) && Float.isNaN(y[m.nOut + 1]), "wrote outside [yOff, yOff + nOut)");
        for (int j = 0; j < m.nOut; j++) {
            double ref = 0;
            double mag = 0;
            for (int i = 0; i < m.nIn; i++) {
                ref += (double) x[3 + i] * m.dense[i * m.nOut + j];
                mag += Math.abs((double) x[3 + i] * m.dense[i * m.nOut + j]);
            }
            assertEquals(ref, y[1 + j], 1e-5 * mag + 1e-6, "column " + j + " with " + Gemv4bitVector.LANES + " lanes");
        }
    }

    @Test
    void runsWithTheLaneCountThisBuildAskedFor() {
        String expected = System.getProperty("peft4j.test.lanes");
        if (expected != null) {
            assertEquals(Integer.parseInt(expected), Gemv4bitVector.LANES);
        }
    }

    @Test
    void matchesReference() {
        assertMatchesReference(Matrix.random(7, 64, 64, QuantType.NF4, 1));      // 4-row group + 3-row tail
        assertMatchesReference(Matrix.random(515, 1024, 64, QuantType.NF4, 2));  // split over threads
        assertMatchesReference(Matrix.random(9, 96, 32, QuantType.FP4, 3));
        assertMatchesReference(Matrix.random(4, 128, 128, QuantType.NF4, 4));
    }

    @Test
    void unsupportedShapesAreLeftToTheScalarKernel() {
        assertFalse(Gemv4bitVector.supports(64, 96), "nOut not a multiple of the block");
        assertFalse(Gemv4bitVector.supports(8, 64), "block shorter than 2 × lanes");
        assertTrue(Gemv4bitVector.supports(32, 64));
    }

    @Test
    void propertyDecidesTheKernel() {
        assertTrue(VectorKernels.decide("auto", true, 25));
        assertFalse(VectorKernels.decide("auto", true, 17), "measured slower on Java 17");
        assertFalse(VectorKernels.decide("auto", false, 25), "no module, no vectors");
        assertTrue(VectorKernels.decide(" TRUE ", true, 17));
        assertFalse(VectorKernels.decide("true", false, 25));
        assertFalse(VectorKernels.decide("false", true, 25));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> VectorKernels.decide("yes", true, 25));
        assertEquals("system property peft4j.vector must be auto, true or false, got 'yes'", e.getMessage());
    }
}
