package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.spi.HostBlas;

/**
 * {@link HostAttention}, the float32 attention on time-distributed rows with direct BLAS calls,
 * against {@link AttentionKernel}'s double-precision path (the one the gradient checks validate):
 * forward output, probabilities and the three input gradients, for several batch, head and head
 * sizes (odd ones included), query and key lengths, with and without the causal mask, with no key
 * mask, padding at the end of some sequences, holes inside a sequence and a fully padded sequence.
 * Also: the fast path refuses what it cannot read in place, and {@code -Dpeft4j.directBlas=false}
 * (the surefire execution {@code direct-blas-off} runs this class with it) turns it off.
 */
class HostAttentionTest {

    /** Key-mask kinds: none, padding at the end (one sequence fully padded), holes inside sequences. */
    private enum Mask { NONE, PADDING, HOLES }

    private static INDArray keyMask(Mask kind, int batch, int tk, Random rnd) {
        if (kind == Mask.NONE) {
            return null;
        }
        double[][] m = new double[batch][tk];
        for (int b = 0; b < batch; b++) {
            int keepUpTo = b == 1 ? 0 : Math.max(1, tk - (b * 3) % tk);
            for (int j = 0; j < tk; j++) {
                m[b][j] = j < keepUpTo && (kind == Mask.PADDING || rnd.nextInt(3) != 0) ? 1 : 0;
            }
        }
        return Nd4j.createFromArray(m).castTo(DataType.FLOAT);
    }

    private static INDArray rows(Random rnd, long n, long f, double scale) {
        double[][] a = new double[(int) n][(int) f];
        for (double[] r : a) {
            for (int j = 0; j < r.length; j++) {
                r[j] = rnd.nextGaussian() * scale;
            }
        }
        return Nd4j.createFromArray(a).castTo(DataType.FLOAT);
    }

    /** Heads {@code [B, h, T, d]} of double time-distributed rows → rows {@code [B·T, h·d]}. */
    private static INDArray toRows(INDArray heads) {
        INDArray out = Nd4j.create(DataType.DOUBLE, heads.size(0) * heads.size(2), heads.size(1) * heads.size(3));
        Layouts.headsToTimeDistributed(heads, out);
        return out;
    }

    private static void assertClose(INDArray expected, INDArray actual, double relTol, String what) {
        double scale = Math.max(expected.amaxNumber().doubleValue(), 1e-3);
        double diff = actual.castTo(DataType.DOUBLE).sub(expected).amaxNumber().doubleValue();
        assertTrue(diff <= relTol * scale, what + ": differs by " + diff + " at scale " + scale);
    }

    private static void check(int batch, int tq, int tk, int heads, int d, int dv, boolean causal, Mask mask,
                              long seed) {
        check(batch, tq, tk, heads, d, dv, causal, mask, seed, 1.5, 1e-5);
    }

    /** @param qkScale standard deviation of q and k; {@code tol} relative to each result's largest element */
    private static void check(int batch, int tq, int tk, int heads, int d, int dv, boolean causal, Mask mask,
                              long seed, double qkScale, double tol) {
        Random rnd = new Random(seed);
        INDArray q = rows(rnd, (long) batch * tq, (long) heads * d, qkScale);
        INDArray k = rows(rnd, (long) batch * tk, (long) heads * d, qkScale);
        INDArray v = rows(rnd, (long) batch * tk, (long) heads * dv, 1);
        INDArray dOut = rows(rnd, (long) batch * tq, (long) heads * dv, 1);
        INDArray km = keyMask(mask, batch, tk, rnd);
        float scale = (float) (1.0 / Math.sqrt(d));
        String what = "B " + batch + " Tq " + tq + " Tk " + tk + " h " + heads + " d " + d + " dv " + dv + " causal "
                + causal + " mask " + mask;

        INDArray probs = Nd4j.createUninitialized(DataType.FLOAT, new long[] {batch, heads, tq, tk}, 'c');
        // garbage in the reused arrays must not leak into the results
        probs.assign(Float.NaN);
        INDArray out = Nd4j.create(DataType.FLOAT, (long) batch * tq, (long) heads * dv).assign(Float.NaN);
        INDArray dq = q.like().assign(Float.NaN);
        INDArray dk = k.like().assign(Float.NaN);
        INDArray dv2 = v.like().assign(Float.NaN);
        INDArray tile = Nd4j.create(DataType.FLOAT, tq, tk);
        assertTrue(HostAttention.applies(batch, heads, q, k, v, probs, out, dOut, dq, dk, dv2), what);
        assertTrue(HostBlas.isPlain(tile, 2), what);
        float[] keep = HostAttention.keep(km, batch, tk);
        HostAttention.forward(q, k, v, batch, heads, scale, causal, keep, probs, out);
        HostAttention.backward(q, k, v, probs, dOut, batch, heads, scale, keep, dq, dk, dv2, tile);

        INDArray qh = Layouts.timeDistributedToHeads(q.castTo(DataType.DOUBLE), batch, heads, what);
        INDArray kh = Layouts.timeDistributedToHeads(k.castTo(DataType.DOUBLE), batch, heads, what);
        INDArray vh = Layouts.timeDistributedToHeads(v.castTo(DataType.DOUBLE), batch, heads, what);
        INDArray gh = Layouts.timeDistributedToHeads(dOut.castTo(DataType.DOUBLE), batch, heads, what);
        INDArray allowed = AttentionKernel.allowedKeys(batch, tq, tk, causal,
                km == null ? null : km.castTo(DataType.DOUBLE), DataType.DOUBLE);
        AttentionKernel.Forward f = AttentionKernel.forward(qh, kh, vh, scale, allowed);
        AttentionKernel.Backward bw = AttentionKernel.backward(qh, kh, vh, f.probs(), gh, scale);

        assertClose(f.probs(), probs, tol / 10, what + " probabilities");
        assertClose(toRows(f.out()), out, tol, what + " output");
        assertClose(toRows(bw.dq()), dq, tol, what + " dq");
        assertClose(toRows(bw.dk()), dk, tol, what + " dk");
        assertClose(toRows(bw.dv()), dv2, tol, what + " dv");
        if (allowed != null) {
            // masked keys: exactly zero probability
            INDArray p = probs.castTo(DataType.DOUBLE);
            for (int b = 0; b < batch; b++) {
                for (int i = 0; i < tq; i++) {
                    for (int j = 0; j < tk; j++) {
                        if (allowed.getDouble(b, i, j) == 0) {
                            for (int h = 0; h < heads; h++) {
                                assertEquals(0.0, p.getDouble(b, h, i, j), 0.0, what + " at " + b + "," + h + "," + i
                                        + "," + j);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void fastPathEqualsTheDoublePathForMaskedAndUnmaskedBatches() {
        assumeTrue(HostBlas.available(), "direct BLAS is off in this run");
        long seed = 1;
        for (boolean causal : new boolean[] {false, true}) {
            for (Mask mask : Mask.values()) {
                check(3, 7, 7, 3, 5, 5, causal, mask, seed++);
                check(2, 16, 16, 12, 4, 4, causal, mask, seed++);
                check(4, 9, 9, 1, 33, 7, causal, mask, seed++);
                check(3, 64, 64, 2, 32, 32, causal, mask, seed++);
            }
        }
        // cross attention: queries and keys of different lengths
        for (Mask mask : Mask.values()) {
            check(3, 5, 11, 2, 6, 3, false, mask, seed++);
            check(2, 13, 4, 3, 8, 8, false, mask, seed++);
        }
    }

    @Test
    void largeScoresGiveNoOverflowAndARowOfEqualScoresIsUniform() {
        assumeTrue(HostBlas.available(), "direct BLAS is off in this run");
        // scores of several hundred: exp of (score - max) stays in range; masked keys above the max are 0
        // scores in the hundreds: float rounds them to about 1e-5, hence the tolerance
        check(2, 6, 6, 2, 4, 4, false, Mask.HOLES, 99, 12, 1e-3);
        check(2, 6, 6, 2, 4, 4, true, Mask.PADDING, 98, 12, 1e-3);
        INDArray q = Nd4j.zeros(DataType.FLOAT, 2 * 5, 2 * 3);
        INDArray k = rows(new Random(3), 2 * 5, 2 * 3, 30);
        INDArray v = rows(new Random(4), 2 * 5, 2 * 3, 1);
        INDArray probs = Nd4j.create(DataType.FLOAT, 2, 2, 5, 5);
        INDArray out = Nd4j.create(DataType.FLOAT, 2 * 5, 2 * 3);
        HostAttention.forward(q, k, v, 2, 2, 1f, false, HostAttention.keep(null, 2, 5), probs, out);
        assertTrue(probs.sub(0.2).amaxNumber().doubleValue() < 1e-6, "q = 0: every key equally likely");
    }

    /**
     * The key mask as 1/0 floats: any non-zero value allows its key, whatever the mask's type and
     * order, and a float mask that is a row range of a larger one is read from its own offset.
     */
    @Test
    void keyMaskOfAnyTypeOrderOrOffsetGivesTheSameKeepFlags() {
        double[][] m = {{1, 0, 0.5, -2}, {0, 0, 1, 1}, {1, 1, 1, 0}};
        float[] expected = {1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0};
        INDArray d = Nd4j.createFromArray(m);
        INDArray f = d.castTo(DataType.FLOAT);
        INDArray bigger = Nd4j.vstack(Nd4j.ones(DataType.FLOAT, 2, 4), f);
        INDArray view = bigger.get(NDArrayIndex.interval(2, 5), NDArrayIndex.all());
        assertEquals(8, view.offset(), "the view starts inside its buffer");
        for (INDArray mask : new INDArray[] {d, f, f.dup('f'), view, f.castTo(DataType.HALF)}) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected, HostAttention.keep(mask, 3, 4), 0f,
                    mask.dataType() + " " + mask.ordering() + " offset " + mask.offset());
        }
    }

    @Test
    void expIsAccurateToAFewUlpsOverTheSoftmaxRange() {
        float[] e = new float[2001];
        float[] bits = new float[e.length];
        for (int i = 0; i < e.length; i++) {
            e[i] = -86f * i / (e.length - 1);
        }
        float[] x = e.clone();
        HostAttention.exp(e, e.length, bits);
        for (int i = 0; i < e.length; i++) {
            double ref = Math.exp(x[i]);
            assertEquals(ref, e[i], 4 * Math.ulp((float) ref), "exp(" + x[i] + ")");
        }
    }

    @Test
    void onlyPlainFloatRowsTakeTheFastPath() {
        assumeTrue(HostBlas.available(), "direct BLAS is off in this run");
        INDArray rows = Nd4j.rand(DataType.FLOAT, 12, 6);
        assertTrue(HostAttention.applies(3, 2, rows));
        assertFalse(HostAttention.applies(3, 2, rows.dup('f')), "'f' order");
        assertFalse(HostAttention.applies(3, 2, rows.castTo(DataType.DOUBLE)), "double");
        assertFalse(HostAttention.applies(3, 2, Nd4j.rand(DataType.FLOAT, 24, 6)
                .get(NDArrayIndex.interval(12, 24), NDArrayIndex.all())), "a view");
        assertFalse(HostAttention.applies(5, 2, rows), "rows not a multiple of the batch");
        assertFalse(HostAttention.applies(3, 4, rows), "width not a multiple of the heads");
        assertTrue(HostAttention.applies(3, 2, Nd4j.rand(DataType.FLOAT, 3, 2, 4, 4)), "probabilities");
        assertFalse(HostAttention.applies(3, 2, Nd4j.rand(DataType.FLOAT, 3, 4, 4, 2).permute(0, 3, 1, 2)),
                "permuted probabilities");
    }

    @Test
    void directBlasPropertyFalseTurnsTheFastPathOff() {
        boolean off = "false".equalsIgnoreCase(System.getProperty(HostBlas.PROPERTY, "true").trim());
        assumeTrue(off || "org.nd4j.linalg.cpu.nativecpu.CpuBackend".equals(Nd4j.getBackend().getClass().getName()));
        assertEquals(!off, HostBlas.available());
        assertEquals(!off, HostAttention.applies(3, 2, Nd4j.rand(DataType.FLOAT, 12, 6)));
    }
}
