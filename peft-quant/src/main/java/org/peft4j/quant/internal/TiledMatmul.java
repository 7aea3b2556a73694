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
 *   <li>{@link #mmulTransposed}: {@code outᵀ[i0:i0+kt, :] = W[i0:i0+kt, :] · gᵀ}
 *       ({@code g [batch, nOut]}, {@code out [batch, nIn]}), computed as {@code outᵀ} so each tile
 *       writes a contiguous slice.</li>
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

    /** {@code out = g · Wᵀ}, {@code g [batch, nOut]} float32 → new {@code out [batch, nIn]} float32. */
    public static INDArray mmulTransposed(INDArray g, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                          int nIn, int nOut) {
        long batch = g.size(0);
        // Computed as outT = W · gᵀ into a C-order [nIn, batch] array, whose row blocks are
        // contiguous, so every tile's GEMM writes straight into its slice.
        INDArray outT = Nd4j.create(DataType.FLOAT, new long[] {nIn, batch}, 'c');
        int kt = tileRows(nIn, nOut);
        INDArray tile;
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            tile = Nd4j.createUninitializedDetached(DataType.FLOAT, 'c', kt, nOut);
        }
        for (int i0 = 0; i0 < nIn; i0 += kt) {
            int rows = Math.min(kt, nIn - i0);
            fillTile(packed, scales, blockSize, pair, i0, rows, nOut, tile);
            INDArray w = rows == kt ? tile : tile.get(NDArrayIndex.interval(0, rows), NDArrayIndex.all());
            INDArray dst = outT.get(NDArrayIndex.interval(i0, i0 + rows), NDArrayIndex.all());
            Nd4j.gemm(w, g, dst, false, true, 1.0, 0.0);
        }
        tile.close();
        return outT.transpose().dup('c');
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
