package org.peft4j.quant.internal;

import java.nio.FloatBuffer;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicInteger;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Batched products with a 4-bit matrix {@code W [nIn, nOut]} that never materialise the whole
 * float matrix: rows {@code [i0, i0 + kt)} of {@code W} are dequantized into one reusable float
 * tile of about {@value #TILE_FLOATS} floats, and BLAS multiplies with it:
 * <ul>
 *   <li>{@link #mmul}: {@code y = x · W}, accumulated tile by tile,
 *       {@code y += x[:, i0:i0+kt] · W[i0:i0+kt, :]} ({@code x [batch, nIn]}, {@code y [batch, nOut]});</li>
 *   <li>{@link #mmulTransposed}: {@code out = g · Wᵀ}, one column slice of the output per tile,
 *       {@code out[:, i0:i0+kt] = g · W[i0:i0+kt, :]ᵀ} ({@code g [batch, nOut]},
 *       {@code out [batch, nIn]}).</li>
 * </ul>
 * ND4J has no 4-bit GEMM, and a hand-written Java GEMM would not approach its BLAS; so only the
 * dequantization is ours and the flops stay in BLAS. Row tiles are contiguous runs of the packed
 * codes, so the dequantizer streams through memory.
 *
 * <p>On ND4J's CPU backend the products call OpenBLAS directly ({@link HostSgemm}), with leading
 * dimensions for the slices of {@code x} and of the output; elsewhere they go through
 * {@code Nd4j.gemm}. Each tile is filled from the packed codes through a small heap chunk and a
 * bulk copy into the off-heap tile, by the calling thread and one pool task taking chunks from a
 * shared counter. Not a fixed split: after each product OpenBLAS's worker thread keeps spinning on
 * the other core for a while, so a thread there runs slowly, and with two equal halves the fill
 * would take as long as on one thread; with a shared counter the faster thread takes more chunks.
 * The fill does not overlap the product (tile {@code t + 1} filled while BLAS multiplies tile
 * {@code t}): BLAS splits its work evenly over all cores and would wait for the one the fill
 * slows down.
 *
 * <p>Peak extra memory is one tile. The scratch tile lives outside any workspace; the result is
 * created in the caller's current workspace, like any ND4J op output.
 *
 * <p>Thread-safety: stateless; each call allocates its own tile.
 */
public final class TiledMatmul {
    /** Floats per dequantized tile (4 MiB): big enough for BLAS efficiency, small enough for L3. */
    static final int TILE_FLOATS = 1 << 20;
    /** Floats per heap chunk of the fill (64 KiB, well inside L2). */
    private static final int CHUNK = 1 << 14;

    private TiledMatmul() {
    }

    /** {@code y = x · W}, {@code x [batch, nIn]} float32 → new {@code y [batch, nOut]} float32 (C order). */
    public static INDArray mmul(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                int nIn, int nOut) {
        return mmul(x, packed, scales, blockSize, pair, nIn, nOut, HostSgemm.available());
    }

    /** Whether {@link #mmulInto} may write {@code y} through {@link HostSgemm} (else it uses {@code Nd4j.gemm}). */
    public static boolean direct(INDArray y) {
        return HostSgemm.available() && HostSgemm.isPlain(y);
    }

    /** {@link #mmul} with the choice between {@link HostSgemm} and {@code Nd4j.gemm} made by the caller. */
    static INDArray mmul(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                         int nIn, int nOut, boolean direct) {
        INDArray y = Nd4j.createUninitialized(DataType.FLOAT, x.size(0), nOut);
        mmulInto(x, packed, scales, blockSize, pair, nIn, nOut, y, direct);
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
        int batch = Math.toIntExact(x.size(0));
        boolean byColumns = direct && HostSgemm.isPlainF(x);
        INDArray a = direct && !byColumns && !HostSgemm.isPlain(x) ? x.dup('c') : x;
        forEachTile(packed, scales, blockSize, pair, nIn, nOut, (w, i0, rows) -> {
            float beta = i0 == 0 ? 0f : 1f;
            if (byColumns) {
                // x 'f' is the row-major [nIn, batch] matrix xᵀ: its rows i0.. are the columns i0.. of x
                HostSgemm.sgemm(true, false, batch, nOut, rows, a, (long) i0 * batch, batch, w, nOut, beta, y, 0, nOut);
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
        INDArray out = Nd4j.createUninitialized(DataType.FLOAT, g.size(0), nIn);
        mmulTransposedInto(g, packed, scales, blockSize, pair, nIn, nOut, out, direct);
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
        int batch = Math.toIntExact(g.size(0));
        boolean gByColumns = direct && HostSgemm.isPlainF(g);
        INDArray a = direct && !gByColumns && !HostSgemm.isPlain(g) ? g.dup('c') : g;
        boolean outByColumns = direct && HostSgemm.isPlainF(out);
        forEachTile(packed, scales, blockSize, pair, nIn, nOut, (w, i0, rows) -> {
            if (outByColumns) {
                // outᵀ[i0:i0+rows, :] = W_tile [rows, nOut] · gᵀ [nOut, batch]
                HostSgemm.sgemm(false, !gByColumns, rows, batch, nOut, w, 0, nOut, a, gByColumns ? batch : nOut, 0f,
                        out, (long) i0 * batch, batch);
            } else if (direct) {
                HostSgemm.sgemm(gByColumns, true, batch, rows, nOut, a, 0, gByColumns ? batch : nOut, w, nOut, 0f,
                        out, i0, nIn);
            } else {
                INDArray part = Nd4j.gemm(a, w, false, true);
                out.get(NDArrayIndex.all(), NDArrayIndex.interval(i0, i0 + rows)).assign(part);
            }
        });
    }

    /** One product with the dequantized rows {@code [i0, i0 + rows)} of W, given as {@code tile [rows, nOut]}. */
    @FunctionalInterface
    private interface TileProduct {
        void multiply(INDArray tile, int i0, int rows);
    }

    /** Dequantizes W tile by tile into one reusable tile and hands each tile to {@code product}. */
    private static void forEachTile(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                    int nIn, int nOut, TileProduct product) {
        int kt = tileRows(nIn, nOut);
        INDArray tile = detachedTile(kt, nOut);
        float[] chunk = new float[CHUNK];
        try {
            for (int i0 = 0; i0 < nIn; i0 += kt) {
                int rows = Math.min(kt, nIn - i0);
                new TileFill(packed, scales, blockSize, pair, i0, rows, nOut, tile).run(chunk);
                product.multiply(rows == kt ? tile : tile.get(NDArrayIndex.interval(0, rows), NDArrayIndex.all()),
                        i0, rows);
            }
        } finally {
            tile.close();
        }
    }

    private static int tileRows(int nIn, int nOut) {
        return Math.max(1, Math.min(nIn, TILE_FLOATS / Math.max(1, nOut)));
    }

    private static INDArray detachedTile(int rows, int cols) {
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            return Nd4j.createUninitializedDetached(DataType.FLOAT, 'c', rows, cols);
        }
    }

    /**
     * Dequantizes rows {@code [i0, i0 + rows)} of W into the first {@code rows} rows of a tile,
     * chunk by chunk through a heap buffer. The calling thread and one task of the common pool
     * take chunks from a shared counter until none is left, so a thread slowed by a busy core
     * simply does fewer of them, and if the pool task never gets a thread the caller does all.
     */
    private static final class TileFill {
        private final byte[] packed;
        private final BlockScales scales;
        private final int blockSize;
        private final float[] pair;
        private final int from;
        private final int count;
        private final int chunks;
        private final FloatBuffer dst;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger finished = new AtomicInteger();
        private volatile Throwable failure;

        TileFill(byte[] packed, BlockScales scales, int blockSize, float[] pair, int i0, int rows, int nOut,
                 INDArray tile) {
            this.packed = packed;
            this.scales = scales;
            this.blockSize = blockSize;
            this.pair = pair;
            this.from = (int) ((long) i0 * nOut);
            this.count = (int) ((long) rows * nOut);
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
                    Blockwise4bit.dequantize(packed, scales, blockSize, pair, from + start, from + start + len, buf, 0);
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
