package org.peft4j.quant.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.atomic.AtomicInteger;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The native 4-bit GEMVs, the tile dequantizer of the batched products and the fused
 * {@code x · dequant(W)} and {@code g · dequant(W)ᵀ} of small batches
 * ({@code src/main/c/peft4j_quant.c}, Linux x86-64 with AVX2 + FMA or AVX-512; the fused products
 * AVX-512 only), loaded from the jar when this platform has them, with the Java kernels (and BLAS
 * on dequantized tiles) as fallback.
 *
 * <p>Why native code in a Java library: on Java 17 the batch-1 products are bound by one scalar
 * table load per weight (the incubating Vector API's table lookups are not intrinsified there), so
 * the NF4 GEMV stayed below 2× the float GEMV however the Java loops were arranged (README,
 * "Benchmarks"). One AVX-512 {@code vpermps} looks up sixteen 4-bit codes at once, which makes the
 * product bound by reading the codes. Other platforms, and CPUs without AVX2, run the Java kernels.
 *
 * <p>The system property {@code peft4j.native} decides, once, when this class is initialised:
 * <ul>
 *   <li>{@code auto} (default): the native kernels when the library loads and the CPU has AVX2;</li>
 *   <li>{@code false}: never (the Java kernels, as before the native library existed);</li>
 *   <li>{@code true}: the native kernels, and every product that would need them throws
 *       {@link IllegalStateException} with the reason when they cannot be used.</li>
 * </ul>
 * {@link #status()} tells which one runs and why.
 *
 * <p>Memory safety: the C code does no bounds checks, so every entry point here checks the
 * arrays, offsets and ranges first and throws {@link IllegalArgumentException} on a mismatch.
 *
 * <p>Thread-safety: immutable after class initialisation; concurrent calls are safe if they write
 * to different outputs.
 */
public final class NativeKernels {
    /** The library inside the jar, for {@code os.name} Linux and {@code os.arch} amd64. */
    static final String RESOURCE = "/org/peft4j/quant/internal/native/linux-x86_64/libpeft4jquant.so";
    static final int LEVEL_NONE = 0;
    static final int LEVEL_AVX2 = 1;
    static final int LEVEL_AVX512 = 2;
    /** The smallest block the C kernels take (the transposed AVX-512 loop reads 32 codes per step). */
    static final int MIN_BLOCK = 32;

    private static final String MODE = mode(System.getProperty("peft4j.native", "auto"));
    /** The CPU level of the loaded library, or {@link #LEVEL_NONE} when it is not in use. */
    private static final int LEVEL;
    private static final String STATUS;

    static {
        int level = LEVEL_NONE;
        String status;
        if (MODE.equals("false")) {
            status = "off (peft4j.native=false): Java kernels";
        } else {
            try {
                level = load();
                status = level == LEVEL_AVX512 ? "native AVX-512 kernels"
                        : level == LEVEL_AVX2 ? "native AVX2 kernels"
                        : "Java kernels: this CPU has neither AVX2 with FMA nor AVX-512";
            } catch (IOException | UnsatisfiedLinkError | SecurityException e) {
                status = "Java kernels: the native library did not load (" + e + ")";
            } catch (UnsupportedOperationException e) {
                status = "Java kernels: " + e.getMessage();
            }
        }
        LEVEL = level;
        STATUS = status;
    }

    private NativeKernels() {
    }

    /** Whether the native kernels are in use in this JVM. */
    public static boolean enabled() {
        return LEVEL != LEVEL_NONE;
    }

    /** Which kernels run and why, e.g. {@code "native AVX-512 kernels"}. */
    public static String status() {
        return STATUS;
    }

    /** The CPU level of the loaded library; {@link #LEVEL_NONE} when it is not in use. */
    static int level() {
        return LEVEL;
    }

    /** The property value, normalised; anything but auto, true or false is refused. */
    static String mode(String property) {
        String m = property.trim().toLowerCase(Locale.ROOT);
        if (!m.equals("auto") && !m.equals("true") && !m.equals("false")) {
            throw new IllegalArgumentException("system property peft4j.native must be auto, true or false, got '"
                    + property + "'");
        }
        return m;
    }

    /** Whether the native kernels take a matrix of this shape and block size. */
    static boolean supports(int blockSize, int nOut) {
        return blockSize >= MIN_BLOCK && Integer.bitCount(blockSize) == 1 && nOut % blockSize == 0;
    }

    /**
     * {@code y = x · W} with the native kernel when it is in use and takes the shape; returns false
     * (and leaves {@code y} alone) otherwise. Large products are split by block-aligned column
     * ranges over the common ForkJoin pool, as {@link Gemv4bit} splits them.
     */
    static boolean gemv(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                        int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        if (!usable(blockSize, nOut)) {
            return false;
        }
        Gemv4bit.splitColumns(nIn, nOut, blockSize,
                (j0, j1) -> gemvColumns(LEVEL, packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff, j0, j1));
        return true;
    }

    /**
     * {@code out = W · g} with the native kernel when it is in use and takes the shape; returns
     * false (and leaves {@code out} alone) otherwise. Large products are split by rows.
     */
    static boolean gemvTransposed(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                  int nIn, int nOut, float[] g, int gOff, float[] out, int outOff) {
        if (!usable(blockSize, nOut)) {
            return false;
        }
        Gemv4bit.splitRows(nIn, nOut, (i0, i1) ->
                gemvTransposedRows(LEVEL, packed, scales, blockSize, pair, nIn, nOut, g, gOff, out, outOff, i0, i1));
        return true;
    }

    /**
     * Writes the rectangle rows {@code [r0, r0 + rows)} × columns {@code [c0, c0 + cols)} of
     * {@code dequant(W)} into the host buffer of {@code out}, row-major from its first element
     * ({@code out[i·cols + j] = W[r0 + i, c0 + j]}), with the native kernel when it is in use and
     * takes the shape and the columns are block-aligned; returns false (and leaves {@code out} alone)
     * otherwise.
     *
     * @throws IllegalArgumentException if the rectangle or the output does not fit
     */
    static boolean dequantizeInto(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn,
                                  int nOut, int r0, int rows, int c0, int cols, INDArray out) {
        if (!usable(blockSize, nOut) || c0 % blockSize != 0 || cols % blockSize != 0) {
            return false;
        }
        dequantizeRect(LEVEL, packed, scales, blockSize, pair, nIn, nOut, r0, rows, c0, cols, out, 0);
        return true;
    }


    /** The largest batch {@link #gemmTransposed} takes (64 rows: four AVX-512 vectors of accumulators per weight row). */
    static final int FUSED_MAX_BATCH = 64;
    /** Multiply-adds below which {@link #gemmTransposed} runs on the calling thread alone. */
    private static final long FUSED_PARALLEL_WORK = 1L << 22;
    /** Rows of W per chunk that the threads of one {@link #gemmTransposed} take (eight strips of six). */
    private static final int FUSED_CHUNK_ROWS = 48;

    /**
     * {@code out = g · dequant(W)ᵀ} with the fused AVX-512 kernel when it is in use and takes the
     * shape: a batch of at most {@value #FUSED_MAX_BATCH} rows, {@code g [batch, nOut]} and
     * {@code out [batch, nIn]} float32 host arrays that are plain in 'c' or 'f' order (see
     * {@link HostSgemm#isPlain}, {@link HostSgemm#isPlainF}). Returns false (and leaves
     * {@code out} alone) when it does not apply.
     *
     * <p>The batch is transposed once into a scratch array; then the calling thread and, for large
     * products, one task of the common pool take chunks of {@value #FUSED_CHUNK_ROWS} rows of
     * {@code W} from a shared counter (each dequantizes only its own rows). Not a fixed split: on
     * a machine with as many cores as threads, OpenBLAS's worker keeps spinning on the other core
     * after each BLAS call, and a pool task there may start late or run slowly; with a shared
     * counter the caller simply takes more chunks.
     */
    static boolean gemmTransposed(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn, int nOut,
                                  INDArray g, INDArray out) {
        if (!usable(blockSize, nOut) || LEVEL != LEVEL_AVX512) {
            return false;
        }
        long batch = g.size(0);
        if (g.rank() != 2 || out.rank() != 2 || batch < 1 || batch > FUSED_MAX_BATCH || out.size(0) != batch
                || g.size(1) != nOut || out.size(1) != nIn
                || !(HostSgemm.isPlain(g) || HostSgemm.isPlainF(g)) || !(HostSgemm.isPlain(out) || HostSgemm.isPlainF(out))) {
            return false;
        }
        INDArray gT = transposedBatch(g, nOut);
        try {
            inChunks(batch * nIn * nOut, nIn, FUSED_CHUNK_ROWS,
                    (i0, i1) -> rowsFromTransposed(packed, scales, blockSize, pair, nIn, nOut, gT, out, i0, i1));
            return true;
        } finally {
            gT.close();
        }
    }

    /**
     * Rows {@code [i0, i1)} of {@code out = g · dequant(W)ᵀ} with the fused AVX-512 kernel on the
     * calling thread ({@code g} and {@code out} as {@link #gemmTransposed} takes them).
     */
    static void gemmTransposedRows(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn, int nOut,
                                   INDArray g, INDArray out, int i0, int i1) {
        if (g.rank() != 2 || g.size(0) < 1 || g.size(0) > FUSED_MAX_BATCH || g.size(1) != nOut
                || !(HostSgemm.isPlain(g) || HostSgemm.isPlainF(g))) {
            throw new IllegalArgumentException("fused product needs a float32 g [batch <= " + FUSED_MAX_BATCH + ", "
                    + nOut + "], plain in 'c' or 'f' order; got " + java.util.Arrays.toString(g.shape()));
        }
        INDArray gT = transposedBatch(g, nOut);
        try {
            rowsFromTransposed(packed, scales, blockSize, pair, nIn, nOut, gT, out, i0, i1);
        } finally {
            gT.close();
        }
    }

    /**
     * {@code gT[k][b] = g[b][k]}, the batch padded with zeros to {@code width}, a multiple of 16,
     * from the first 64-byte boundary of a detached float32 array ({@link #aligned}; the kernel's
     * loads of whole 64-byte rows need it, and ND4J aligns less).
     */
    private static INDArray transposedBatch(INDArray g, int nOut) {
        long batch = g.size(0);
        long width = (batch + 15) / 16 * 16;
        INDArray gT;
        try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            gT = Nd4j.createUninitializedDetached(DataType.FLOAT, 'c', nOut * width + 16);
        }
        if (gT.data().address() == 0 || g.data().address() == 0 || g.data().length() < batch * nOut) {
            gT.close();
            throw new IllegalStateException("the fused product needs host buffers");
        }
        boolean gc = HostSgemm.isPlain(g);
        transposeBatch0(g.data().address(), gc ? nOut : 1, gc ? 1 : batch, (int) batch, nOut, aligned(gT));
        return gT;
    }

    /** The first 64-byte aligned address inside {@code a}'s buffer (at most 15 floats in). */
    private static long aligned(INDArray a) {
        return (a.data().address() + 63) & ~63L;
    }

    /** One thread's rows of the fused product from the transposed batch {@code gT}; checks every bound the C code relies on. */
    private static void rowsFromTransposed(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn,
                                           int nOut, INDArray gT, INDArray out, int i0, int i1) {
        checkLevel(LEVEL_AVX512);
        checkMatrix(packed, scales, blockSize, pair, nIn, nOut);
        checkRange("rows", i0, i1, nIn, 1);
        long batch = out.size(0);
        boolean outC = HostSgemm.isPlain(out);
        if (out.rank() != 2 || batch < 1 || batch > FUSED_MAX_BATCH || out.size(1) != nIn
                || !(outC || HostSgemm.isPlainF(out)) || out.data().address() == 0
                || out.data().length() < batch * nIn || gT.length() < nOut * ((batch + 15) / 16 * 16) + 16) {
            throw new IllegalArgumentException("fused product needs out [batch <= " + FUSED_MAX_BATCH + ", " + nIn
                    + "], a plain float32 host array, and the batch's transposed copy; got out "
                    + java.util.Arrays.toString(out.shape()));
        }
        if (i0 == i1) {
            return;
        }
        checkResult(gemmTransposed0(packed, scales.plainArray(), scales.codesArray(), scales.nestedArray(),
                scales.nestedMapArray(), scales.offset(), nestedShift(scales), Integer.numberOfTrailingZeros(blockSize),
                codeTable(pair), nOut, aligned(gT), (int) batch, out.data().address(), outC ? nIn : 1,
                outC ? 1 : batch, i0, i1));
    }

    /** Columns of W per chunk that the threads of one {@link #mmulFused} take. */
    private static final int FUSED_CHUNK_COLUMNS = 128;

    /**
     * {@code y = x · dequant(W)} with the fused AVX-512 kernel when it is in use and takes the
     * shape: a batch of at most {@value #FUSED_MAX_BATCH} rows, {@code nOut} a multiple of 64,
     * {@code x [batch, nIn]} a float32 host array plain in 'c' or 'f' order and {@code y
     * [batch, nOut]} one plain in 'c' order. Columns are shared between the caller and a pool task
     * as {@link #gemmTransposed} shares rows. Returns false (and leaves {@code y} alone) when it
     * does not apply.
     */
    static boolean mmulFused(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn, int nOut,
                             INDArray x, INDArray y) {
        if (!usable(blockSize, nOut) || LEVEL != LEVEL_AVX512 || nOut % 64 != 0) {
            return false;
        }
        long batch = x.size(0);
        if (x.rank() != 2 || y.rank() != 2 || batch < 1 || batch > FUSED_MAX_BATCH || y.size(0) != batch
                || x.size(1) != nIn || y.size(1) != nOut || !(HostSgemm.isPlain(x) || HostSgemm.isPlainF(x))
                || !HostSgemm.isPlain(y)) {
            return false;
        }
        inChunks(batch * nIn * nOut, nOut, FUSED_CHUNK_COLUMNS,
                (j0, j1) -> mmulFusedColumns(packed, scales, blockSize, pair, nIn, nOut, x, y, j0, j1));
        return true;
    }

    /** A part of a fused product: output range {@code [from, to)}. */
    @FunctionalInterface
    private interface RangePart {
        void run(int from, int to);
    }

    /**
     * Runs {@code part} over {@code [0, extent)} in chunks of {@code chunk}: on the calling thread
     * alone below {@link #FUSED_PARALLEL_WORK} multiply-adds, else shared with one pool task through
     * a counter. Returns only after both have ended, also when a part throws: the parts read and
     * write the caller's arrays (and {@link #gemmTransposed}'s transposed batch, freed after this).
     */
    private static void inChunks(long work, int extent, int chunk, RangePart part) {
        int chunks = (extent + chunk - 1) / chunk;
        if (work < FUSED_PARALLEL_WORK || chunks < 2 || Runtime.getRuntime().availableProcessors() < 2) {
            part.run(0, extent);
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable shared = () -> {
            for (int c = next.getAndIncrement(); c < chunks; c = next.getAndIncrement()) {
                part.run(c * chunk, Math.min(extent, (c + 1) * chunk));
            }
        };
        // a task that has not started when the caller joins it is run by the caller and finds no chunk left
        ForkJoinTask<?> helper = ForkJoinPool.commonPool().submit(shared);
        try {
            shared.run();
        } finally {
            helper.quietlyJoin();
        }
        helper.join();
    }

    /** Columns {@code [j0, j1)} (multiples of 64) of the fused {@code y = x · dequant(W)} on the calling thread; checks every bound. */
    static void mmulFusedColumns(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn, int nOut,
                                 INDArray x, INDArray y, int j0, int j1) {
        checkLevel(LEVEL_AVX512);
        checkMatrix(packed, scales, blockSize, pair, nIn, nOut);
        checkRange("columns", j0, j1, nOut, 64);
        long batch = x.size(0);
        boolean xc = HostSgemm.isPlain(x);
        if (x.rank() != 2 || y.rank() != 2 || batch < 1 || batch > FUSED_MAX_BATCH || y.size(0) != batch
                || x.size(1) != nIn || y.size(1) != nOut || !(xc || HostSgemm.isPlainF(x)) || !HostSgemm.isPlain(y)
                || x.data().address() == 0 || y.data().address() == 0 || x.data().length() < batch * nIn
                || y.data().length() < batch * nOut) {
            throw new IllegalArgumentException("fused product needs x [batch <= " + FUSED_MAX_BATCH + ", " + nIn
                    + "] plain in 'c' or 'f' order and y [batch, " + nOut + "] plain in 'c' order, float32 host arrays; "
                    + "got x " + java.util.Arrays.toString(x.shape()) + ", y " + java.util.Arrays.toString(y.shape()));
        }
        if (j0 == j1) {
            return;
        }
        checkResult(mmulFused0(packed, scales.plainArray(), scales.codesArray(), scales.nestedArray(),
                scales.nestedMapArray(), scales.offset(), nestedShift(scales), Integer.numberOfTrailingZeros(blockSize),
                codeTable(pair), nIn, nOut, x.data().address(), xc ? nIn : 1, xc ? 1 : batch, (int) batch,
                y.data().address(), nOut, j0, j1));
    }

    /** {@link #dequantizeInto} with the kernel of {@code level}; checks every bound the C code relies on. */
    static void dequantizeRect(int level, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                               int nIn, int nOut, int r0, int rows, int c0, int cols, INDArray out, long outOff) {
        checkLevel(level);
        checkMatrix(packed, scales, blockSize, pair, nIn, nOut);
        checkRange("rows", r0, r0 + rows, nIn, 1);
        checkRange("columns", c0, c0 + cols, nOut, blockSize);
        long count = (long) rows * cols;
        if (out.dataType() != DataType.FLOAT || out.data().address() == 0 || outOff < 0
                || out.offset() + outOff + count > out.data().length()) {
            throw new IllegalArgumentException("the output must be a float32 host array with room for " + count
                    + " elements from its element " + outOff + "; got " + out.dataType() + " of buffer length "
                    + out.data().length() + " at offset " + out.offset());
        }
        if (count == 0) {
            return;
        }
        checkResult(dequantize0(level, packed, scales.plainArray(), scales.codesArray(), scales.nestedArray(),
                scales.nestedMapArray(), scales.offset(), nestedShift(scales), Integer.numberOfTrailingZeros(blockSize),
                codeTable(pair), nOut, r0, rows, c0, cols, out.data().address() + 4L * (out.offset() + outOff)));
    }

    private static boolean usable(int blockSize, int nOut) {
        if (LEVEL == LEVEL_NONE) {
            if (MODE.equals("true")) {
                throw new IllegalStateException("peft4j.native=true, but the native kernels cannot be used: " + STATUS);
            }
            return false;
        }
        return supports(blockSize, nOut);
    }

    /**
     * {@code y[j0, j1) = (x · W)[j0, j1)} on one thread, with the kernel of {@code level} (tests use
     * this to run the AVX2 kernel on an AVX-512 machine). Checks every bound the C code relies on.
     */
    static void gemvColumns(int level, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                            int nIn, int nOut, float[] x, int xOff, float[] y, int yOff, int j0, int j1) {
        checkLevel(level);
        checkMatrix(packed, scales, blockSize, pair, nIn, nOut);
        checkSlice("x", x, xOff, nIn);
        checkSlice("y", y, yOff, nOut);
        checkRange("columns", j0, j1, nOut, blockSize);
        if (j0 == j1) {
            return;
        }
        checkResult(gemv0(level, packed, scales.plainArray(), scales.codesArray(), scales.nestedArray(),
                scales.nestedMapArray(), scales.offset(), nestedShift(scales), Integer.numberOfTrailingZeros(blockSize),
                codeTable(pair), nIn, nOut, x, xOff, y, yOff, j0, j1));
    }

    /** {@code out[i0, i1) = (W · g)[i0, i1)} on one thread, with the kernel of {@code level}; checks every bound. */
    static void gemvTransposedRows(int level, byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                   int nIn, int nOut, float[] g, int gOff, float[] out, int outOff, int i0, int i1) {
        checkLevel(level);
        checkMatrix(packed, scales, blockSize, pair, nIn, nOut);
        checkSlice("g", g, gOff, nOut);
        checkSlice("out", out, outOff, nIn);
        checkRange("rows", i0, i1, nIn, 1);
        if (i0 == i1) {
            return;
        }
        checkResult(gemvTransposed0(level, packed, scales.plainArray(), scales.codesArray(), scales.nestedArray(),
                scales.nestedMapArray(), scales.offset(), nestedShift(scales), Integer.numberOfTrailingZeros(blockSize),
                codeTable(pair), nOut, g, gOff, out, outOff, i0, i1));
    }

    /** The C functions' result: 0 done, 1 an array could not be pinned, 2 the JVM gave a copy of the output. */
    private static void checkResult(int result) {
        if (result == 1) {
            throw new OutOfMemoryError("the JVM could not pin the arrays of a native 4-bit GEMV");
        }
        if (result == 2) {
            // Parallel tasks writing back whole copies would overwrite each other's columns.
            throw new IllegalStateException("this JVM copies arrays for JNI critical access, which the native 4-bit "
                    + "kernels cannot use; run with -Dpeft4j.native=false");
        }
    }

    private static void checkLevel(int level) {
        if (level < LEVEL_AVX2 || level > LEVEL) {
            throw new IllegalArgumentException("native kernel level " + level + " is not available here (" + STATUS + ")");
        }
    }

    private static void checkMatrix(byte[] packed, BlockScales scales, int blockSize, float[] pair, int nIn, int nOut) {
        if (!supports(blockSize, nOut)) {
            throw new IllegalArgumentException("native kernels need a power-of-two block size >= " + MIN_BLOCK
                    + " that divides nOut; got block " + blockSize + ", nOut " + nOut);
        }
        if (nIn < 0 || nOut < 0) {
            throw new IllegalArgumentException("negative shape [" + nIn + ", " + nOut + "]");
        }
        long elements = (long) nIn * nOut;
        if (packed.length < elements / 2) {
            throw new IllegalArgumentException("packed codes hold " + packed.length + " bytes; [" + nIn + ", " + nOut
                    + "] needs " + elements / 2);
        }
        long blocks = elements / blockSize;
        if (scales.count() < blocks) {
            throw new IllegalArgumentException(scales.count() + " block scales; [" + nIn + ", " + nOut + "] at block "
                    + blockSize + " needs " + blocks);
        }
        if (scales.isNested()) {
            // BlockScales.nested does not tie these lengths to the block count, so check them here.
            if (scales.codesArray().length < blocks || scales.nestedMapArray().length < 256
                    || (blocks > 0 && scales.nestedArray().length <= (blocks - 1) >>> nestedShift(scales))) {
                throw new IllegalArgumentException("double-quantized scales are shorter than " + blocks + " blocks need");
            }
        }
        Blockwise4bit.checkPairTable(pair);
    }

    private static void checkSlice(String name, float[] a, int off, int len) {
        if (off < 0 || (long) off + len > a.length) {
            throw new IllegalArgumentException(name + "[" + off + ", " + ((long) off + len) + ") is outside its array of length "
                    + a.length);
        }
    }

    private static void checkRange(String what, int from, int to, int n, int multiple) {
        if (from < 0 || from > to || to > n || from % multiple != 0 || to % multiple != 0) {
            throw new IllegalArgumentException(what + " [" + from + ", " + to + ") must lie in [0, " + n + "]"
                    + (multiple > 1 ? " on multiples of " + multiple : ""));
        }
    }

    private static int nestedShift(BlockScales scales) {
        return scales.isNested() ? Integer.numberOfTrailingZeros(scales.nestedBlockSize()) : 0;
    }

    /** The 16-entry code table behind one of {@link Blockwise4bit}'s pair tables. */
    private static float[] codeTable(float[] pair) {
        return pair == Blockwise4bit.PAIR_FP4 ? CodeTables.FP4 : CodeTables.NF4;
    }

    /**
     * Copies the library out of the jar into a private temporary file, loads it and deletes the
     * file (the mapping stays); returns the CPU level it reports.
     */
    private static int load() throws IOException {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (!os.startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new UnsupportedOperationException("no native kernels for " + os + "/" + arch);
        }
        Path file;
        try (InputStream in = NativeKernels.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new UnsupportedOperationException("this build of peft-quant has no native library (built without gcc?)");
            }
            file = Files.createTempFile("peft4j-quant-", ".so");
            try {
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                Files.deleteIfExists(file);
                throw e;
            }
        }
        try {
            System.load(file.toAbsolutePath().toString());
        } finally {
            Files.deleteIfExists(file);
        }
        return cpuLevel();
    }

    private static native int cpuLevel();

    private static native int gemv0(int level, byte[] packed, float[] absmax, byte[] codes, float[] nested,
                                    float[] map, float offset, int nestedShift, int blockShift, float[] table,
                                    int nIn, int nOut, float[] x, int xOff, float[] y, int yOff, int j0, int j1);

    private static native int dequantize0(int level, byte[] packed, float[] absmax, byte[] codes, float[] nested,
                                          float[] map, float offset, int nestedShift, int blockShift, float[] table,
                                          int nOut, int r0, int rows, int c0, int cols, long address);

    private static native int mmulFused0(byte[] packed, float[] absmax, byte[] codes, float[] nested, float[] map,
                                         float offset, int nestedShift, int blockShift, float[] table, int nIn,
                                         int nOut, long x, long xb, long xi, int batch, long y, long ldy, int j0,
                                         int j1);

    private static native void transposeBatch0(long g, long gb, long gk, int batch, int nOut, long gT);

    private static native int gemmTransposed0(byte[] packed, float[] absmax, byte[] codes, float[] nested,
                                              float[] map, float offset, int nestedShift, int blockShift,
                                              float[] table, int nOut, long gT, int batch, long out, long sb,
                                              long si, int i0, int i1);

    private static native int gemvTransposed0(int level, byte[] packed, float[] absmax, byte[] codes,
                                              float[] nested, float[] map, float offset, int nestedShift,
                                              int blockShift, float[] table, int nOut, float[] g, int gOff,
                                              float[] out, int outOff, int i0, int i1);
}
