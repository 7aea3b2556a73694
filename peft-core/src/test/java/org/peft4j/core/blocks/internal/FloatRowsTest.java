package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The fused row reduction {@link FloatRows#sumAndDot} against the same sums in double, on every length from 0 to 40 (so
 * that each unrolled body and each tail length is exercised) and on a row of 384 (the MiniLM
 * width), with a mean far from zero so that a dropped or doubled element shows.
 */
class FloatRowsTest {

    private static float[] random(Random r, int d, float shift) {
        float[] a = new float[d];
        for (int j = 0; j < d; j++) {
            a[j] = (float) (r.nextGaussian() + shift);
        }
        return a;
    }

    private static void check(int d, Random r) {
        float[] a = random(r, d, 3f);
        float[] b = random(r, d, -2f);
        double sum = 0;
        double dot = 0;
        double abs = 0;
        for (int j = 0; j < d; j++) {
            sum += a[j];
            dot += (double) a[j] * b[j];
            abs += Math.abs((double) a[j] * b[j]);
        }
        float[] out = {Float.NaN, Float.NaN};
        FloatRows.sumAndDot(a, b, d, out);
        double tol = 1e-6 * (d + 1);
        assertEquals(sum, out[0], tol * (4 * d + 1), "sum, d = " + d);
        assertEquals(dot, out[1], tol * (abs + 1), "dot, d = " + d);
    }

    @Test
    void sumAndDotMatchesDoubleSumsForEveryTailLength() {
        Random r = new Random(7);
        for (int d = 0; d <= 40; d++) {
            check(d, r);
        }
        check(384, r);
    }

    @Test
    void sumAndDotReadsOnlyTheFirstDElements() {
        float[] a = {1f, 2f, 3f, 1000f};
        float[] b = {4f, 5f, 6f, 1000f};
        float[] out = new float[2];
        FloatRows.sumAndDot(a, b, 3, out);
        assertEquals(6f, out[0]);
        assertEquals(32f, out[1]);
    }
}
