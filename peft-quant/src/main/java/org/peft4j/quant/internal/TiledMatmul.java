package org.peft4j.quant.internal;

import java.nio.FloatBuffer;
import java.util.stream.IntStream;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Batched products with a 4-bit matrix {@code W [nIn, nOut]} that never materialise the whole
 * float matrix: rows {@code [i0, i0 + kt)} of {@code W} are dequantized into one reusable float
 * tile of about {@value #TILE_FLOATS} floats, and ND4J's GEMM multiplies with it:
 * <ul>
 *   <li>{@link #mmul}: {@code y = x · W}, accumulated tile by tile,
 *       {@code y += x[:, i0:i0+kt] · W[i0:i0+kt, :]} ({@code x [batch, nIn]}, {@code y [batch, nOut]});</li>
 *   <li>{@link #mmulTransposed}: {@code out = g · Wᵀ} over column tiles,
 *       {@code out += g[:, j0:j0+nt] · W[:, j0:j0+nt]ᵀ} ({@code g [batch, nOut]},
 *       {@code out [batch, nIn]}). Tiling by columns gives every GEMM the same shape as the forward
 *       ({@code [batch, ~256] · [~256, n]}), which BLAS runs about 1.5× faster than the row-tiled
 *       {@code W[i0:i0+kt, :] · gᵀ} with its long inner dimension and narrow output (measured at
 *       4096², batch 64).</li>
 * </ul>
 * ND4J has no 4-bit GEMM, and a hand-written Java GEMM would not approach its BLAS; so only the
 * dequantization is ours (parallel, from the packed codes into a small heap buffer and then one
 * bulk copy into the off-heap tile), and the flops stay in BLAS. Peak extra memory is one tile.
 *
 * <p>The scratch tile lives outside any workspace; the result is created in the caller's current
 * workspace, like any ND4J op output.
 *
 * <p>Thread-safety: stateless; each call allocates its own tile.
 */
public final class TiledMatmul {
    /** Floats per dequantized tile (4 MiB): big enough for BLAS efficiency, small enough for L3. */
    static final int TILE_FLOATS = 1 << 20;
    private static final int CHUNK = 1 << 14;

    private TiledMatmul() {
    }

    private static int tileRows(int nIn, int nOut) {
        return Math.max(1, Math.min(nIn, TILE_FLOATS / Math.max(1, nOut)));
    }

    /** {@code y = x · W}, {@code x [batch, nIn]} float32 → new {@code y [batch, nOut]} float32 (C order). */
    public static INDArray mmul(INDArray x, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                int nIn, int nOut) {
        long batch = x.size(0);
        INDArray y = Nd4j.zeros(DataType.FLOAT, batch, nOut);
        int kt = tileRows(nIn, nOut);
        INDArray tile;
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            tile = Nd4j.createUninitializedDetached(DataType.FLOAT, 'c', kt, nOut);
        }
        for (int i0 = 0; i0 < nIn; i0 += kt) {
            int rows = Math.min(kt, nIn - i0);
            fillTile(packed, scales, blockSize, pair, i0, rows, nOut, tile);
            INDArray w = rows == kt ? tile : tile.get(NDArrayIndex.interval(0, rows), NDArrayIndex.all());
            INDArray xs = x.get(NDArrayIndex.all(), NDArrayIndex.interval(i0, i0 + rows));
            Nd4j.gemm(xs, w, y, false, false, 1.0, 1.0);
        }
        tile.close();
        return y;
    }

    /** {@code out = g · Wᵀ}, {@code g [batch, nOut]} float32 → new {@code out [batch, nIn]} float32 (C order). */
    public static INDArray mmulTransposed(INDArray g, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                          int nIn, int nOut) {
        long batch = g.size(0);
        INDArray out = Nd4j.zeros(DataType.FLOAT, batch, nIn);
        int nt = Math.max(1, Math.min(nOut, TILE_FLOATS / Math.max(1, nIn)));
        INDArray tile;
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            tile = Nd4j.createUninitializedDetached(DataType.FLOAT, 'c', nIn, nt);
        }
        for (int j0 = 0; j0 < nOut; j0 += nt) {
            int cols = Math.min(nt, nOut - j0);
            fillColumns(packed, scales, blockSize, pair, j0, cols, nIn, nOut, tile);
            // The last, narrower tile is laid out densely as [nIn, cols] at the start of the buffer.
            INDArray w = cols == nt ? tile
                    : Nd4j.create(tile.data(), new long[] {nIn, cols}, new long[] {cols, 1}, 0, 'c');
            INDArray gs = g.get(NDArrayIndex.all(), NDArrayIndex.interval(j0, j0 + cols));
            Nd4j.gemm(gs, w, out, false, true, 1.0, 1.0);
        }
        tile.close();
        return out;
    }

    /**
     * Dequantizes columns {@code [j0, j0 + cols)} of every row of W into the tile, densely as a
     * C-order {@code [nIn, cols]} matrix.
     */
    private static void fillColumns(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                    int j0, int cols, int nIn, int nOut, INDArray tile) {
        FloatBuffer dst = tile.data().asNioFloat();
        int rowsPerChunk = Math.max(1, CHUNK / cols);
        int chunks = (nIn + rowsPerChunk - 1) / rowsPerChunk;
        int tasks = Math.max(1, Math.min(chunks, Runtime.getRuntime().availableProcessors()));
        IntStream.range(0, tasks).parallel().forEach(t -> {
            float[] buf = new float[rowsPerChunk * cols];
            FloatBuffer view = dst.duplicate();
            for (int c = (int) ((long) chunks * t / tasks), cEnd = (int) ((long) chunks * (t + 1) / tasks); c < cEnd; c++) {
                int r0 = c * rowsPerChunk;
                int r1 = Math.min(nIn, r0 + rowsPerChunk);
                for (int r = r0; r < r1; r++) {
                    int from = (int) ((long) r * nOut + j0);
                    Blockwise4bit.dequantize(packed, scales, blockSize, pair, from, from + cols, buf, (r - r0) * cols);
                }
                view.put(r0 * cols, buf, 0, (r1 - r0) * cols);
            }
        });
    }

    /** Dequantizes rows {@code [i0, i0 + rows)} of W into the first {@code rows} rows of the tile. */
    private static void fillTile(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                 int i0, int rows, int nOut, INDArray tile) {
        FloatBuffer dst = tile.data().asNioFloat();
        int from = (int) ((long) i0 * nOut);
        int count = (int) ((long) rows * nOut);
        int chunks = (count + CHUNK - 1) / CHUNK;
        int tasks = Math.max(1, Math.min(chunks, Runtime.getRuntime().availableProcessors()));
        IntStream.range(0, tasks).parallel().forEach(t -> {
            float[] buf = new float[CHUNK];
            FloatBuffer view = dst.duplicate();
            for (int c = (int) ((long) chunks * t / tasks), cEnd = (int) ((long) chunks * (t + 1) / tasks); c < cEnd; c++) {
                int start = c * CHUNK;
                int len = Math.min(CHUNK, count - start);
                Blockwise4bit.dequantize(packed, scales, blockSize, pair, from + start, from + start + len, buf, 0);
                view.put(start, buf, 0, len);
            }
        });
    }
}
