package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

class ErrorStatisticsTest {
    private static final int N = 1 << 18;

    static float[] gaussian(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i += 2) {
            double u1 = 1.0 - r.nextDouble();
            double u2 = r.nextDouble();
            double rad = Math.sqrt(-2 * Math.log(u1));
            x[i] = (float) (rad * Math.cos(2 * Math.PI * u2));
            if (i + 1 < n) {
                x[i + 1] = (float) (rad * Math.sin(2 * Math.PI * u2));
            }
        }
        return x;
    }

    static double mse(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            double d = a[i] - b[i];
            s += d * d;
        }
        return s / a.length;
    }

    /** Symmetric uniform 4-bit: 15 levels k/7, k = -7..7, nearest, same absmax blocks. */
    static double uniformInt4Mse(float[] x, int blockSize) {
        double s = 0;
        for (int start = 0; start < x.length; start += blockSize) {
            int end = Math.min(x.length, start + blockSize);
            float amax = 0;
            for (int i = start; i < end; i++) {
                amax = Math.max(amax, Math.abs(x[i]));
            }
            for (int i = start; i < end; i++) {
                float q = amax == 0 ? 0 : Math.round(x[i] / amax * 7f) / 7f * amax;
                double d = x[i] - q;
                s += d * d;
            }
        }
        return s / x.length;
    }

    @Test
    void nf4BeatsFp4AndUniformInt4OnGaussianData() {
        float[] x = gaussian(N, 42);
        long[] shape = {N};
        double nf4 = mse(x, QuantizedTensor.quantize(x, shape, new QuantSpec(QuantType.NF4, 64, false)).dequantize());
        double fp4 = mse(x, QuantizedTensor.quantize(x, shape, new QuantSpec(QuantType.FP4, 64, false)).dequantize());
        double int4 = uniformInt4Mse(x, 64);
        assertTrue(nf4 < fp4, "NF4 MSE " + nf4 + " should be below FP4 MSE " + fp4);
        assertTrue(nf4 < int4, "NF4 MSE " + nf4 + " should be below uniform Int4 MSE " + int4);
    }

    @Test
    void everyElementIsWithinHalfTheLargestGapTimesAbsmax() {
        float[] x = gaussian(N, 7);
        for (QuantType type : QuantType.values()) {
            float[] table = type.table();
            java.util.Arrays.sort(table);
            double maxGap = 0;
            for (int i = 1; i < table.length; i++) {
                maxGap = Math.max(maxGap, table[i] - table[i - 1]);
            }
            QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {N}, new QuantSpec(type, 64, false));
            float[] d = q.dequantize();
            float[] absmax = q.absmax();
            for (int i = 0; i < N; i++) {
                float a = absmax[i / 64];
                double bound = maxGap / 2 * a + 4 * Math.ulp(a);
                double err = Math.abs(x[i] - d[i]);
                if (err > bound) {
                    throw new AssertionError(type + " element " + i + ": |x - deq| = " + err + " > " + bound);
                }
            }
        }
    }

    @Test
    void doubleQuantizationChangesMseByLessThanOnePercent() {
        float[] x = gaussian(N, 11);
        long[] shape = {512, 512};
        double single = mse(x, QuantizedTensor.quantize(x, shape, new QuantSpec(QuantType.NF4, 64, false)).dequantize());
        double dq = mse(x, QuantizedTensor.quantize(x, shape, new QuantSpec(QuantType.NF4, 64, true)).dequantize());
        double rel = Math.abs(dq - single) / single;
        assertTrue(rel < 0.01, "double quantization changed MSE by " + rel * 100 + "% (" + single + " → " + dq + ")");
    }

    @Test
    void bitsPerParameterIsFourAndAHalfAtBlock64WithoutDoubleQuant() {
        float[] x = gaussian(64 * 1000, 3);
        QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {1000, 64}, new QuantSpec(QuantType.NF4, 64, false));
        assertEquals(4.5, q.bitsPerParameter(), 0.0);
        assertEquals(64 * 1000 / 2 + 4 * 1000, q.memoryBytes());
    }

    @Test
    void bitsPerParameterIsAboutFourPointOneTwoSevenWithDoubleQuant() {
        int rows = 2048;
        int cols = 2048;
        float[] x = gaussian(rows * cols, 5);
        QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {rows, cols}, QuantSpec.nf4());
        double bits = q.bitsPerParameter();
        assertTrue(bits >= 4.12 && bits <= 4.13, "bits per parameter was " + bits);
        long n = (long) rows * cols;
        assertEquals(n / 2 + n / 64 + 4 * (n / 64 / 256) + 4, q.memoryBytes());
    }

    @Test
    void quantizingTheDequantizedTensorGivesTheSameCodes() {
        float[] x = gaussian(4096 + 37, 9);
        QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {x.length}, new QuantSpec(QuantType.NF4, 128, false));
        QuantizedTensor again = QuantizedTensor.quantize(q.dequantize(), new long[] {x.length}, new QuantSpec(QuantType.NF4, 128, false));
        assertEquals(q, again);
    }
}
