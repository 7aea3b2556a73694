package org.peft4j.quant.internal;

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
 * ({@code s = x[i] · absmax[b]}) and, when rows are whole blocks, walks four rows at once so every
 * {@code y} element is loaded and stored once per four rows. The transposed kernel sums
 * {@code table[code] · g[j]} over a block and multiplies by the block scale once.
 *
 * <p>On JVMs where {@link VectorKernels} enables them, the forward product runs
 * {@link Gemv4bitVector} instead (a table permutation per vector of codes).
 *
 * <p>Work is split over the common ForkJoin pool (output columns for the forward kernel, rows for
 * the transposed one) when the matrix is large.
 *
 * <p>Thread-safety: stateless; concurrent calls are safe if they write to different outputs.
 */
public final class Gemv4bit {
    private static final long PARALLEL_WORK = 1L << 18;

    private Gemv4bit() {
    }

    /**
     * {@code y = x · W}; {@code y} is overwritten. Runs the Vector API kernel when
     * {@link VectorKernels#enabled()} and it handles the shape, the scalar kernel otherwise.
     */
    public static void gemv(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                            int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        if (!VectorKernels.gemv(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff)) {
            gemvScalar(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff);
        }
    }

    /** {@code y = x · W} with the scalar kernel whatever {@link VectorKernels} decided; {@code y} is overwritten. */
    public static void gemvScalar(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                  int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        int tasks = (long) nIn * nOut >= PARALLEL_WORK ? Math.max(1, Math.min(parallelism(), nOut / blockSize)) : 1;
        if (tasks <= 1) {
            gemvColumns(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff, 0, nOut);
            return;
        }
        // Column ranges aligned to blocks so each task sees whole block columns.
        int blockCols = (int) (((long) nOut + blockSize - 1) / blockSize);
        IntStream.range(0, tasks).parallel().forEach(t -> {
            int j0 = Math.min(nOut, (int) ((long) blockCols * t / tasks) * blockSize);
            int j1 = Math.min(nOut, (int) ((long) blockCols * (t + 1) / tasks) * blockSize);
            gemvColumns(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff, j0, j1);
        });
    }

    private static int parallelism() {
        return Math.max(1, Runtime.getRuntime().availableProcessors());
    }

    /** {@code y[j] = Σ_i x[i] · W[i, j]} for {@code j ∈ [j0, j1)}. */
    static void gemvColumns(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                            int nIn, int nOut, float[] x, int xOff, float[] y, int yOff, int j0, int j1) {
        java.util.Arrays.fill(y, yOff + j0, yOff + j1, 0f);
        if (j0 >= j1) {
            return;
        }
        int shift = Integer.numberOfTrailingZeros(blockSize);
        int i = 0;
        if (nOut % blockSize == 0 && j0 % blockSize == 0 && j1 % blockSize == 0) {
            int blocksPerRow = nOut >>> shift;
            int half = blockSize >>> 1;
            int rowBytes = nOut >>> 1;
            for (; i + 3 < nIn; i += 4) {
                float x0 = x[xOff + i];
                float x1 = x[xOff + i + 1];
                float x2 = x[xOff + i + 2];
                float x3 = x[xOff + i + 3];
                for (int jb = j0; jb < j1; jb += blockSize) {
                    int b0 = (int) (((long) i * nOut + jb) >>> shift);
                    float s0 = x0 * scales.get(b0);
                    float s1 = x1 * scales.get(b0 + blocksPerRow);
                    float s2 = x2 * scales.get(b0 + 2 * blocksPerRow);
                    float s3 = x3 * scales.get(b0 + 3 * blocksPerRow);
                    int p0 = (int) (((long) i * nOut + jb) >>> 1);
                    int p1 = p0 + rowBytes;
                    int p2 = p1 + rowBytes;
                    int p3 = p2 + rowBytes;
                    int yj = yOff + jb;
                    for (int k = 0; k < half; k++) {
                        int c0 = (packed[p0 + k] & 0xFF) << 1;
                        int c1 = (packed[p1 + k] & 0xFF) << 1;
                        int c2 = (packed[p2 + k] & 0xFF) << 1;
                        int c3 = (packed[p3 + k] & 0xFF) << 1;
                        int j = yj + 2 * k;
                        y[j] += pair[c0] * s0 + pair[c1] * s1 + pair[c2] * s2 + pair[c3] * s3;
                        y[j + 1] += pair[c0 + 1] * s0 + pair[c1 + 1] * s1 + pair[c2 + 1] * s2 + pair[c3 + 1] * s3;
                    }
                }
            }
        }
        for (; i < nIn; i++) {
            float xi = x[xOff + i];
            long rowStart = (long) i * nOut;
            axpyRange(packed, scales, shift, pair, (int) (rowStart + j0), (int) (rowStart + j1), xi,
                    y, (int) (yOff - rowStart));
        }
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

    /** {@code out = W · g}, i.e. {@code g · Wᵀ} for a row vector {@code g}; {@code out} is overwritten. */
    public static void gemvTransposed(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                      int nIn, int nOut, float[] g, int gOff, float[] out, int outOff) {
        int tasks = (long) nIn * nOut >= PARALLEL_WORK ? Math.max(1, Math.min(parallelism(), nIn)) : 1;
        if (tasks <= 1) {
            gemvTransposedRows(packed, scales, blockSize, pair, nOut, g, gOff, out, outOff, 0, nIn);
            return;
        }
        IntStream.range(0, tasks).parallel().forEach(t -> {
            int i0 = (int) ((long) nIn * t / tasks);
            int i1 = (int) ((long) nIn * (t + 1) / tasks);
            gemvTransposedRows(packed, scales, blockSize, pair, nOut, g, gOff, out, outOff, i0, i1);
        });
    }

    static void gemvTransposedRows(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                   int nOut, float[] g, int gOff, float[] out, int outOff, int i0, int i1) {
        int shift = Integer.numberOfTrailingZeros(blockSize);
        for (int i = i0; i < i1; i++) {
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
}
