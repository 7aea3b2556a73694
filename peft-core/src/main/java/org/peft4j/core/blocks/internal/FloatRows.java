package org.peft4j.core.blocks.internal;

/**
 * Row reductions over float32 heap arrays for the float paths of the row kernels
 * ({@link NormKernel}, {@link AttentionKernel#softmaxBackwardRows}): sums in float32 with eight
 * independent partial sums.
 *
 * <p>Why: C2 (JDK 17) does not vectorize a reduction, so a single running sum waits on each
 * addition's latency, and accumulating float values in double converts every element: measured on
 * rows of 384, 0.53 ns an element for four double partial sums of floats, 0.23 ns for eight float
 * partial sums. The error of eight partial sums of {@code d} terms is that of float summation of
 * {@code d/8} terms, the accuracy of the float32 arrays they come from.
 *
 * <p>Thread-safety: stateless.
 */
final class FloatRows {

    private FloatRows() {
    }

    /** {@code a} rounded to float32. */
    static float[] floats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }

    /** {@code Σ v[o, o + d)}. */
    static float sum(float[] v, int o, int d) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        float s4 = 0;
        float s5 = 0;
        float s6 = 0;
        float s7 = 0;
        int j = 0;
        for (; j + 7 < d; j += 8) {
            s0 += v[o + j];
            s1 += v[o + j + 1];
            s2 += v[o + j + 2];
            s3 += v[o + j + 3];
            s4 += v[o + j + 4];
            s5 += v[o + j + 5];
            s6 += v[o + j + 6];
            s7 += v[o + j + 7];
        }
        for (; j < d; j++) {
            s0 += v[o + j];
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** {@code Σ (v[o, o + d) − mu)²}. */
    static float centeredSquares(float[] v, int o, int d, float mu) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        float s4 = 0;
        float s5 = 0;
        float s6 = 0;
        float s7 = 0;
        int j = 0;
        for (; j + 7 < d; j += 8) {
            float a0 = v[o + j] - mu;
            float a1 = v[o + j + 1] - mu;
            float a2 = v[o + j + 2] - mu;
            float a3 = v[o + j + 3] - mu;
            float a4 = v[o + j + 4] - mu;
            float a5 = v[o + j + 5] - mu;
            float a6 = v[o + j + 6] - mu;
            float a7 = v[o + j + 7] - mu;
            s0 += a0 * a0;
            s1 += a1 * a1;
            s2 += a2 * a2;
            s3 += a3 * a3;
            s4 += a4 * a4;
            s5 += a5 * a5;
            s6 += a6 * a6;
            s7 += a7 * a7;
        }
        for (; j < d; j++) {
            float a = v[o + j] - mu;
            s0 += a * a;
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /**
     * {@code out[0] = Σ a[0, d)} and {@code out[1] = Σ a[j]·b[j]} in one pass (four partial sums
     * each, the products added by {@link Math#fma}): the two reductions of the LayerNorm backward
     * pass. Measured on rows of 384: 0.36 ns an element against 0.51 for {@link #sum} followed
     * by {@link #dot}, which read {@code a} twice and round every product before adding it.
     */
    static void sumAndDot(float[] a, float[] b, int d, float[] out) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        float q0 = 0;
        float q1 = 0;
        float q2 = 0;
        float q3 = 0;
        int j = 0;
        for (; j + 3 < d; j += 4) {
            float a0 = a[j];
            float a1 = a[j + 1];
            float a2 = a[j + 2];
            float a3 = a[j + 3];
            s0 += a0;
            s1 += a1;
            s2 += a2;
            s3 += a3;
            q0 = Math.fma(a0, b[j], q0);
            q1 = Math.fma(a1, b[j + 1], q1);
            q2 = Math.fma(a2, b[j + 2], q2);
            q3 = Math.fma(a3, b[j + 3], q3);
        }
        for (; j < d; j++) {
            s0 += a[j];
            q0 = Math.fma(a[j], b[j], q0);
        }
        out[0] = (s0 + s1) + (s2 + s3);
        out[1] = (q0 + q1) + (q2 + q3);
    }

    /** {@code Σ a[ao + j]·b[bo + j]} over {@code j < d}. */
    static float dot(float[] a, int ao, float[] b, int bo, int d) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        float s4 = 0;
        float s5 = 0;
        float s6 = 0;
        float s7 = 0;
        int j = 0;
        for (; j + 7 < d; j += 8) {
            s0 += a[ao + j] * b[bo + j];
            s1 += a[ao + j + 1] * b[bo + j + 1];
            s2 += a[ao + j + 2] * b[bo + j + 2];
            s3 += a[ao + j + 3] * b[bo + j + 3];
            s4 += a[ao + j + 4] * b[bo + j + 4];
            s5 += a[ao + j + 5] * b[bo + j + 5];
            s6 += a[ao + j + 6] * b[bo + j + 6];
            s7 += a[ao + j + 7] * b[bo + j + 7];
        }
        for (; j < d; j++) {
            s0 += a[ao + j] * b[bo + j];
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }
}
