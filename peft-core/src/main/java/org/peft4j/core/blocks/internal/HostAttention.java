package org.peft4j.core.blocks.internal;

import java.nio.FloatBuffer;
import org.bytedeco.javacpp.FloatPointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.spi.HostBlas;

/**
 * {@link AttentionKernel}'s forward and backward for float32 on the CPU backend, head by head on
 * DL4J's time-distributed rows, with the products as direct {@code cblas_sgemm} calls
 * ({@link HostBlas}) and the softmax and its backward on one {@code Tq × Tk} tile at a time.
 *
 * <p>Layout: {@code q [B·Tq, h·d]}, {@code k [B·Tk, h·d]}, {@code v [B·Tk, h·dv]}, the output
 * {@code [B·Tq, h·dv]} and the gradients in the same shapes, all plain {@code 'c'} rows
 * ({@link HostBlas#isPlain}) with row {@code b + B·t}; head {@code hh} of sequence {@code b} is the
 * {@code T × d} matrix at element {@code (b·h + hh)·d} with leading dimension {@code B·h·d}, which
 * BLAS reads in place. The probabilities are {@code [B, h, Tq, Tk]} ({@code 'c'}, plain).
 * Formulas and mask semantics are {@link AttentionKernel}'s: keys allowed by the key mask (and, when
 * causal, {@code key ≤ query}); a query with no allowed key gets {@code P = 0} and output 0.
 *
 * <p>Why by hand: through ND4J the attention core cost about 17 ms of batched-matmul BLAS at 54
 * GFLOP/s plus 25 ms of softmax, exponential, broadcast and mask ops, head-layout views copied by the
 * matmul op, and mask set-up in a one-thread MiniLM-sized training step (batch 8 × 64, 6 layers). Here
 * each product reads its head in place; the scores of one head stay in the L1/L2 cache between the
 * product that writes them, the softmax and the product that reads them; masked keys at the end of a
 * sequence (padding) are left out of the products; and the exponential is a polynomial that the JIT
 * turns into vector instructions ({@link #exp}; {@code Math.exp} took 14 ns an element, ND4J's
 * softmax op about 3).
 *
 * <p>Thread-safety: stateless; each call works in its own heap tiles.
 */
final class HostAttention {
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** Adding and subtracting 1.5·2²³ rounds a float of magnitude below 2²² to an integer. */
    private static final float ROUND = 12582912f;
    /** Scores more than this below their row's maximum give {@code exp} of the clamp (about 1e-37, not 0). */
    private static final float MIN_EXPONENT = -86f;

    private HostAttention() {
    }

    /**
     * Whether the fast path applies: {@link HostBlas#available()}, every array plain float32 rows of
     * the shapes above (the probabilities {@code [B, h, Tq, Tk]}), and every index within an int.
     */
    static boolean applies(long batch, int heads, INDArray... arrays) {
        if (!HostBlas.available() || batch <= 0) {
            return false;
        }
        for (INDArray a : arrays) {
            if (a == null || !(HostBlas.isPlain(a, 2) || HostBlas.isPlain(a, 4)) || a.length() >= Integer.MAX_VALUE) {
                return false;
            }
            if (a.rank() == 2 && (a.size(0) % batch != 0 || a.size(1) % heads != 0)) {
                return false;
            }
        }
        return true;
    }

    /**
     * Per sequence {@code b}: whether key {@code j} is allowed by {@code keyMask [B, Tk]} (null: all),
     * as 1/0 floats {@code [B·Tk]}.
     */
    static float[] keep(INDArray keyMask, int batch, int tk) {
        float[] keep = new float[batch * tk];
        if (keyMask == null) {
            java.util.Arrays.fill(keep, 1f);
            return keep;
        }
        if (keyMask.rank() != 2 || keyMask.size(0) != batch || keyMask.size(1) != tk) {
            throw new IllegalArgumentException("key-padding mask must be [batch, time] = [" + batch + ", " + tk
                    + "], got " + java.util.Arrays.toString(keyMask.shape()));
        }
        if (keyMask.dataType() == DataType.FLOAT && Elementwise.handles(keyMask)) {
            // the float mask read in place ('f' as the graphs' row masks reshape it): the cast, copy
            // and read through ND4J took 65-94 µs a call inside a one-thread LoRA step, this 23 µs
            float[] m = new float[keep.length];
            keyMask.data().asNioFloat().get((int) keyMask.offset(), m, 0, m.length);
            boolean c = keyMask.ordering() == 'c';
            for (int b = 0; b < batch; b++) {
                for (int j = 0; j < tk; j++) {
                    keep[b * tk + j] = m[c ? b * tk + j : b + batch * j] != 0f ? 1f : 0f;
                }
            }
            return keep;
        }
        double[] m = keyMask.castTo(DataType.DOUBLE).dup('c').data().asDouble();
        for (int i = 0; i < keep.length; i++) {
            keep[i] = m[i] != 0.0 ? 1f : 0f;
        }
        return keep;
    }

    /** One past the last allowed key of sequence {@code b} (0 if none): keys from there on are left out. */
    private static int keyEnd(float[] keep, int b, int tk) {
        int end = tk;
        while (end > 0 && keep[b * tk + end - 1] == 0f) {
            end--;
        }
        return end;
    }

    /** Whether keys {@code [0, end)} of sequence {@code b} are all allowed (padding at the end only). */
    private static boolean prefix(float[] keep, int b, int tk, int end) {
        for (int j = 0; j < end; j++) {
            if (keep[b * tk + j] == 0f) {
                return false;
            }
        }
        return true;
    }

    /**
     * Forward: {@code probs [B, h, Tq, Tk]} and {@code out [B·Tq, h·dv]} are written (every element).
     *
     * @param keep from {@link #keep}
     */
    static void forward(INDArray q, INDArray k, INDArray v, int batch, int heads, float scale, boolean causal,
                        float[] keep, INDArray probs, INDArray out) {
        int tq = (int) (q.size(0) / batch);
        int tk = (int) (k.size(0) / batch);
        int d = (int) (q.size(1) / heads);
        int dv = (int) (v.size(1) / heads);
        int ldq = (int) q.size(1) * batch;
        int ldv = (int) v.size(1) * batch;
        FloatPointer pq = HostBlas.pointer(q);
        FloatPointer pk = HostBlas.pointer(k);
        FloatPointer pv = HostBlas.pointer(v);
        FloatPointer pp = HostBlas.pointer(probs);
        FloatPointer po = HostBlas.pointer(out);
        FloatBuffer pb = probs.data().asNioFloat();
        FloatBuffer ob = out.data().asNioFloat();
        float[] tile = new float[tq * tk];
        float[] bits = new float[tq * tk];
        float[] zeros = new float[Math.max(dv, tk)];
        for (int b = 0; b < batch; b++) {
            int end = keyEnd(keep, b, tk);
            boolean allKept = prefix(keep, b, tk, end);
            for (int hh = 0; hh < heads; hh++) {
                long qOff = (long) (b * heads + hh) * d;
                long vOff = (long) (b * heads + hh) * dv;
                long pOff = (long) (b * heads + hh) * tq * tk;
                if (end > 0) {
                    HostBlas.sgemm(false, true, tq, end, d, scale, pq, qOff, ldq, pk, qOff, ldq, 0f, pp, pOff, tk);
                    pb.get((int) pOff, tile, 0, tq * tk);
                }
                softmaxTile(tile, tq, tk, end, causal, allKept ? null : keep, b * tk, bits);
                pb.put((int) pOff, tile, 0, tq * tk);
                if (end > 0) {
                    HostBlas.sgemm(false, false, tq, dv, end, 1f, pp, pOff, tk, pv, vOff, ldv, 0f, po, vOff, ldv);
                } else {
                    for (int i = 0; i < tq; i++) {
                        ob.put((int) (vOff + (long) i * ldv), zeros, 0, dv);
                    }
                }
            }
        }
    }

    /**
     * Rows {@code t[i·tk, (i + 1)·tk)} of the scores of one head → their softmax over the keys
     * {@code j < end} (and {@code j ≤ i} when causal) that {@code keep} (from {@code keepAt}; null:
     * all) allows; 0 elsewhere and in a row with no allowed key. The exponential runs once over the
     * whole tile (a long loop vectorizes better than one per row: 0.95 against 2.2 ns an element),
     * the entries it must not count set to {@link #MIN_EXPONENT} first.
     */
    static void softmaxTile(float[] t, int tq, int tk, int end, boolean causal, float[] keep, int keepAt,
                            float[] bits) {
        for (int i = 0; i < tq; i++) {
            int at = i * tk;
            int limit = causal ? Math.min(end, i + 1) : end;
            float max = -Float.MAX_VALUE;
            if (keep == null) {
                for (int j = 0; j < limit; j++) {
                    max = Math.max(max, t[at + j]);
                }
                for (int j = 0; j < limit; j++) {
                    t[at + j] -= max;
                }
            } else {
                for (int j = 0; j < limit; j++) {
                    max = Math.max(max, keep[keepAt + j] != 0f ? t[at + j] : -Float.MAX_VALUE);
                }
                // a masked key may score above the maximum: it gets exp(MIN_EXPONENT), then 0
                for (int j = 0; j < limit; j++) {
                    t[at + j] = keep[keepAt + j] != 0f ? t[at + j] - max : MIN_EXPONENT;
                }
            }
            java.util.Arrays.fill(t, at + limit, at + tk, MIN_EXPONENT);
        }
        exp(t, tq * tk, bits);
        for (int i = 0; i < tq; i++) {
            int at = i * tk;
            int limit = causal ? Math.min(end, i + 1) : end;
            if (keep != null) {
                for (int j = 0; j < limit; j++) {
                    t[at + j] *= keep[keepAt + j];
                }
            }
            float sum = FloatRows.sum(t, at, limit);
            // a row with no allowed key sums to 0 (or to exp(MIN_EXPONENT) multiples, masked): all 0
            float inv = sum >= 1f ? 1f / sum : 0f;
            for (int j = 0; j < limit; j++) {
                t[at + j] *= inv;
            }
            java.util.Arrays.fill(t, at + limit, at + tk, 0f);
        }
    }

    /**
     * {@code e[j] ← exp(e[j])} for {@code e[j] ≤ 0}, to a few units in the last place (values below
     * {@link #MIN_EXPONENT} give {@code exp(MIN_EXPONENT)}; positive ones are not allowed). Two loops: the first (range reduction
     * {@code x = n·ln 2 + r} with a two-part {@code ln 2}, a degree-7 polynomial for {@code exp(r)})
     * has only float arithmetic and is vectorized by C2 (it keeps {@code n} as the float
     * {@code n + 1.5·2²³}); the second scales by {@code 2ⁿ} through the exponent bits, which C2 does
     * not vectorize (a bit move in the first loop kept the whole loop scalar: 6.5 against 2.2 ns an
     * element for rows of 64).
     */
    static void exp(float[] e, int n, float[] bits) {
        for (int j = 0; j < n; j++) {
            float x = Math.max(e[j], MIN_EXPONENT);
            float fn = (x * LOG2E + ROUND) - ROUND;
            float r = (x - fn * LN2_HI) - fn * LN2_LO;
            float p = 1.9841270e-4f;
            p = p * r + 1.3888889e-3f;
            p = p * r + 8.3333333e-3f;
            p = p * r + 4.1666667e-2f;
            p = p * r + 1.6666667e-1f;
            p = p * r + 0.5f;
            p = p * r + 1f;
            p = p * r + 1f;
            e[j] = p;
            bits[j] = fn + ROUND;
        }
        for (int j = 0; j < n; j++) {
            // fn + ROUND holds n in its low mantissa bits: (bits - bits(ROUND) + 127) << 23 is 2ⁿ
            e[j] *= Float.intBitsToFloat((Float.floatToRawIntBits(bits[j]) - 0x4B400000 + 127) << 23);
        }
    }

    /**
     * Backward: {@code dq [B·Tq, h·d]}, {@code dk [B·Tk, h·d]}, {@code dv [B·Tk, h·dv]} are written
     * (every element) from {@code probs} of {@link #forward} and {@code dOut [B·Tq, h·dv]};
     * {@code scratch} is a plain float32 array of at least {@code Tq·Tk} elements.
     */
    static void backward(INDArray q, INDArray k, INDArray v, INDArray probs, INDArray dOut, int batch, int heads,
                         float scale, float[] keep, INDArray dq, INDArray dk, INDArray dv, INDArray scratch) {
        int tq = (int) (q.size(0) / batch);
        int tk = (int) (k.size(0) / batch);
        int d = (int) (q.size(1) / heads);
        int dvh = (int) (v.size(1) / heads);
        int ldq = (int) q.size(1) * batch;
        int ldv = (int) v.size(1) * batch;
        FloatPointer pq = HostBlas.pointer(q);
        FloatPointer pk = HostBlas.pointer(k);
        FloatPointer pv = HostBlas.pointer(v);
        FloatPointer pp = HostBlas.pointer(probs);
        FloatPointer pg = HostBlas.pointer(dOut);
        FloatPointer pdq = HostBlas.pointer(dq);
        FloatPointer pdk = HostBlas.pointer(dk);
        FloatPointer pdv = HostBlas.pointer(dv);
        FloatPointer ps = HostBlas.pointer(scratch);
        FloatBuffer pb = probs.data().asNioFloat();
        FloatBuffer sb = scratch.data().asNioFloat();
        FloatBuffer dqb = dq.data().asNioFloat();
        FloatBuffer dkb = dk.data().asNioFloat();
        FloatBuffer dvb = dv.data().asNioFloat();
        float[] p = new float[tq * tk];
        float[] g = new float[tq * tk];
        float[] zeros = new float[Math.max(d, dvh)];
        for (int b = 0; b < batch; b++) {
            int end = keyEnd(keep, b, tk);
            for (int hh = 0; hh < heads; hh++) {
                long qOff = (long) (b * heads + hh) * d;
                long vOff = (long) (b * heads + hh) * dvh;
                long pOff = (long) (b * heads + hh) * tq * tk;
                // keys from `end` on have P = 0, so their dK and dV rows are 0 and they add nothing to dQ
                for (int j = end; j < tk; j++) {
                    dkb.put((int) (qOff + (long) j * ldq), zeros, 0, d);
                    dvb.put((int) (vOff + (long) j * ldv), zeros, 0, dvh);
                }
                if (end == 0) {
                    for (int i = 0; i < tq; i++) {
                        dqb.put((int) (qOff + (long) i * ldq), zeros, 0, d);
                    }
                    continue;
                }
                // dV = Pᵀ·dO and dP = dO·Vᵀ (into the scratch tile, leading dimension tk)
                HostBlas.sgemm(true, false, end, dvh, tq, 1f, pp, pOff, tk, pg, vOff, ldv, 0f, pdv, vOff, ldv);
                HostBlas.sgemm(false, true, tq, end, dvh, 1f, pg, vOff, ldv, pv, vOff, ldv, 0f, ps, 0, tk);
                pb.get((int) pOff, p, 0, tq * tk);
                sb.get(0, g, 0, tq * tk);
                for (int i = 0; i < tq; i++) {
                    int at = i * tk;
                    float dot = dot(g, p, at, end);
                    for (int j = 0; j < end; j++) {
                        g[at + j] = scale * p[at + j] * (g[at + j] - dot);
                    }
                }
                sb.put(0, g, 0, tq * tk);
                // dQ = dS·K (the scale is in dS), dK = dSᵀ·Q
                HostBlas.sgemm(false, false, tq, d, end, 1f, ps, 0, tk, pk, qOff, ldq, 0f, pdq, qOff, ldq);
                HostBlas.sgemm(true, false, end, d, tq, 1f, ps, 0, tk, pq, qOff, ldq, 0f, pdk, qOff, ldq);
            }
        }
    }

    /** {@code Σ_j a[at + j]·b[at + j]} over {@code j < n}, with four partial sums. */
    private static float dot(float[] a, float[] b, int at, int n) {
        float s0 = 0;
        float s1 = 0;
        float s2 = 0;
        float s3 = 0;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            s0 += a[at + j] * b[at + j];
            s1 += a[at + j + 1] * b[at + j + 1];
            s2 += a[at + j + 2] * b[at + j + 2];
            s3 += a[at + j + 3] * b[at + j + 3];
        }
        for (; j < n; j++) {
            s0 += a[at + j] * b[at + j];
        }
        return (s0 + s1) + (s2 + s3);
    }
}
