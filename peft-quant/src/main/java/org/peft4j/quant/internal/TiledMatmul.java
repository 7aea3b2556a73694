package org.peft4j.quant.internal;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicInteger;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Batched products with a 4-bit matrix {@code W [nIn, nOut]} that never materialise the whole
 * float matrix: a panel {@code W[r0:r0+rows, c0:c0+cols]} of about {@value #TILE_FLOATS} floats is
 * dequantized into one reusable float tile at a time, and BLAS multiplies with it, each product
 * running over a slice of the summed dimension (at batch 64 OpenBLAS runs these slices at least as
 * fast as one product over the whole matrix):
 * <ul>
 *   <li>{@link #mmul}: {@code y = x · W} over row panels {@code W[i0:i0+kt, :]},
 *       {@code y += x[:, i0:i0+kt] · W[i0:i0+kt, :]} ({@code x [batch, nIn]}, {@code y [batch, nOut]});</li>
 *   <li>{@link #mmulTransposed}: {@code out = g · Wᵀ} over panels of {@value #PANEL_COLUMNS}
 *       columns, {@code out[:, i0:i0+kt] += g[:, j0:j0+kc] · W[i0:i0+kt, j0:j0+kc]ᵀ}
 *       ({@code g [batch, nOut]}, {@code out [batch, nIn]}).</li>
 * </ul>
 * ND4J has no 4-bit GEMM, and a hand-written Java GEMM would not approach its BLAS; so only the
 * dequantization is ours and the flops stay in BLAS. The tile is small enough (1 MiB) to stay in
 * the L2 cache between the fill and the product; a tile larger than L2 makes the fill bound by
 * writing it to memory.
 *
 * <p>On ND4J's CPU backend the products call OpenBLAS directly ({@link HostSgemm}), with leading
 * dimensions for the slices of {@code x}, {@code g} and the output; elsewhere they go through
 * {@code Nd4j.gemm}. Panels whose columns are whole quantization blocks are filled by the native
 * kernel ({@link NativeKernels}, one AVX-512 table lookup per 16 weights) straight into the tile's
 * host memory. Other panels, and platforms without the native library, are filled from the packed
 * codes through a small heap chunk and a bulk copy into the off-heap tile, by the calling thread and
 * one pool task taking chunks from a shared counter. Not a fixed split: after each product
 * OpenBLAS's worker thread keeps spinning on the other core for a while, so a thread there runs
 * slowly, and with two equal halves the fill would take as long as on one thread; with a shared
 * counter the faster thread takes more chunks. The fill does not overlap the product (tile
 * {@code t + 1} filled while BLAS multiplies tile {@code t}): BLAS splits its work evenly over all
 * cores and would wait for the one the fill slows down.
 *
 * <p>Batches of at most {@value NativeKernels#FUSED_MAX_BATCH} rows skip the tiles where the
 * native AVX-512 kernels run: {@link NativeKernels#gemmTransposed} and
 * {@link NativeKernels#mmulFused} dequantize a few rows at a time into L1 and multiply them
 * themselves, each core its own part (for {@code g · Wᵀ} at batch 64, 4096² on two cores: 7.3 ms,
 * against 15.8 ms for tiles and BLAS and 10.0 ms for BLAS on the float matrix), because with few
 * rows the tiles' traffic between the fill and BLAS's threads costs more than the flops.
 *
 * <p>Peak extra memory is one tile. The scratch tile lives outside any workspace; the result is
 * created in the caller's current workspace, like any ND4J op output.
 *
 * <p>Thread-safety: stateless; each call allocates its own tile.
 */
public final class TiledMatmul {
    /** Floats per dequantized tile (1 MiB): inside L2, large enough for BLAS to run at full speed. */
    static final int TILE_FLOATS = 1 << 18;
    /** Batches up to this size use forward tiles of at most {@value #SMALL_BATCH_ROWS} rows. */
    static final int SMALL_BATCH = 64;
    static final int SMALL_BATCH_ROWS = 128;
    /** Weights at least this wide use the small-batch tiles. */
    static final int WIDE = 1024;
    /** Columns of the panels of the transposed product (their rows fill the tile). */
    static final int PANEL_COLUMNS = 512;
    /** Floats per heap chunk of the fill (64 KiB, well inside L2). */
    private static final int CHUNK = 1 << 14;

    private TiledMatmul() {
    }

    /** {@code y = x · W}, {@code x [batch, nIn]} float32 → new {@code y [batch, nOut]} float32 (C order). */
    public static INDArray mmul(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                int nIn, int nOut) {
        return mmul(x, packed, scales, blockSize, pair, nIn, nOut, HostSgemm.available());
    }

    /**
     * Rows of {@code W} per tile of {@link #mmulInto}: as many as {@value #TILE_FLOATS} floats
     * hold, but at most {@value #SMALL_BATCH_ROWS} when the batch has at most
     * {@value #SMALL_BATCH} rows and {@code W} is at least {@value #WIDE} columns wide. With few
     * rows of {@code x}, BLAS's time goes into packing the wide tile, which then stays in L2.
     * Measured with OpenBLAS on 2 MiB of L2 (one thread / two): {@code [32, 1024] · [1024, 1024]}
     * in slices of 128 rows 0.70 / 0.47 ms, of 256 rows 0.82 / 0.45 ms; {@code [64, 384] ·
     * [384, 1536]} 0.62 / 0.32 ms against 0.68 / 0.33 ms in the full tile's 170 rows. A narrow
     * {@code [1536, 384]} was slower in 128-row slices at two threads (0.44 against 0.39 ms), and
     * so are larger batches: they keep the full tile.
     */
    static int forwardRows(int batch, int nIn, int nOut) {
        int rows = Math.max(1, Math.min(nIn, TILE_FLOATS / Math.max(1, nOut)));
        return batch <= SMALL_BATCH && nOut >= WIDE ? Math.min(rows, SMALL_BATCH_ROWS) : rows;
    }

    /** Whether {@link #mmulInto} may write {@code y} through {@link HostSgemm} (else it uses {@code Nd4j.gemm}). */
    public static boolean direct(INDArray y) {
        return HostSgemm.available() && HostSgemm.isPlain(y);
    }

    /** {@link #mmul} with the choice between {@link HostSgemm} and {@code Nd4j.gemm} made by the caller. */
    static INDArray mmul(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                         int nIn, int nOut, boolean direct) {
        return mmul(x, packed, scales, blockSize, pair, nIn, nOut, direct, direct);
    }

    /** {@link #mmul} with the fused kernel allowed or not (tests run the tiles with it off). */
    static INDArray mmul(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                         int nIn, int nOut, boolean direct, boolean fused) {
        INDArray y = Nd4j.createUninitialized(DataType.FLOAT, x.size(0), nOut);
        mmulInto(x, packed, scales, blockSize, pair, nIn, nOut, y, direct, fused);
        return y;
    }

    /**
     * {@code y = x · W} written into {@code y [batch, nOut]}: float32 and, when {@code direct},
     * {@link HostSgemm#isPlain plain}. {@code x [batch, nIn]} float32; a plain {@code 'c'} or
     * {@code 'f'} {@code x} is read in place (the {@code 'f'} one as a transposed operand), any
     * other is copied first. The first tile overwrites {@code y}, the others accumulate.
     */
    public static void mmulInto(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                int nIn, int nOut, INDArray y, boolean direct) {
        mmulInto(x, packed, scales, blockSize, pair, nIn, nOut, y, direct, direct);
    }

    /**
     * {@link #mmulInto} that, when {@code fused} (which needs {@code direct}: host memory), lets a
     * batch of at most {@value NativeKernels#FUSED_MAX_BATCH} rows go through
     * {@link NativeKernels#mmulFused} instead of tiles and BLAS.
     */
    static void mmulInto(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                         int nIn, int nOut, INDArray y, boolean direct, boolean fused) {
        mmulInto(x, packed, scales, blockSize, pair, nIn, nOut, y, direct, fused, false);
    }

    /**
     * Whether {@link #mmulOnto} takes {@code x} and {@code y}: float32 arrays, {@code y}
     * {@link HostSgemm#isPlain plain} on the CPU backend, and more than
     * {@value NativeKernels#FUSED_MAX_BATCH} rows (the tiles' products, which BLAS can accumulate;
     * the fused kernels for fewer rows overwrite their output).
     */
    public static boolean accumulates(INDArray x, INDArray y) {
        return x.rank() == 2 && x.dataType() == DataType.FLOAT && x.size(0) > NativeKernels.FUSED_MAX_BATCH
                && direct(y);
    }

    /**
     * {@code y += x · W} for arrays that {@link #accumulates} takes: {@link #mmulInto} with the first
     * tile's product added onto {@code y} instead of overwriting it. A layer that has written its
     * bias into the rows of {@code y} gets {@code x·W + b} without the pass over {@code y} that
     * adding the bias afterwards costs, and BLAS does not first zero {@code y} (it does for a
     * product that overwrites).
     *
     * @throws IllegalArgumentException if {@link #accumulates} does not take the arrays
     */
    public static void mmulOnto(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                int nIn, int nOut, INDArray y) {
        if (!accumulates(x, y)) {
            throw new IllegalArgumentException("accumulating product needs float32 x [batch > "
                    + NativeKernels.FUSED_MAX_BATCH + ", " + nIn + "] and a plain float32 C-order host y; got x "
                    + Arrays.toString(x.shape()) + " " + x.dataType() + ", y "
                    + Arrays.toString(y.shape()) + " " + y.dataType() + " " + y.ordering());
        }
        mmulInto(x, packed, scales, blockSize, pair, nIn, nOut, y, true, false, true);
    }

    /** {@link #mmulInto}; with {@code accumulate} the first tile adds onto {@code y} as the others do. */
    private static void mmulInto(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                 int nIn, int nOut, INDArray y, boolean direct, boolean fused, boolean accumulate) {
        int batch = Math.toIntExact(x.size(0));
        boolean byColumns = direct && HostSgemm.isPlainF(x);
        INDArray a = direct && !byColumns && !HostSgemm.isPlain(x) ? x.dup('c') : x;
        if (fused && direct && NativeKernels.mmulFused(packed, scales, blockSize, pair, nIn, nOut, a, y)) {
            return;
        }
        int rowsPerPanel = forwardRows(batch, nIn, nOut);
        forEachPanel(packed, scales, blockSize, pair, nIn, nOut, rowsPerPanel, nOut, (w, i0, rows, c0, cols) -> {
            float beta = i0 == 0 && !accumulate ? 0f : 1f;
            if (byColumns) {
                // x 'f' is the row-major [nIn, batch] matrix xᵀ: its rows i0.. are the columns i0.. of x
                HostSgemm.sgemm(true, false, batch, nOut, rows, a, (long) i0 * batch, batch, w, 0, nOut, beta, y, 0, nOut);
            } else if (direct) {
                HostSgemm.sgemm(false, batch, nOut, rows, a, i0, nIn, w, nOut, beta, y, 0, nOut);
            } else {
                INDArray xs = a.get(NDArrayIndex.all(), NDArrayIndex.interval(i0, i0 + rows));
                Nd4j.gemm(xs, w, y, false, false, 1.0, beta);
            }
        });
    }

    /** {@code out = g · Wᵀ}, {@code g [batch, nOut]} float32 → new {@code out [batch, nIn]} float32 (C order). */
    public static INDArray mmulTransposed(INDArray g, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                          int nIn, int nOut) {
        return mmulTransposed(g, packed, scales, blockSize, pair, nIn, nOut, HostSgemm.available());
    }

    /**
     * {@link #mmulTransposed} with the choice between {@link HostSgemm} and {@code Nd4j.gemm} made by
     * the caller. A plain {@code 'c'} or {@code 'f'} {@code g} is read in place.
     */
    static INDArray mmulTransposed(INDArray g, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                   int nIn, int nOut, boolean direct) {
        return mmulTransposed(g, packed, scales, blockSize, pair, nIn, nOut, direct, direct);
    }

    /** {@link #mmulTransposed} with the fused kernel allowed or not (tests run the tiles with it off). */
    static INDArray mmulTransposed(INDArray g, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                   int nIn, int nOut, boolean direct, boolean fused) {
        INDArray out = Nd4j.createUninitialized(DataType.FLOAT, g.size(0), nIn);
        mmulTransposedInto(g, packed, scales, blockSize, pair, nIn, nOut, out, direct, fused);
        return out;
    }

    /** Whether {@link #mmulTransposedInto} may write {@code out} through {@link HostSgemm}. */
    public static boolean directTransposed(INDArray out) {
        return HostSgemm.available() && (HostSgemm.isPlain(out) || HostSgemm.isPlainF(out));
    }

    /**
     * {@code out = g · Wᵀ} written into {@code out [batch, nIn]}: float32 and, when {@code direct},
     * {@link HostSgemm#isPlain plain} in {@code 'c'} or {@code 'f'} order (an {@code 'f'} output,
     * the order of DL4J's epsilons, is written as the row-major {@code outᵀ = W · gᵀ}, so it needs
     * no transposing copy). A plain {@code 'c'} or {@code 'f'} {@code g [batch, nOut]} is read in
     * place, any other is copied first.
     */
    public static void mmulTransposedInto(INDArray g, byte[] packed, BlockScales scales, int blockSize,
                                          float[] pair, int nIn, int nOut, INDArray out, boolean direct) {
        mmulTransposedInto(g, packed, scales, blockSize, pair, nIn, nOut, out, direct, direct);
    }

    /**
     * {@link #mmulTransposedInto} that, when {@code fused} (which needs {@code direct}: host
     * memory), lets a batch of at most {@value NativeKernels#FUSED_MAX_BATCH} rows go through
     * {@link NativeKernels#gemmTransposed} instead of tiles and BLAS.
     */
    static void mmulTransposedInto(INDArray g, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                   int nIn, int nOut, INDArray out, boolean direct, boolean fused) {
        int batch = Math.toIntExact(g.size(0));
        boolean gByColumns = direct && HostSgemm.isPlainF(g);
        INDArray a = direct && !gByColumns && !HostSgemm.isPlain(g) ? g.dup('c') : g;
        if (fused && direct && NativeKernels.gemmTransposed(packed, scales, blockSize, pair, nIn, nOut, a, out)) {
            return;
        }
        boolean outByColumns = direct && HostSgemm.isPlainF(out);
        // g[:, j0:j0+cols] as a row-major operand: g 'c' from column j0 (ld nOut), g 'f' (the
        // row-major gᵀ) from row j0 (ld batch, read transposed)
        int ldg = gByColumns ? batch : nOut;
        int colsPerPanel = panelColumns(nOut, blockSize);
        int rowsPerPanel = Math.max(1, Math.min(nIn, TILE_FLOATS / colsPerPanel));
        forEachPanel(packed, scales, blockSize, pair, nIn, nOut, rowsPerPanel, colsPerPanel, (w, i0, rows, j0, cols) -> {
            float beta = j0 == 0 ? 0f : 1f;
            long gOff = gByColumns ? (long) j0 * batch : j0;
            if (outByColumns) {
                // outᵀ[i0:i0+rows, :] (+)= W[i0:i0+rows, j0:j0+cols] · g[:, j0:j0+cols]ᵀ
                HostSgemm.sgemm(false, !gByColumns, rows, batch, cols, w, 0, cols, a, gOff, ldg, beta, out,
                        (long) i0 * batch, batch);
            } else if (direct) {
                // out[:, i0:i0+rows] (+)= g[:, j0:j0+cols] · W[i0:i0+rows, j0:j0+cols]ᵀ
                HostSgemm.sgemm(gByColumns, true, batch, rows, cols, a, gOff, ldg, w, 0, cols, beta, out, i0, nIn);
            } else {
                INDArray part = Nd4j.gemm(a.get(NDArrayIndex.all(), NDArrayIndex.interval(j0, j0 + cols)), w, false,
                        true);
                INDArray target = out.get(NDArrayIndex.all(), NDArrayIndex.interval(i0, i0 + rows));
                if (j0 == 0) {
                    target.assign(part);
                } else {
                    target.addi(part);
                }
            }
        });
    }

    /**
     * One product with the panel {@code W[r0:r0+rows, c0:c0+cols]} of the dequantized weight,
     * given as a plain {@code 'c'} matrix {@code panel [rows, cols]}.
     */
    @FunctionalInterface
    private interface PanelProduct {
        void multiply(INDArray panel, int r0, int rows, int c0, int cols);
    }

    /**
     * Dequantizes W panel by panel, {@code W[r0:r0+rowsPerPanel, c0:c0+colsPerPanel]} with the
     * column panels inner, into one reusable float tile and hands each panel to {@code product}.
     * Panels whose columns are whole blocks are filled by the native kernel where it runs.
     */
    private static void forEachPanel(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                     int nIn, int nOut, int rowsPerPanel, int colsPerPanel, PanelProduct product) {
        INDArray tile = detachedTile(rowsPerPanel, colsPerPanel);
        float[] chunk = new float[CHUNK];
        try {
            for (int r0 = 0; r0 < nIn; r0 += rowsPerPanel) {
                int rows = Math.min(rowsPerPanel, nIn - r0);
                for (int c0 = 0; c0 < nOut; c0 += colsPerPanel) {
                    int cols = Math.min(colsPerPanel, nOut - c0);
                    INDArray panel = rows == rowsPerPanel && cols == colsPerPanel ? tile : prefix(tile, rows, cols);
                    if (!NativeKernels.dequantizeInto(packed, scales, blockSize, pair, nIn, nOut, r0, rows, c0, cols,
                            panel)) {
                        new TileFill(packed, scales, blockSize, pair, nOut, r0, rows, c0, cols, panel).run(chunk);
                    }
                    product.multiply(panel, r0, rows, c0, cols);
                }
            }
        } finally {
            tile.close();
        }
    }

    /**
     * Columns of the panels of {@link #mmulTransposedInto}: at most {@value #PANEL_COLUMNS}, a
     * multiple of the block size where {@code nOut} is made of whole blocks (so the native kernel
     * fills them).
     */
    private static int panelColumns(int nOut, int blockSize) {
        int kc = Math.min(nOut, PANEL_COLUMNS);
        if (kc < nOut && blockSize > 0 && nOut % blockSize == 0) {
            kc = Math.max(blockSize, kc / blockSize * blockSize);
        }
        return kc;
    }

    private static INDArray detachedTile(int rows, int cols) {
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            return Nd4j.createUninitializedDetached(DataType.FLOAT, 'c', rows, cols);
        }
    }

    /** The first {@code rows · cols} elements of {@code tile} as a plain {@code 'c'} matrix [rows, cols]. */
    private static INDArray prefix(INDArray tile, int rows, int cols) {
        return tile.reshape('c', new long[] {tile.length()}).get(NDArrayIndex.interval(0, (long) rows * cols))
                .reshape('c', new long[] {rows, cols});
    }

    /**
     * Dequantizes the rectangle {@code W[r0:r0+rows, c0:c0+cols]} into the first
     * {@code rows · cols} elements of a tile (row-major), chunk by chunk through a heap buffer. The
     * calling thread and one task of the common pool take chunks from a shared counter until none
     * is left, so a thread slowed by a busy core simply does fewer of them, and if the pool task
     * never gets a thread the caller does all.
     */
    private static final class TileFill {
        private final byte[] packed;
        private final BlockScales scales;
        private final int blockSize;
        private final float[] pair;
        private final int nOut;
        private final int r0;
        private final int c0;
        private final int cols;
        private final int count;
        private final int chunks;
        private final FloatBuffer dst;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger finished = new AtomicInteger();
        private volatile Throwable failure;

        TileFill(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nOut, int r0, int rows, int c0,
                 int cols, INDArray tile) {
            this.packed = packed;
            this.scales = scales;
            this.blockSize = blockSize;
            this.pair = pair;
            this.nOut = nOut;
            this.r0 = r0;
            this.c0 = c0;
            this.cols = cols;
            this.count = Math.toIntExact((long) rows * cols);
            this.chunks = (count + CHUNK - 1) / CHUNK;
            this.dst = tile.data().asNioFloat();
        }

        /**
         * Fills the tile: a pool task (when there is more than one chunk) and the calling thread
         * take chunks until none is left; returns when every chunk taken has been written. A pool
         * task that starts later finds nothing to take and never touches the tile.
         *
         * @throws IllegalStateException if dequantizing a chunk failed
         */
        void run(float[] buf) {
            if (chunks > 1) {
                ForkJoinPool.commonPool().execute(() -> work(null));
            }
            work(buf);
            while (finished.get() < chunks) {
                Thread.onSpinWait();
            }
            if (failure != null) {
                throw new IllegalStateException("dequantizing a tile failed", failure);
            }
        }

        private void work(float[] buf) {
            FloatBuffer view = null;
            for (int c = next.getAndIncrement(); c < chunks; c = next.getAndIncrement()) {
                try {
                    if (view == null) {
                        view = dst.duplicate();
                        buf = buf == null ? new float[CHUNK] : buf;
                    }
                    int start = c * CHUNK;
                    int len = Math.min(CHUNK, count - start);
                    // the chunk's elements, row segment by row segment of the rectangle
                    for (int e = start; e < start + len; ) {
                        int row = e / cols;
                        int col = e - row * cols;
                        int seg = Math.min(start + len - e, cols - col);
                        int from = (int) ((long) (r0 + row) * nOut + c0 + col);
                        Blockwise4bit.dequantize(packed, scales, blockSize, pair, from, from + seg, buf, e - start);
                        e += seg;
                    }
                    view.put(start, buf, 0, len);
                } catch (Throwable t) {
                    failure = t;
                } finally {
                    finished.incrementAndGet();
                }
            }
        }
    }
}
