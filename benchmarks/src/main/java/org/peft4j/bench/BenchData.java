package org.peft4j.bench;

import java.util.SplittableRandom;

/** Seeded N(0, 0.02²)-like weights and N(0, 1) inputs shared by the benchmarks. */
final class BenchData {
    private BenchData() {
    }

    static float[] gaussian(int n, long seed, float std) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i += 2) {
            double u1 = 1.0 - r.nextDouble();
            double u2 = r.nextDouble();
            double rad = Math.sqrt(-2 * Math.log(u1)) * std;
            x[i] = (float) (rad * Math.cos(2 * Math.PI * u2));
            if (i + 1 < n) {
                x[i + 1] = (float) (rad * Math.sin(2 * Math.PI * u2));
            }
        }
        return x;
    }
}
