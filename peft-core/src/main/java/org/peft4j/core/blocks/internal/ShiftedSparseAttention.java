package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Shifted sparse attention (S²-Attn, LongLoRA, arXiv 2309.12307, §3.2): attention restricted to
 * groups of {@code G} consecutive positions, with half of the heads working on groups shifted by
 * {@code G/2}, so neighbouring groups exchange information through them. It is a grouping and
 * shifting step around {@link AttentionKernel}, which does the attention inside every group
 * (forward and backward unchanged).
 *
 * <p>For {@code Q, K [b, h, T, d]}, {@code V [b, h, T, dv]}, {@code h} even, {@code G} even:
 * <pre>
 *   T' = ⌈T / G⌉·G  (positions T … T'−1 are padding: never attended to, their outputs dropped)
 *   n  = T' / G groups;  s = G/2
 *   heads 0 … h/2−1:   group i holds positions  i·G + a                 (a = 0 … G−1)
 *   heads h/2 … h−1:   group i holds positions (i·G + a + s) mod T'     (the sequence rolled by −s)
 *   inside a group, query a attends to key c when
 *       pos(c) &lt; T, the key-padding mask keeps pos(c), and, if causal, pos(c) ≤ pos(a)
 * </pre>
 * The causal test compares the original positions, not the places in the group. The last group of
 * the shifted heads wraps around (it holds the last {@code s} and the first {@code s} positions);
 * comparing places there, as the paper's roll-then-mask pseudocode does, would let the first
 * {@code s} tokens see the last ones. Comparing positions keeps every query to earlier keys, and
 * with one group ({@code T ≤ G}) the shifted heads see exactly the full causal attention. The
 * kernel works on {@code [2·b·n, h/2, G, ·]}: heads split into the unshifted and the shifted half,
 * each half's groups stacked along the batch axis, with one allowed-key mask {@code [2·b·n, G, G]}.
 * Cost and memory of the scores: {@code b·h·T'·G}, against {@code b·h·T²} for full attention.
 *
 * <p>Backward: the kernel's {@code dQ, dK, dV} of the grouped arrays, moved back by the inverse of
 * the grouping (unroll the shifted half, drop the padding). Grouping is a permutation of rows, so
 * its backward is the inverse permutation.
 *
 * <p>Thread-safety: stateless.
 */
public final class ShiftedSparseAttention {

    private ShiftedSparseAttention() {
    }

    /** The shapes of one call: batch, heads, length, group size, padded length and number of groups. */
    record Plan(long b, long h, long t, long g, long tp, long n) {

        static Plan of(INDArray q, int groupSize) {
            long t = q.size(2);
            long n = (t + groupSize - 1) / groupSize;
            return new Plan(q.size(0), q.size(1), t, groupSize, n * groupSize, n);
        }

        long shift() {
            return g / 2;
        }

        /** The original position held at place {@code a} of group {@code i} by head half {@code half}. */
        long position(int half, long i, long a) {
            long p = i * g + a;
            return half == 0 ? p : (p + shift()) % tp;
        }
    }

    /**
     * Forward result: the output {@code [b, h, T, dv]} ('c') and what the backward pass needs.
     *
     * @param out the attention output in the caller's layout
     * @param grouped the kernel's result on the grouped arrays (probabilities kept for backward)
     */
    public record Forward(INDArray out, AttentionKernel.Forward grouped, INDArray q, INDArray k, INDArray v,
                          double scale, Plan plan) {
    }

    /**
     * Checks the arguments S²-Attn needs, naming what is wrong.
     *
     * @throws IllegalArgumentException if {@code heads} is odd or {@code groupSize} is not an even number ≥ 2
     */
    public static void check(int heads, int groupSize) {
        if (groupSize < 2 || groupSize % 2 != 0) {
            throw new IllegalArgumentException("shifted sparse attention: the group size must be an even number of at "
                    + "least 2 (half of the heads shift by half a group); got " + groupSize);
        }
        if (heads < 2 || heads % 2 != 0) {
            throw new IllegalArgumentException("shifted sparse attention: the number of heads must be even (half of "
                    + "them work on shifted groups); got " + heads);
        }
    }

    /**
     * @param q {@code [b, h, T, d]} (any strides)
     * @param k {@code [b, h, T, d]}
     * @param v {@code [b, h, T, dv]}
     * @param scale usually {@code 1/√d}
     * @param causal whether a query sees earlier (and its own) positions only
     * @param keyMask {@code [b, T]} key-padding mask (1 = keep), or null
     * @param groupSize {@code G}, even
     */
    public static Forward forward(INDArray q, INDArray k, INDArray v, double scale, boolean causal, INDArray keyMask,
                                  int groupSize) {
        check((int) q.size(1), groupSize);
        if (k.size(2) != q.size(2) || v.size(2) != q.size(2)) {
            throw new IllegalArgumentException("shifted sparse attention is self-attention: queries, keys and values "
                    + "must have the same length; got " + q.size(2) + ", " + k.size(2) + ", " + v.size(2));
        }
        Plan p = Plan.of(q, groupSize);
        INDArray qg = group(q, p);
        INDArray kg = group(k, p);
        INDArray vg = group(v, p);
        INDArray allowed = allowedKeys(p, causal, keyMask, q.dataType());
        AttentionKernel.Forward f = AttentionKernel.forward(qg, kg, vg, scale, allowed);
        return new Forward(ungroup(f.out(), p), f, qg, kg, vg, scale, p);
    }

    /** Backward of {@link #forward}: {@code dOut [b, h, T, dv]} → {@code dQ, dK, dV} in the layout of the inputs. */
    public static AttentionKernel.Backward backward(Forward f, INDArray dOut) {
        INDArray dg = group(dOut, f.plan());
        AttentionKernel.Backward bw = AttentionKernel.backward(f.q(), f.k(), f.v(), f.grouped().probs(), dg, f.scale());
        return new AttentionKernel.Backward(ungroup(bw.dq(), f.plan()), ungroup(bw.dk(), f.plan()),
                ungroup(bw.dv(), f.plan()));
    }

    private static INDArrayIndex[] at(long half, long headFrom, long headTo, long from, long to) {
        return new INDArrayIndex[] {NDArrayIndex.all(), NDArrayIndex.point(half), NDArrayIndex.interval(headFrom, headTo),
            NDArrayIndex.interval(from, to), NDArrayIndex.all()};
    }

    private static INDArrayIndex[] heads(long from, long to, long tFrom, long tTo) {
        return new INDArrayIndex[] {NDArrayIndex.all(), NDArrayIndex.interval(from, to), NDArrayIndex.interval(tFrom, tTo),
            NDArrayIndex.all()};
    }

    /** {@code x [b, h, T, d]} → {@code [2·b·n, h/2, G, d]} ('c'), padding zero. */
    static INDArray group(INDArray x, Plan p) {
        long d = x.size(3);
        long half = p.h() / 2;
        long s = p.shift();
        long head = Math.min(s, p.t());
        // rolled [b, 2, h/2, T', d]: half 0 as is, half 1 rolled by −s (place r holds position (r + s) mod T')
        INDArray rolled = Nd4j.zeros(x.dataType(), p.b(), 2, half, p.tp(), d);
        rolled.get(at(0, 0, half, 0, p.t())).assign(x.get(heads(0, half, 0, p.t())));
        if (p.t() > s) {
            // positions s … T−1 go to places 0 … T−1−s
            rolled.get(at(1, 0, half, 0, p.t() - s)).assign(x.get(heads(half, p.h(), s, p.t())));
        }
        // positions 0 … s−1 go to places T'−s … T'−1
        rolled.get(at(1, 0, half, p.tp() - s, p.tp() - s + head)).assign(x.get(heads(half, p.h(), 0, head)));
        // [b, 2, h/2, n, G, d] → [b, 2, n, h/2, G, d] → [2·b·n, h/2, G, d]
        return rolled.reshape('c', p.b(), 2, half, p.n(), p.g(), d).permute(0, 1, 3, 2, 4, 5).dup('c')
                .reshape('c', p.b() * 2 * p.n(), half, p.g(), d);
    }

    /** Inverse of {@link #group}: {@code [2·b·n, h/2, G, d]} → {@code [b, h, T, d]} ('c'), padding dropped. */
    static INDArray ungroup(INDArray y, Plan p) {
        long d = y.size(3);
        long half = p.h() / 2;
        long s = p.shift();
        long head = Math.min(s, p.t());
        INDArray rolled = y.reshape('c', p.b(), 2, p.n(), half, p.g(), d).permute(0, 1, 3, 2, 4, 5).dup('c')
                .reshape('c', p.b(), 2, half, p.tp(), d);
        INDArray out = Nd4j.createUninitialized(y.dataType(), p.b(), p.h(), p.t(), d);
        out.get(heads(0, half, 0, p.t())).assign(rolled.get(at(0, 0, half, 0, p.t())));
        if (p.t() > s) {
            out.get(heads(half, p.h(), s, p.t())).assign(rolled.get(at(1, 0, half, 0, p.t() - s)));
        }
        out.get(heads(half, p.h(), 0, head)).assign(rolled.get(at(1, 0, half, p.tp() - s, p.tp() - s + head)));
        return out;
    }

    /** The allowed-key mask {@code [2·b·n, G, G]} of the grouped arrays (see the class javadoc). */
    static INDArray allowedKeys(Plan p, boolean causal, INDArray keyMask, DataType dt) {
        if (keyMask != null && (keyMask.rank() != 2 || keyMask.size(0) != p.b() || keyMask.size(1) != p.t())) {
            throw new IllegalArgumentException("key-padding mask must be [batch, time] = [" + p.b() + ", " + p.t()
                    + "], got " + Arrays.toString(keyMask.shape()));
        }
        int g = Math.toIntExact(p.g());
        double[] keep = keyMask == null ? null : keyMask.castTo(DataType.DOUBLE).dup('c').data().asDouble();
        // without a key mask every batch row has the same mask: build one and repeat it
        long rows = keep == null ? 1 : p.b();
        double[] m = new double[Math.toIntExact(Math.multiplyExact(rows * 2 * p.n(), (long) g * g))];
        long[] pos = new long[g];
        int o = 0;
        for (long bi = 0; bi < rows; bi++) {
            for (int half = 0; half < 2; half++) {
                for (long i = 0; i < p.n(); i++) {
                    for (int a = 0; a < g; a++) {
                        pos[a] = p.position(half, i, a);
                    }
                    for (int a = 0; a < g; a++) {
                        for (int c = 0; c < g; c++) {
                            long pc = pos[c];
                            boolean ok = pc < p.t() && (keep == null || keep[(int) (bi * p.t() + pc)] != 0)
                                    && (!causal || pc <= pos[a]);
                            m[o++] = ok ? 1.0 : 0.0;
                        }
                    }
                }
            }
        }
        INDArray one = Nd4j.createFromArray(m).castTo(dt).reshape('c', rows * 2 * p.n(), g, g);
        return rows == p.b() ? one : Nd4j.tile(one, (int) p.b(), 1, 1);
    }
}
