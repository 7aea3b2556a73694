package org.peft4j.quant.internal;

import java.util.Random;

/** Seeded test data shared by the kernel tests of this package. */
final class TestArrays {
    private TestArrays() {
    }

    /** {@code n} samples of N(0, 1) as floats, from {@code new Random(seed)}. */
    static float[] gaussian(int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }
}
