package org.peft4j.quant.internal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.stream.IntStream;

/**
 * Batch-1 products with a 4-bit matrix {@code W [nIn, nOut]} (C order, DL4J's dense-weight
 * orientation) read straight from its packed codes:
 * <ul>
 *   <li>{@link #gemv}: {@code y[j] = Σ_i x[i] · W[i, j]} (forward, {@code x [nIn]}, {@code y [nOut]});</li>
 *   <li>{@link #gemvTransposed}: {@code out[i] = Σ_j g[j] · W[i, j]} (backward epsilon,
 *       {@code g [nOut]}, {@code out [nIn]}).</li>
 * </ul>
 * Hand-written because ND4J has no 4-bit type: a float GEMV must first materialise all of
 * {@code W} (8× the bytes), while these loops read each code byte once and turn it into two
 * floats through a 256-entry table. The forward kernel folds the input into the block scale
 * ({@code s = x[i] · absmax[b]}) and, when rows are whole blocks, walks eight rows at once so every
 * {@code y} element is loaded and stored once per eight rows. The transposed kernel sums
 * {@code table[code] · g[j]} over a block for eight rows at once (eight independent sums sharing
 * each load of {@code g}) and multiplies by the block scale once.
 *
 * <p>Three things make the scalar loops fast on C2: the table is picked inside the looping method
 * as one of {@link Blockwise4bit}'s two static final 512-float arrays, so C2 knows its length and
 * drops the range check of every table load (a table passed in as a parameter keeps them; so does
 * merely checking its length); eight code bytes per row come from one little-endian {@code long}
 * load; and eight rows per pass share each load and store of {@code y}. Measured figures are in
 * {@code benchmarks/RESULTS.md} ({@code Nf4GemvBench}).
 *
 * <p>Where {@link NativeKernels} are in use (Linux x86-64 with AVX2 or AVX-512), both products run
 * there; otherwise, on JVMs where {@link VectorKernels} enables them, the forward product runs
 * {@link Gemv4bitVector} (a table permutation per vector of codes).
 *
 * <p>Work is split over the common ForkJoin pool (output columns for the forward kernel, rows for
 * the transposed one) when the matrix is large.
 *
 * <p>Thread-safety: stateless; concurrent calls are safe if they write to different outputs.
 */
public final class Gemv4bit {
    private static final long PARALLEL_WORK = 1L << 18;
    /** Eight code bytes per load, little-endian: byte {@code p + m} is bits {@code 8m .. 8m+7}. */
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private Gemv4bit() {
    }

    /**
     * {@code y = x · W}; {@code y} is overwritten. Runs the first kernel that is in use and takes
     * the shape: {@link NativeKernels}, then the Vector API kernel ({@link VectorKernels}), then the
     * scalar kernel.
     */
    public static void gemv(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                            int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        if (!NativeKernels.gemv(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff)
                && !VectorKernels.gemv(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff)) {
            gemvScalar(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff);
        }
    }

    /** {@code y = x · W} with the scalar kernel whatever {@link NativeKernels} and {@link VectorKernels} decided; {@code y} is overwritten. */
    public static void gemvScalar(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                  int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        splitColumns(nIn, nOut, blockSize,
                (j0, j1) -> gemvColumns(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff, j0, j1));
    }

    /** One task's share of a product: columns or rows {@code [from, to)}. */
    @FunctionalInterface
    interface Share {
        void run(int from, int to);
    }

    /**
     * Runs {@code share} over column ranges that cover {@code [0, nOut)}, aligned to blocks so each
     * sees whole block columns: once when the product is small, else one range per core on the
     * common ForkJoin pool.
     */
    static void splitColumns(int nIn, int nOut, int blockSize, Share share) {
        int tasks = tasksFor(nIn, nOut, nOut / blockSize);
        if (tasks <= 1) {
            share.run(0, nOut);
            return;
        }
        int blockCols = (int) (((long) nOut + blockSize - 1) / blockSize);
        IntStream.range(0, tasks).parallel().forEach(t -> share.run(
                Math.min(nOut, (int) ((long) blockCols * t / tasks) * blockSize),
                Math.min(nOut, (int) ((long) blockCols * (t + 1) / tasks) * blockSize)));
    }

    /** Runs {@code share} over row ranges that cover {@code [0, nIn)}, split as {@link #splitColumns} splits. */
    static void splitRows(int nIn, int nOut, Share share) {
        int tasks = tasksFor(nIn, nOut, nIn);
        if (tasks <= 1) {
            share.run(0, nIn);
            return;
        }
        IntStream.range(0, tasks).parallel().forEach(t -> share.run(
                (int) ((long) nIn * t / tasks), (int) ((long) nIn * (t + 1) / tasks)));
    }

    /** How many pool tasks a product of {@code [nIn, nOut]} is split into: 1 when small, else up to the cores and {@code maxTasks}. */
    private static int tasksFor(int nIn, int nOut, int maxTasks) {
        if ((long) nIn * nOut < PARALLEL_WORK) {
            return 1;
        }
        return Math.max(1, Math.min(Math.max(1, Runtime.getRuntime().availableProcessors()), maxTasks));
    }

    /** {@code y[j] = Σ_i x[i] · W[i, j]} for {@code j ∈ [j0, j1)}; {@code pair} is one of {@link Blockwise4bit}'s tables. */
    static void gemvColumns(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                            int nIn, int nOut, float[] x, int xOff, float[] y, int yOff, int j0, int j1) {
        Blockwise4bit.checkPairTable(pair);
        int shift = Integer.numberOfTrailingZeros(blockSize);
        int i = 0;
        if (j0 < j1 && blockSize >= 16 && nOut % blockSize == 0 && j0 % blockSize == 0 && j1 % blockSize == 0) {
            // Zeroes y[j0, j1) itself, then all rows but the last (nIn mod 8).
            i = gemvColumnsKnownTable(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff, j0, j1);
        } else {
            java.util.Arrays.fill(y, yOff + j0, yOff + Math.max(j0, j1), 0f);
        }
        tailRows(packed, scales, shift, pair, i, nIn, nOut, x, xOff, y, yOff, j0, j1);
    }

    /** Rows {@code [i, nIn)} one at a time, added into {@code y[j0, j1)}. */
    private static void tailRows(byte[] packed, BlockScales scales, int shift, float[] pair, int i, int nIn,
                                 int nOut, float[] x, int xOff, float[] y, int yOff, int j0, int j1) {
        for (; i < nIn; i++) {
            float xi = x[xOff + i];
            long rowStart = (long) i * nOut;
            axpyRange(packed, scales, shift, pair, (int) (rowStart + j0), (int) (rowStart + j1), xi,
                    y, (int) (yOff - rowStart));
        }
    }

    /**
     * Zeroes {@code y[j0, j1)}, then adds rows {@code [0, 8⌊nIn/8⌋)}, for {@link Blockwise4bit#PAIR_NF4}
     * or {@link Blockwise4bit#PAIR_FP4} and whole blocks of at least 16 codes; returns the first row
     * not done (the caller adds the last {@code nIn mod 8} rows one at a time). Each group of eight
     * rows adds its 8 products as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)).
     *
     * <p>Why it is faster on C2 (JDK 17): the table is picked here as one of two static final
     * 512-float arrays, so C2 knows its length and drops the range check of every
     * {@code t[(b & 0xFF) << 1]} and {@code t[... + 1]} (index provably in [0, 511]); and eight code
     * bytes per row come from one little-endian long load instead of eight byte loads.
     */
    private static int gemvColumnsKnownTable(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                             int nIn, int nOut, float[] x, int xOff, float[] y, int yOff,
                                             int j0, int j1) {
        // Zeroed here rather than in the caller: with the fill in this method C2 makes the loops below about 10% faster.
        java.util.Arrays.fill(y, yOff + j0, yOff + j1, 0f);
        // A phi of two constants of length 512: keep this selection in the method that runs the loops.
        final float[] t = pair == Blockwise4bit.PAIR_FP4 ? Blockwise4bit.PAIR_FP4 : Blockwise4bit.PAIR_NF4;
        int shift = Integer.numberOfTrailingZeros(blockSize);
        int bpr = nOut >>> shift;
        int half = blockSize >>> 1;
        int rb = nOut >>> 1;
        int i = 0;
        for (; i + 7 < nIn; i += 8) {
            for (int jb = j0; jb < j1; jb += blockSize) {
                int b0 = (int) (((long) i * nOut + jb) >>> shift);
                float s0 = x[xOff + i] * scales.get(b0);
                float s1 = x[xOff + i + 1] * scales.get(b0 + bpr);
                float s2 = x[xOff + i + 2] * scales.get(b0 + 2 * bpr);
                float s3 = x[xOff + i + 3] * scales.get(b0 + 3 * bpr);
                float s4 = x[xOff + i + 4] * scales.get(b0 + 4 * bpr);
                float s5 = x[xOff + i + 5] * scales.get(b0 + 5 * bpr);
                float s6 = x[xOff + i + 6] * scales.get(b0 + 6 * bpr);
                float s7 = x[xOff + i + 7] * scales.get(b0 + 7 * bpr);
                int p0 = (int) (((long) i * nOut + jb) >>> 1);
                int p1 = p0 + rb;
                int p2 = p1 + rb;
                int p3 = p2 + rb;
                int p4 = p3 + rb;
                int p5 = p4 + rb;
                int p6 = p5 + rb;
                int p7 = p6 + rb;
                int yj = yOff + jb;
                for (int k = 0; k < half; k += 8) {
                    long w0 = (long) LONGS.get(packed, p0 + k);
                    long w1 = (long) LONGS.get(packed, p1 + k);
                    long w2 = (long) LONGS.get(packed, p2 + k);
                    long w3 = (long) LONGS.get(packed, p3 + k);
                    long w4 = (long) LONGS.get(packed, p4 + k);
                    long w5 = (long) LONGS.get(packed, p5 + k);
                    long w6 = (long) LONGS.get(packed, p6 + k);
                    long w7 = (long) LONGS.get(packed, p7 + k);
                    int jj = yj + 2 * k;
                    for (int m = 0; m < 8; m++) {
                        int sh = m << 3;
                        int c0 = ((int) (w0 >>> sh) & 0xFF) << 1;
                        int c1 = ((int) (w1 >>> sh) & 0xFF) << 1;
                        int c2 = ((int) (w2 >>> sh) & 0xFF) << 1;
                        int c3 = ((int) (w3 >>> sh) & 0xFF) << 1;
                        int c4 = ((int) (w4 >>> sh) & 0xFF) << 1;
                        int c5 = ((int) (w5 >>> sh) & 0xFF) << 1;
                        int c6 = ((int) (w6 >>> sh) & 0xFF) << 1;
                        int c7 = ((int) (w7 >>> sh) & 0xFF) << 1;
                        int j = jj + 2 * m;
                        y[j] += ((t[c0] * s0 + t[c1] * s1) + (t[c2] * s2 + t[c3] * s3))
                                + ((t[c4] * s4 + t[c5] * s5) + (t[c6] * s6 + t[c7] * s7));
                        y[j + 1] += ((t[c0 + 1] * s0 + t[c1 + 1] * s1) + (t[c2 + 1] * s2 + t[c3 + 1] * s3))
                                + ((t[c4 + 1] * s4 + t[c5 + 1] * s5) + (t[c6 + 1] * s6 + t[c7 + 1] * s7));
                    }
                }
            }
        }
        return i;
    }

    /** {@code y[yBase + e] += xi · W_flat[e]} for flat indices {@code e ∈ [from, to)}. */
    private static void axpyRange(byte[] packed, BlockScales scales, int shift, float[] pair,
                                  int from, int to, float xi, float[] y, int yBase) {
        int e = from;
        while (e < to) {
            int b = e >>> shift;
            int end = (int) Math.min(to, ((long) b + 1) << shift);
            float s = xi * scales.get(b);
            if ((e & 1) != 0) {
                y[yBase + e] += pair[((packed[e >>> 1] & 0xFF) << 1) + 1] * s;
                e++;
            }
            int pairsEnd = end & ~1;
            for (; e < pairsEnd; e += 2) {
                int c = (packed[e >>> 1] & 0xFF) << 1;
                y[yBase + e] += pair[c] * s;
                y[yBase + e + 1] += pair[c + 1] * s;
            }
            if (e < end) {
                y[yBase + e] += pair[(packed[e >>> 1] & 0xFF) << 1] * s;
                e++;
            }
        }
    }

    /**
     * {@code out = W · g}, i.e. {@code g · Wᵀ} for a row vector {@code g}; {@code out} is overwritten.
     * Runs {@link NativeKernels} when it is in use and takes the shape, the scalar kernel otherwise.
     */
    public static void gemvTransposed(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                      int nIn, int nOut, float[] g, int gOff, float[] out, int outOff) {
        if (NativeKernels.gemvTransposed(packed, scales, blockSize, pair, nIn, nOut, g, gOff, out, outOff)) {
            return;
        }
        gemvTransposedScalar(packed, scales, blockSize, pair, nIn, nOut, g, gOff, out, outOff);
    }

    /** {@code out = W · g} with the scalar kernel whatever {@link NativeKernels} decided; {@code out} is overwritten. */
    public static void gemvTransposedScalar(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                            int nIn, int nOut, float[] g, int gOff, float[] out, int outOff) {
        splitRows(nIn, nOut,
                (i0, i1) -> gemvTransposedRows(packed, scales, blockSize, pair, nOut, g, gOff, out, outOff, i0, i1));
    }

    static void gemvTransposedRows(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                   int nOut, float[] g, int gOff, float[] out, int outOff, int i0, int i1) {
        int shift = Integer.numberOfTrailingZeros(blockSize);
        Blockwise4bit.checkPairTable(pair);
        int iStart = i0;
        if (blockSize >= 16 && nOut % blockSize == 0) {
            iStart = transposedRowsKnownTable(packed, scales, blockSize, pair, nOut, g, gOff, out, outOff, i0, i1);
        }
        for (int i = iStart; i < i1; i++) {
            long rowStart = (long) i * nOut;
            int e = (int) rowStart;
            int to = (int) (rowStart + nOut);
            int gBase = (int) (gOff - rowStart);
            float acc = 0f;
            while (e < to) {
                int b = e >>> shift;
                int end = (int) Math.min(to, ((long) b + 1) << shift);
                float sum0 = 0f;
                float sum1 = 0f;
                if ((e & 1) != 0) {
                    sum0 += pair[((packed[e >>> 1] & 0xFF) << 1) + 1] * g[gBase + e];
                    e++;
                }
                int pairsEnd = end & ~1;
                for (; e < pairsEnd; e += 2) {
                    int c = (packed[e >>> 1] & 0xFF) << 1;
                    sum0 += pair[c] * g[gBase + e];
                    sum1 += pair[c + 1] * g[gBase + e + 1];
                }
                if (e < end) {
                    sum0 += pair[(packed[e >>> 1] & 0xFF) << 1] * g[gBase + e];
                    e++;
                }
                acc += (sum0 + sum1) * scales.get(b);
            }
            out[outOff + i] = acc;
        }
    }

    /**
     * Rows of {@code [i0, i1)} in groups of 8, for the two static pair tables, rows made of whole
     * blocks of at least 16 codes; returns the first row not done (the caller does the last
     * {@code (i1 − i0) mod 8} rows with the one-row loop). Eight rows share each load of {@code g}
     * and give eight independent accumulation chains (the one-row loop is bound by the latency of
     * its two float adds); codes come 8 bytes per long load; the table is a static final array of
     * known length so no range checks remain. Per row and block the sum is
     * {@code Σ_k (t[hi]·g[2k] + t[lo]·g[2k+1])}, times the block scale.
     */
    private static int transposedRowsKnownTable(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                                int nOut, float[] g, int gOff, float[] out, int outOff,
                                                int i0, int i1) {
        final float[] t = pair == Blockwise4bit.PAIR_FP4 ? Blockwise4bit.PAIR_FP4 : Blockwise4bit.PAIR_NF4;
        int shift = Integer.numberOfTrailingZeros(blockSize);
        int half = blockSize >>> 1;
        int rb = nOut >>> 1;
        int bpr = nOut >>> shift;
        int i = i0;
        for (; i + 7 < i1; i += 8) {
            long rowStart = (long) i * nOut;
            int b0 = (int) (rowStart >>> shift);
            int pRow = (int) (rowStart >>> 1);
            float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, a4 = 0f, a5 = 0f, a6 = 0f, a7 = 0f;
            for (int jb = 0, blk = 0; jb < nOut; jb += blockSize, blk++) {
                int p0 = pRow + (jb >>> 1);
                int p1 = p0 + rb;
                int p2 = p1 + rb;
                int p3 = p2 + rb;
                int p4 = p3 + rb;
                int p5 = p4 + rb;
                int p6 = p5 + rb;
                int p7 = p6 + rb;
                int gj = gOff + jb;
                float e0 = 0f, e1 = 0f, e2 = 0f, e3 = 0f, e4 = 0f, e5 = 0f, e6 = 0f, e7 = 0f;
                for (int k = 0; k < half; k += 8) {
                    long w0 = (long) LONGS.get(packed, p0 + k);
                    long w1 = (long) LONGS.get(packed, p1 + k);
                    long w2 = (long) LONGS.get(packed, p2 + k);
                    long w3 = (long) LONGS.get(packed, p3 + k);
                    long w4 = (long) LONGS.get(packed, p4 + k);
                    long w5 = (long) LONGS.get(packed, p5 + k);
                    long w6 = (long) LONGS.get(packed, p6 + k);
                    long w7 = (long) LONGS.get(packed, p7 + k);
                    int gk = gj + 2 * k;
                    for (int m = 0; m < 8; m++) {
                        int sh = m << 3;
                        float ge = g[gk + 2 * m];
                        float go = g[gk + 2 * m + 1];
                        int c0 = ((int) (w0 >>> sh) & 0xFF) << 1;
                        int c1 = ((int) (w1 >>> sh) & 0xFF) << 1;
                        int c2 = ((int) (w2 >>> sh) & 0xFF) << 1;
                        int c3 = ((int) (w3 >>> sh) & 0xFF) << 1;
                        int c4 = ((int) (w4 >>> sh) & 0xFF) << 1;
                        int c5 = ((int) (w5 >>> sh) & 0xFF) << 1;
                        int c6 = ((int) (w6 >>> sh) & 0xFF) << 1;
                        int c7 = ((int) (w7 >>> sh) & 0xFF) << 1;
                        e0 += t[c0] * ge + t[c0 + 1] * go;
                        e1 += t[c1] * ge + t[c1 + 1] * go;
                        e2 += t[c2] * ge + t[c2 + 1] * go;
                        e3 += t[c3] * ge + t[c3 + 1] * go;
                        e4 += t[c4] * ge + t[c4 + 1] * go;
                        e5 += t[c5] * ge + t[c5 + 1] * go;
                        e6 += t[c6] * ge + t[c6 + 1] * go;
                        e7 += t[c7] * ge + t[c7 + 1] * go;
                    }
                }
                int b = b0 + blk;
                a0 += e0 * scales.get(b);
                a1 += e1 * scales.get(b + bpr);
                a2 += e2 * scales.get(b + 2 * bpr);
                a3 += e3 * scales.get(b + 3 * bpr);
                a4 += e4 * scales.get(b + 4 * bpr);
                a5 += e5 * scales.get(b + 5 * bpr);
                a6 += e6 * scales.get(b + 6 * bpr);
                a7 += e7 * scales.get(b + 7 * bpr);
            }
            out[outOff + i] = a0;
            out[outOff + i + 1] = a1;
            out[outOff + i + 2] = a2;
            out[outOff + i + 3] = a3;
            out[outOff + i + 4] = a4;
            out[outOff + i + 5] = a5;
            out[outOff + i + 6] = a6;
            out[outOff + i + 7] = a7;
        }
        return i;
    }
}
