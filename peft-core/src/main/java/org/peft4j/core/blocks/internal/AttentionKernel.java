package org.peft4j.core.blocks.internal;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastDivOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Multi-head scaled dot-product attention, forward and backward, written once for every attention
 * block of peft4j. Internal layout: {@code Q [b, h, Tq, d]}, {@code K [b, h, Tk, d]},
 * {@code V [b, h, Tk, dv]} (any strides), with
 * <pre>
 *   S = scale · Q·Kᵀ                       [b, h, Tq, Tk]
 *   P = softmax over keys of S, restricted to the allowed keys M (0 elsewhere)
 *   O = P·V                                [b, h, Tq, dv]
 * </pre>
 * Disallowed entries are pushed to {@code -1e30} before the softmax subtracts the row maximum, so
 * in a row that keeps a key they have exactly zero probability; a row with no allowed key gives
 * {@code P = 0} and {@code O = 0} rather than NaN. Float32 scores go through ND4J's softmax op (a
 * row with no allowed key comes out uniform and is multiplied by {@code M = 0}); other types through
 * separate maximum, exponential and sum ops with the denominator {@code max(Σ, 1)} (exact, because
 * a row that keeps a key holds {@code exp(0) = 1}).
 *
 * <p>Backward, for {@code dO = ∂L/∂O}:
 * <pre>
 *   dV = Pᵀ·dO      dP = dO·Vᵀ      dS = P ⊙ (dP − rowsum(dP ⊙ P))
 *   dQ = scale · dS·K               dK = scale · dSᵀ·Q
 * </pre>
 * Masked entries have {@code P = 0}, hence {@code dS = 0}: no gradient flows through them.
 *
 * <p>Why by hand: ND4J's {@code dot_product_attention} op has no causal mask and, through
 * SameDiff-based DL4J layers, returns doubled gradients in 1.0.0-M2.1; the stock triangular-mask op
 * has no gradient. Here the batched matmuls and the softmax still run in ND4J's native kernels.
 *
 * <p>Thread-safety: stateless.
 */
public final class AttentionKernel {

    /** Score given to disallowed entries before the softmax maximum. */
    static final double MASKED_SCORE = -1e30;

    private AttentionKernel() {
    }

    /** Forward result: the attention output and the probabilities (kept for the backward pass). */
    public record Forward(INDArray out, INDArray probs) {
    }

    /** Input gradients of the backward pass, in the layouts of Q, K and V. */
    public record Backward(INDArray dq, INDArray dk, INDArray dv) {
    }

    /**
     * The allowed-key mask {@code M [b, Tq, Tk]} (1 = attend, 0 = masked) combining a causal mask
     * ({@code key ≤ query}, positions aligned at the start) and a key-padding mask
     * {@code keyMask [b, Tk]} (1 = keep), or null when neither applies.
     */
    public static INDArray allowedKeys(long batch, long tq, long tk, boolean causal, INDArray keyMask, DataType dt) {
        if (!causal && keyMask == null) {
            return null;
        }
        if (keyMask != null && (keyMask.rank() != 2 || keyMask.size(0) != batch || keyMask.size(1) != tk)) {
            throw new IllegalArgumentException("key-padding mask must be [batch, time] = [" + batch + ", " + tk
                    + "], got " + java.util.Arrays.toString(keyMask.shape()));
        }
        // built on the heap and created in one piece: a few thousand values, where ND4J took an
        // assign, a broadcast and, for the causal mask, another broadcast (each with its fixed cost)
        double[] keep = keyMask == null ? null : keyMask.castTo(DataType.DOUBLE).dup('c').data().asDouble();
        int n = Math.toIntExact(batch * tq * tk);
        double[] m = new double[n];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < tq; i++) {
                int row = (int) ((b * tq + i) * tk);
                for (int j = 0; j < tk; j++) {
                    boolean allowed = (!causal || j <= i) && (keep == null || keep[(int) (b * tk + j)] != 0.0);
                    m[row + j] = allowed ? 1.0 : 0.0;
                }
            }
        }
        if (dt == DataType.FLOAT) {
            float[] f = new float[n];
            for (int i = 0; i < n; i++) {
                f[i] = (float) m[i];
            }
            return Nd4j.createFromArray(f).reshape('c', batch, tq, tk);
        }
        INDArray a = Nd4j.createFromArray(m).reshape('c', batch, tq, tk);
        return dt == DataType.DOUBLE ? a : a.castTo(dt);
    }

    /** {@code (M − 1)·1e30} for an allowed-key mask {@code M}, and whether some query allows no key. */
    private record Push(INDArray add, boolean emptyRow) {
    }

    /** The scores to add for {@code allowed} ({@code 0} or {@link #MASKED_SCORE}), computed on the heap. */
    private static Push push(INDArray allowed) {
        // allowedKeys' float arrays are read as they are; anything else through a 'c' float copy
        boolean plain = allowed.dataType() == DataType.FLOAT && allowed.ordering() == 'c' && !allowed.isView()
                && allowed.data().length() == allowed.length();
        float[] m = (plain ? allowed : allowed.castTo(DataType.FLOAT).dup('c')).data().asFloat();
        int tk = (int) allowed.size(2);
        float[] add = new float[m.length];
        boolean emptyRow = false;
        for (int row = 0; row < m.length; row += tk) {
            boolean any = false;
            for (int j = 0; j < tk; j++) {
                add[row + j] = m[row + j] != 0f ? 0f : (float) MASKED_SCORE;
                any |= m[row + j] != 0f;
            }
            emptyRow |= !any;
        }
        INDArray a = Nd4j.createFromArray(add).reshape('c', allowed.shape());
        return new Push(allowed.dataType() == DataType.FLOAT ? a : a.castTo(allowed.dataType()), emptyRow);
    }

    /**
     * @param q {@code [b, h, Tq, d]}
     * @param k {@code [b, h, Tk, d]}
     * @param v {@code [b, h, Tk, dv]}
     * @param scale usually {@code 1/√d}
     * @param allowed {@code [b, Tq, Tk]} from {@link #allowedKeys}, or null for no mask
     */
    public static Forward forward(INDArray q, INDArray k, INDArray v, double scale, INDArray allowed) {
        return forward(q, k, v, scale, allowed, null, null);
    }

    /**
     * {@link #forward(INDArray, INDArray, INDArray, double, INDArray)} into given arrays: the scores,
     * then the probabilities in place, in {@code scores [b, h, Tq, Tk]} and the output in
     * {@code out [b, h, Tq, dv]} (any strides: a view of the rows a layer reads next), each
     * allocated when null. Given arrays save ND4J's zero-filled allocation of the products, which
     * outside a workspace cost more than the products of a MiniLM-sized layer, and a copy of the
     * output into the caller's layout.
     */
    public static Forward forward(INDArray q, INDArray k, INDArray v, double scale, INDArray allowed, INDArray scores,
                                  INDArray out) {
        INDArray s = scores == null ? Nd4j.matmul(q, k, false, true, false)
                : Nd4j.matmul(q, k, scores, false, true, false);
        s.muli(scale);
        INDArray p;
        if (allowed == null) {
            p = Nd4j.exec(new SoftMax(s, s, -1))[0];
        } else if (s.dataType() == DataType.FLOAT) {
            // s += (M - 1) · 1e30, broadcast over heads: exp(-1e30 - max) is exactly 0 for every row
            // that keeps a key; a row that keeps none comes out uniform and is multiplied by M = 0
            Push push = push(allowed);
            Nd4j.getExecutioner().exec(new BroadcastAddOp(s, push.add(), s, 0, 2, 3));
            p = Nd4j.exec(new SoftMax(s, s, -1))[0];
            if (push.emptyRow()) {
                Nd4j.getExecutioner().exec(new BroadcastMulOp(p, allowed, p, 0, 2, 3));
            }
        } else {
            // ND4J's double-precision softmax gives NaN for a row of large negative scores (it does
            // not subtract the row maximum), so the maximum is subtracted here
            INDArray push = allowed.sub(1.0).muli(-MASKED_SCORE);
            Nd4j.getExecutioner().exec(new BroadcastAddOp(s, push, s, 0, 2, 3));
            INDArray max = s.max(3);
            Nd4j.getExecutioner().exec(new BroadcastSubOp(s, max, s, 0, 1, 2));
            Transforms.exp(s, false);
            Nd4j.getExecutioner().exec(new BroadcastMulOp(s, allowed, s, 0, 2, 3));
            INDArray sum = s.sum(3);
            Transforms.max(sum, 1.0, false);
            Nd4j.getExecutioner().exec(new BroadcastDivOp(s, sum, s, 0, 1, 2));
            p = s;
        }
        INDArray o = out == null ? Nd4j.matmul(p, v, false, false, false) : Nd4j.matmul(p, v, out, false, false, false);
        return new Forward(o, p);
    }

    /** Rows per heap block of {@link #softmaxBackwardRows}. */
    private static final int BLOCK = 8192;

    /**
     * {@code dP ← scale · P ⊙ (dP − rowsum(dP ⊙ P))} in place, row by row (rows of the last
     * dimension), when both arrays are {@code 'c'}-ordered contiguous host arrays of one float type
     * and shape ({@link RowKernels#sameRows}); returns false (nothing written) otherwise. Why: ND4J
     * needs five ops and a temporary array for it (a multiply, a row sum, a broadcast subtraction and
     * two multiplies), each a pass over the {@code [b, h, T, T]} scores with its fixed cost; here a
     * row stays in the L1 cache. The row sum has eight partial sums ({@link FloatRows}) in float32.
     */
    static boolean softmaxBackwardRows(INDArray dp, INDArray probs, double scale) {
        if (!RowKernels.sameRows(dp, probs)) {
            return false;
        }
        int t = (int) dp.size(dp.rank() - 1);
        long n = dp.length();
        int rowsPerBlock = Math.max(1, BLOCK / t);
        if (dp.dataType() == DataType.FLOAT) {
            java.nio.FloatBuffer dpb = dp.data().asNioFloat();
            java.nio.FloatBuffer pb = probs.data().asNioFloat();
            int dpBase = (int) dp.offset();
            int pBase = (int) probs.offset();
            float sc = (float) scale;
            float[] g = new float[rowsPerBlock * t];
            float[] p = new float[rowsPerBlock * t];
            for (long from = 0; from < n; from += (long) rowsPerBlock * t) {
                int len = (int) Math.min((long) rowsPerBlock * t, n - from);
                dpb.get(dpBase + (int) from, g, 0, len);
                pb.get(pBase + (int) from, p, 0, len);
                for (int o = 0; o < len; o += t) {
                    float dot = FloatRows.dot(g, o, p, o, t);
                    for (int j = 0; j < t; j++) {
                        g[o + j] = sc * p[o + j] * (g[o + j] - dot);
                    }
                }
                dpb.put(dpBase + (int) from, g, 0, len);
            }
        } else {
            java.nio.DoubleBuffer dpb = dp.data().asNioDouble();
            java.nio.DoubleBuffer pb = probs.data().asNioDouble();
            int dpBase = (int) dp.offset();
            int pBase = (int) probs.offset();
            double[] g = new double[rowsPerBlock * t];
            double[] p = new double[rowsPerBlock * t];
            for (long from = 0; from < n; from += (long) rowsPerBlock * t) {
                int len = (int) Math.min((long) rowsPerBlock * t, n - from);
                dpb.get(dpBase + (int) from, g, 0, len);
                pb.get(pBase + (int) from, p, 0, len);
                for (int o = 0; o < len; o += t) {
                    double dot = 0;
                    for (int j = 0; j < t; j++) {
                        dot += g[o + j] * p[o + j];
                    }
                    for (int j = 0; j < t; j++) {
                        g[o + j] = scale * p[o + j] * (g[o + j] - dot);
                    }
                }
                dpb.put(dpBase + (int) from, g, 0, len);
            }
        }
        return true;
    }

    /** Backward of {@link #forward}; {@code probs} is {@link Forward#probs()}, {@code dOut [b, h, Tq, dv]}. */
    public static Backward backward(INDArray q, INDArray k, INDArray v, INDArray probs, INDArray dOut, double scale) {
        return backward(q, k, v, probs, dOut, scale, null, null, null, null);
    }

    /**
     * {@link #backward(INDArray, INDArray, INDArray, INDArray, INDArray, double)} into given arrays
     * (each allocated when null): {@code dq}, {@code dk}, {@code dv} in the shapes of Q, K, V (any
     * strides: views of the rows the input gradients are returned in), and {@code scratch}
     * {@code [b, h, Tq, Tk]} for {@code dP}, then {@code dS}. {@code probs} is left as it was.
     */
    public static Backward backward(INDArray q, INDArray k, INDArray v, INDArray probs, INDArray dOut, double scale,
                                    INDArray dq, INDArray dk, INDArray dv, INDArray scratch) {
        INDArray gv = dv == null ? Nd4j.matmul(probs, dOut, true, false, false)
                : Nd4j.matmul(probs, dOut, dv, true, false, false);
        INDArray dp = scratch == null ? Nd4j.matmul(dOut, v, false, true, false)
                : Nd4j.matmul(dOut, v, scratch, false, true, false);
        INDArray ds;
        if (softmaxBackwardRows(dp, probs, scale)) {
            ds = dp;
        } else {
            INDArray rowDot = dp.mul(probs).sum(3);
            Nd4j.getExecutioner().exec(new BroadcastSubOp(dp, rowDot, dp, 0, 1, 2));
            ds = dp.muli(probs).muli(scale);
        }
        INDArray gq = dq == null ? Nd4j.matmul(ds, k, false, false, false) : Nd4j.matmul(ds, k, dq, false, false, false);
        INDArray gk = dk == null ? Nd4j.matmul(ds, q, true, false, false) : Nd4j.matmul(ds, q, dk, true, false, false);
        return new Backward(gq, gk, gv);
    }
}
