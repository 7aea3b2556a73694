package org.peft4j.core.blocks.internal;

import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;

/**
 * The erf GELU of {@link org.peft4j.core.blocks.ExactGelu} on float32 arrays in one pass over the
 * buffer: forward {@code y = x·Φ(x)}, backward {@code dL/dx = dL/dy·(Φ(x) + x·φ(x))}, with
 * {@code Φ(x) = ½(1 + erf(x/√2))} and {@code φ(x) = exp(−x²/2)/√(2π)}.
 *
 * <p>Why by hand: ND4J 1.0.0-M2.1 has no erf GELU op, and composing it from ND4J ops took 5 passes
 * forward and 12 backward over the MLP activations, with glibc's scalar {@code erff} at about 3 ns an
 * element; together 10–12% of a MiniLM-sized LoRA step and a larger share of batch-32 inference.
 * Here the elements are copied in blocks of {@value #BLOCK} to heap arrays, computed by loops that
 * HotSpot's C2 compiles to SIMD instructions (the loops use only float arithmetic, {@code min} and
 * {@code max}, which it vectorizes; a loop that also evaluates the density did not vectorize, so
 * the backward pass runs two loops per block), and copied back.
 *
 * <p>Approximations (float32 results):
 * <ul>
 *   <li>{@code erf(z) ≈ z·P(z²)/Q(z²)} on {@code |z| ≤ 4} (beyond, {@code erf} rounds to ±1 in
 *       float32), {@code P} of degree 5 and {@code Q} of degree 5 with {@code Q(0) = 1}: a rational
 *       fit by iteratively reweighted least squares (Lawson) on {@code [0, 4]}
 *       ({@code src/test/python/gelu_erf_fit.py} derives it): maximum error 2.1e-8 in exact
 *       arithmetic, 3.9e-7 evaluated in float32, so {@code |Δgelu(x)| ≤ 2.5e-7·max(1, |x|)};</li>
 *   <li>{@code exp(−t) = (exp(−t/32))³²} with the degree-8 Taylor polynomial of {@code exp(−t/32)}
 *       on {@code t = x²/2 ≤ 18} (that is {@code |x| ≤ 6}; beyond, {@code x·φ(x)} is below 4e-8 and
 *       is taken at {@code |x| = 6}): at most 5e-7 absolute error in {@code x·φ(x)}, so
 *       {@code |Δ(dL/dx)| ≤ 6e-7·|dL/dy|} (the ND4J composition: about 2e-7).</li>
 * </ul>
 * Double-precision arrays are not handled here: {@code ExactGelu} computes them with ND4J's erf and
 * exp, the path the double-precision gradient checks exercise.
 *
 * <p>Thread-safety: stateless.
 */
public final class GeluKernel {
    /** Elements per heap block. */
    static final int BLOCK = 4096;

    static final float R2 = (float) (1 / Math.sqrt(2));
    static final float INV_SQRT_2PI = (float) (1 / Math.sqrt(2 * Math.PI));
    static final float P0 = 1.1283789773211f;
    static final float P1 = 0.19624638340752149f;
    static final float P2 = 0.05346682164436594f;
    static final float P3 = 0.004003420400462127f;
    static final float P4 = 0.00028801718718058814f;
    static final float P5 = 1.974619880804522e-06f;
    static final float Q1 = 0.5072499960246701f;
    static final float Q2 = 0.11647505785668186f;
    static final float Q3 = 0.015444024441399333f;
    static final float Q4 = 0.0012162670383199208f;
    static final float Q5 = 3.747736593748354e-05f;

    private GeluKernel() {
    }

    /**
     * Whether {@link #forward} handles {@code x} (and {@link #backward} {@code x} with {@code dy}):
     * float32 arrays whose elements fill one contiguous run of their buffer in the same order.
     */
    public static boolean handles(INDArray x, INDArray dy) {
        if (x.dataType() != DataType.FLOAT || !linear(x)) {
            return false;
        }
        if (dy == null) {
            return true;
        }
        return dy.dataType() == DataType.FLOAT && linear(dy) && java.util.Arrays.equals(x.shape(), dy.shape())
                && (sameOrder(x, dy));
    }

    /**
     * Whether a training forward pass of a layer with activation {@code act} on pre-activation
     * {@code z} can keep the derivative from {@link #forward(INDArray, INDArray)}: the activation is
     * {@link org.peft4j.core.blocks.ExactGelu} and {@code z} an array this kernel handles.
     */
    public static boolean fusable(org.nd4j.linalg.activations.IActivation act, INDArray z) {
        return act instanceof org.peft4j.core.blocks.ExactGelu && handles(z, null);
    }

    /**
     * A detached array for the derivative of {@code z} (its type, shape and order, outside every
     * workspace): {@code spare} when it fits, else a new one. Layers pass the array of their previous
     * step, which is free once that step's backward pass is done: an array allocated outside the
     * workspaces is zero-filled by ND4J, a pass over memory that reuse avoids.
     */
    public static INDArray derivativeArray(INDArray z, INDArray spare) {
        if (spare != null && spare.dataType() == z.dataType() && spare.ordering() == z.ordering()
                && java.util.Arrays.equals(spare.shape(), z.shape()) && handles(z, spare)) {
            return spare;
        }
        try (org.nd4j.linalg.api.memory.MemoryWorkspace ws = org.nd4j.linalg.factory.Nd4j.getMemoryManager()
                .scopeOutOfWorkspaces()) {
            return org.nd4j.linalg.factory.Nd4j.createUninitialized(z.dataType(), z.shape(), z.ordering());
        }
    }

    private static boolean linear(INDArray a) {
        return a.length() > 0 && a.length() <= Integer.MAX_VALUE && Shape.hasDefaultStridesForShape(a)
                && a.offset() + a.length() <= a.data().asNioFloat().capacity();
    }

    /** Same element at the same buffer index: same ordering, or at most one dimension longer than 1. */
    private static boolean sameOrder(INDArray a, INDArray b) {
        if (a.ordering() == b.ordering()) {
            return true;
        }
        int longDims = 0;
        for (long s : a.shape()) {
            if (s > 1) {
                longDims++;
            }
        }
        return longDims <= 1;
    }

    /** {@code x ← gelu(x)} in place. */
    public static void forward(INDArray x) {
        FloatBuffer buf = x.data().asNioFloat();
        int base = (int) x.offset();
        int n = (int) x.length();
        float[] v = new float[Math.min(n, BLOCK)];
        for (int from = 0; from < n; from += BLOCK) {
            int len = Math.min(BLOCK, n - from);
            buf.get(base + from, v, 0, len);
            forward(v, len);
            buf.put(base + from, v, 0, len);
        }
    }

    /**
     * {@code x ← gelu(x)} in place and {@code derivative ← gelu'(x)}, in one pass: a training forward
     * pass keeps the derivative instead of {@code x}, so that the backward pass is one multiply
     * ({@code dL/dx = derivative ⊙ dL/dy}) and the forward pass needs no copy of {@code x}.
     * {@code derivative} must be accepted with {@code x} by {@link #handles(INDArray, INDArray)}.
     */
    public static void forward(INDArray x, INDArray derivative) {
        FloatBuffer xb = x.data().asNioFloat();
        FloatBuffer db = derivative.data().asNioFloat();
        int xBase = (int) x.offset();
        int dBase = (int) derivative.offset();
        int n = (int) x.length();
        int block = Math.min(n, BLOCK);
        float[] v = new float[block];
        float[] d = new float[block];
        for (int from = 0; from < n; from += BLOCK) {
            int len = Math.min(BLOCK, n - from);
            xb.get(xBase + from, v, 0, len);
            forwardAndDerivative(v, d, len);
            xb.put(xBase + from, v, 0, len);
            db.put(dBase + from, d, 0, len);
        }
    }

    /** {@code x ← dy·gelu'(x)} in place ({@code dy} is read only). */
    public static void backward(INDArray x, INDArray dy) {
        FloatBuffer xb = x.data().asNioFloat();
        FloatBuffer gb = dy.data().asNioFloat();
        int xBase = (int) x.offset();
        int gBase = (int) dy.offset();
        int n = (int) x.length();
        int block = Math.min(n, BLOCK);
        float[] v = new float[block];
        float[] g = new float[block];
        float[] out = new float[block];
        for (int from = 0; from < n; from += BLOCK) {
            int len = Math.min(BLOCK, n - from);
            xb.get(xBase + from, v, 0, len);
            gb.get(gBase + from, g, 0, len);
            backward(v, g, out, len);
            xb.put(xBase + from, out, 0, len);
        }
    }

    /**
     * Whether the JVM compiles {@link Math#fma} to the CPU's FMA instruction (HotSpot's
     * {@code UseFMA}); without it {@code Math.fma} is a software routine, hundreds of times slower
     * than a multiply and an add.
     */
    private static final boolean FMA = hardwareFma();

    private static boolean hardwareFma() {
        try {
            return Boolean.parseBoolean(java.lang.management.ManagementFactory
                    .getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class)
                    .getVMOption("UseFMA").getValue());
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    /**
     * {@code a·b + c}: one fused multiply-add where the hardware has it. C2 vectorizes {@code Math.fma}
     * into FMA instructions, one instruction where {@code a·b + c} takes two (measured: the
     * training GELU pass 1.12 → 0.82 ns an element, in L1, one thread); the rounding differs from
     * the unfused form by at most one float ulp per step, within the error bounds above.
     */
    private static float madd(float a, float b, float c) {
        return FMA ? Math.fma(a, b, c) : a * b + c;
    }

    /** {@code exp(−t)} by its Taylor polynomial of degree 8, for {@code 0 ≤ t ≤ 0.5625}. */
    private static float expTaylor(float t) {
        float s = madd(-t, 1f / 40320f, 1f / 5040f);
        s = madd(-t, s, 1f / 720f);
        s = madd(-t, s, 1f / 120f);
        s = madd(-t, s, 1f / 24f);
        s = madd(-t, s, 1f / 6f);
        s = madd(-t, s, 0.5f);
        s = madd(-t, s, 1f);
        return madd(-t, s, 1f);
    }

    /** {@code v[i] ← v[i]·Φ(v[i])} for {@code i < len}. */
    static void forward(float[] v, int len) {
        for (int i = 0; i < len; i++) {
            float x = v[i];
            float z = Math.max(-4f, Math.min(4f, x * R2));
            float u = z * z;
            float p = madd(madd(madd(madd(madd(P5, u, P4), u, P3), u, P2), u, P1), u, P0);
            float q = madd(madd(madd(madd(madd(Q5, u, Q4), u, Q3), u, Q2), u, Q1), u, 1f);
            v[i] = 0.5f * x * (1f + z * p / q);
        }
    }

    /** {@code d[i] ← Φ(v[i]) + v[i]·φ(v[i])}, then {@code v[i] ← v[i]·Φ(v[i])}, for {@code i < len}. */
    static void forwardAndDerivative(float[] v, float[] d, int len) {
        for (int i = 0; i < len; i++) {
            float x = v[i];
            float z = Math.max(-4f, Math.min(4f, x * R2));
            float u = z * z;
            float p = madd(madd(madd(madd(madd(P5, u, P4), u, P3), u, P2), u, P1), u, P0);
            float q = madd(madd(madd(madd(madd(Q5, u, Q4), u, Q3), u, Q2), u, Q1), u, 1f);
            d[i] = 0.5f * (1f + z * p / q);
        }
        for (int i = 0; i < len; i++) {
            float x = Math.max(-6f, Math.min(6f, v[i]));
            float t = x * x * (1f / 64f);
            float s = expTaylor(t);
            s *= s;
            s *= s;
            s *= s;
            s *= s;
            s *= s;
            float cdf = d[i];
            d[i] = cdf + x * s * INV_SQRT_2PI;
            v[i] = v[i] * cdf;
        }
    }

    /** {@code out[i] ← g[i]·(Φ(v[i]) + v[i]·φ(v[i]))} for {@code i < len}. */
    static void backward(float[] v, float[] g, float[] out, int len) {
        for (int i = 0; i < len; i++) {
            float z = Math.max(-4f, Math.min(4f, v[i] * R2));
            float u = z * z;
            float p = madd(madd(madd(madd(madd(P5, u, P4), u, P3), u, P2), u, P1), u, P0);
            float q = madd(madd(madd(madd(madd(Q5, u, Q4), u, Q3), u, Q2), u, Q1), u, 1f);
            out[i] = g[i] * (0.5f * (1f + z * p / q));
        }
        for (int i = 0; i < len; i++) {
            float x = Math.max(-6f, Math.min(6f, v[i]));
            // exp(-x²/2) = exp(-t)^32 with t = x²/64 ≤ 0.5625
            float t = x * x * (1f / 64f);
            float s = expTaylor(t);
            s *= s;
            s *= s;
            s *= s;
            s *= s;
            s *= s;
            out[i] += g[i] * (x * s * INV_SQRT_2PI);
        }
    }
}
