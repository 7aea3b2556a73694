package org.peft4j.quant;

import java.util.Arrays;
import java.util.Objects;
import java.util.function.Predicate;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.spi.DenseFloats;
import org.peft4j.quant.internal.Blockwise4bit;
import org.peft4j.quant.internal.Gemv4bit;
import org.peft4j.quant.internal.QuantizedProducts;
import org.peft4j.quant.internal.TiledMatmul;

/**
 * Products with a 4-bit weight {@code Wq} of DL4J dense orientation {@code [nIn, nOut]}, without
 * materialising {@code dequant(Wq)}:
 * <ul>
 *   <li>forward {@code y = x · dequant(Wq)}: {@code x [batch, nIn]} → {@code y [batch, nOut]};</li>
 *   <li>backward epsilon {@code ε = g · dequant(Wq)ᵀ}: {@code g [batch, nOut]} → {@code ε [batch, nIn]}.</li>
 * </ul>
 * Batch 1 goes through a GEMV that reads the 4-bit codes directly (a 256-entry byte → two floats
 * table times the block scale). Batches of up to 64 rows, where the native AVX-512 kernels run,
 * go through fused kernels that dequantize a few rows at a time into an L1-sized scratch and
 * multiply them on the same core; other batches dequantize a run of rows of {@code Wq} at a time
 * into a ~1 MiB float tile and multiply with it in BLAS (OpenBLAS called directly on the CPU
 * backend, {@code Nd4j.gemm} elsewhere; see {@link TiledMatmul}), so peak extra memory is one
 * tile. ND4J has no 4-bit type, which is why these kernels are hand-written.
 *
 * <p>Inputs are read as float32 (other dtypes are cast); outputs are new float32 C-order arrays.
 * Results equal {@code x.mmul(w.toINDArray())} up to float32 summation order.
 *
 * <p>Thread-safety: stateless; all methods may be called concurrently. Large products use the
 * common ForkJoin pool.
 */
public final class QuantizedMatmul {
    private QuantizedMatmul() {
    }

    /**
     * {@code y = x · dequant(w)}.
     *
     * @param x [batch, nIn]
     * @param w rank-2 quantized weight [nIn, nOut]
     * @return y [batch, nOut], float32
     * @throws IllegalArgumentException if the shapes do not match
     */
    public static INDArray mmul(INDArray x, QuantizedTensor w) {
        int[] dims = dims(w);
        int nIn = dims[0];
        int nOut = dims[1];
        check(x, "x", nIn, "nIn", w);
        INDArray xf = x.castTo(DataType.FLOAT);
        if (x.size(0) == 1) {
            float[] xv = DenseFloats.isDense(xf) ? DenseFloats.read(xf) : xf.dup('c').data().asFloat();
            float[] y = new float[nOut];
            gemv(xv, w, y);
            return Nd4j.create(y, new long[] {1, nOut}, 'c');
        }
        return TiledMatmul.mmul(xf, w.packedArray(), w.scales(), w.blockSize(),
                Blockwise4bit.pairTable(w.type()), nIn, nOut);
    }

    /**
     * {@code y = x · dequant(w)} written into {@code y}, which saves allocating the result and copying
     * it where the caller already has the output array (a layer's activations).
     *
     * @param x [batch, nIn], batch &gt; 1
     * @param w rank-2 quantized weight [nIn, nOut]
     * @param y [batch, nOut], float32, C order, not a view
     * @throws IllegalArgumentException if the shapes do not match, the batch is 1, or {@code y} is
     *     not a plain float32 C-order array
     */
    public static void mmul(INDArray x, QuantizedTensor w, INDArray y) {
        int[] dims = dims(w);
        check(x, "x", dims[0], "nIn", w);
        Objects.requireNonNull(y, "y must not be null");
        if (x.size(0) < 2) {
            throw new IllegalArgumentException("mmul into y is for batches larger than 1; got x "
                    + Arrays.toString(x.shape()) + " (use gemv for one row)");
        }
        if (y.dataType() != DataType.FLOAT || y.rank() != 2 || y.size(0) != x.size(0) || y.size(1) != dims[1]
                || y.ordering() != 'c' || y.isView() || y.stride(1) != 1 || y.stride(0) != dims[1]) {
            throw new IllegalArgumentException("y must be a float32 C-order [" + x.size(0) + ", " + dims[1]
                    + "] array that is not a view; got " + y.dataType() + " " + y.ordering() + " "
                    + Arrays.toString(y.shape()) + (y.isView() ? " (a view)" : ""));
        }
        TiledMatmul.mmulInto(x.castTo(DataType.FLOAT), w.packedArray(), w.scales(), w.blockSize(),
                Blockwise4bit.pairTable(w.type()), dims[0], dims[1], y, TiledMatmul.direct(y));
    }

    /**
     * Whether {@link #mmulOnto} takes these arrays: {@code x [batch, nIn]} and {@code y [batch,
     * nOut]} float32 with more rows than the fused kernels take and {@code y} a plain host array
     * (see {@link TiledMatmul#accumulates}). For the frozen layers, whose forward pass then writes
     * the bias into {@code y} first.
     */
    static boolean accumulates(INDArray x, QuantizedTensor w, INDArray y) {
        int[] dims = dims(w);
        return TiledMatmul.accumulates(x, y) && x.size(1) == dims[0] && y.rank() == 2 && y.size(0) == x.size(0)
                && y.size(1) == dims[1];
    }

    /**
     * {@code y += x · dequant(w)}, for arrays that {@link #accumulates} takes.
     *
     * @throws IllegalArgumentException if {@link #accumulates} does not take them
     */
    static void mmulOnto(INDArray x, QuantizedTensor w, INDArray y) {
        if (!accumulates(x, w, y)) {
            throw new IllegalArgumentException("accumulating product needs float32 x [batch > 64, nIn] and y [batch, "
                    + "nOut] (plain, C order, host) for weight " + Arrays.toString(w.shape()) + "; got x "
                    + Arrays.toString(x.shape()) + " " + x.dataType() + ", y " + Arrays.toString(y.shape()) + " "
                    + y.dataType());
        }
        int[] dims = dims(w);
        TiledMatmul.mmulOnto(x, w.packedArray(), w.scales(), w.blockSize(), Blockwise4bit.pairTable(w.type()),
                dims[0], dims[1], y);
    }

    /**
     * The forward product of a frozen 4-bit layer: {@code z = x·dequant(w) + b} where the product
     * can accumulate ({@link #accumulates}) and {@code biasInto} writes the bias into the rows of
     * {@code z} (returning true), else {@code z = x·dequant(w)} through {@link QuantizedProducts}
     * and the layer adds the bias itself. One write of {@code z} instead of BLAS zeroing it and a
     * read-and-write pass adding the bias: at 2048 rows (32 × 64 tokens of a MiniLM-sized encoder,
     * one thread) those two took 9.5 % of the QLoRA forward, the bias rows 4.5 % of the float one.
     */
    static void layerForward(QuantizedTensor w, INDArray x, INDArray z, Predicate<INDArray> biasInto) {
        if (accumulates(x, w, z) && biasInto.test(z)) {
            mmulOnto(x, w, z);
        } else {
            QuantizedProducts.forward(w, x, z);
        }
    }

    /**
     * {@code ε = g · dequant(w)ᵀ} (the input gradient of {@code y = x · W}).
     *
     * @param g [batch, nOut]
     * @param w rank-2 quantized weight [nIn, nOut]
     * @return ε [batch, nIn], float32
     * @throws IllegalArgumentException if the shapes do not match
     */
    public static INDArray mmulTransposed(INDArray g, QuantizedTensor w) {
        int[] dims = dims(w);
        int nIn = dims[0];
        int nOut = dims[1];
        check(g, "g", nOut, "nOut", w);
        INDArray gf = g.castTo(DataType.FLOAT);
        if (g.size(0) == 1) {
            float[] gv = DenseFloats.isDense(gf) ? DenseFloats.read(gf) : gf.dup('c').data().asFloat();
            float[] out = new float[nIn];
            gemvTransposed(gv, w, out);
            return Nd4j.create(out, new long[] {1, nIn}, 'c');
        }
        return TiledMatmul.mmulTransposed(gf, w.packedArray(), w.scales(), w.blockSize(),
                Blockwise4bit.pairTable(w.type()), nIn, nOut);
    }

    /**
     * Batch-1 forward on plain arrays: {@code y[j] = Σ_i x[i] · dequant(w)[i, j]}; {@code y} is
     * overwritten. Runs the native kernel where it is in use (Linux x86-64, see
     * {@link org.peft4j.quant.internal.NativeKernels}), the Java kernels otherwise.
     *
     * @param x length nIn
     * @param w rank-2 quantized weight [nIn, nOut]
     * @param y length nOut
     * @throws IllegalArgumentException if the lengths do not match
     */
    public static void gemv(float[] x, QuantizedTensor w, float[] y) {
        int[] dims = dims(w);
        checkLength(x, "x", dims[0], "nIn", w);
        checkLength(y, "y", dims[1], "nOut", w);
        Gemv4bit.gemv(w.packedArray(), w.scales(), w.blockSize(), Blockwise4bit.pairTable(w.type()),
                dims[0], dims[1], x, 0, y, 0);
    }

    /**
     * Batch-1 backward on plain arrays: {@code out[i] = Σ_j g[j] · dequant(w)[i, j]}; {@code out}
     * is overwritten. Kernel choice as for {@link #gemv}.
     *
     * @param g   length nOut
     * @param w   rank-2 quantized weight [nIn, nOut]
     * @param out length nIn
     * @throws IllegalArgumentException if the lengths do not match
     */
    public static void gemvTransposed(float[] g, QuantizedTensor w, float[] out) {
        int[] dims = dims(w);
        checkLength(g, "g", dims[1], "nOut", w);
        checkLength(out, "out", dims[0], "nIn", w);
        Gemv4bit.gemvTransposed(w.packedArray(), w.scales(), w.blockSize(), Blockwise4bit.pairTable(w.type()),
                dims[0], dims[1], g, 0, out, 0);
    }

    /**
     * {@code ε = g · dequant(w)ᵀ} written into {@code eps}, which saves allocating the result and the
     * (transposing) copy into a layer's epsilon array.
     *
     * @param g [batch, nOut], batch &gt; 1
     * @param w rank-2 quantized weight [nIn, nOut]
     * @param eps [batch, nIn], float32, C or F order, not a view
     * @throws IllegalArgumentException if the shapes do not match, the batch is 1, or {@code eps} is
     *     not a plain float32 array
     */
    public static void mmulTransposed(INDArray g, QuantizedTensor w, INDArray eps) {
        int[] dims = dims(w);
        check(g, "g", dims[1], "nOut", w);
        Objects.requireNonNull(eps, "eps must not be null");
        if (g.size(0) < 2) {
            throw new IllegalArgumentException("mmulTransposed into eps is for batches larger than 1; got g "
                    + Arrays.toString(g.shape()) + " (use gemvTransposed for one row)");
        }
        boolean plain = eps.ordering() == 'c' ? eps.stride(1) == 1 && eps.stride(0) == dims[0]
                : eps.stride(0) == 1 && eps.stride(1) == g.size(0);
        if (eps.dataType() != DataType.FLOAT || eps.rank() != 2 || eps.size(0) != g.size(0) || eps.size(1) != dims[0]
                || eps.isView() || !plain) {
            throw new IllegalArgumentException("eps must be a float32 [" + g.size(0) + ", " + dims[0]
                    + "] array with dense rows or columns that is not a view; got " + eps.dataType() + " "
                    + eps.ordering() + " " + Arrays.toString(eps.shape()) + (eps.isView() ? " (a view)" : ""));
        }
        TiledMatmul.mmulTransposedInto(g.castTo(DataType.FLOAT), w.packedArray(), w.scales(), w.blockSize(),
                Blockwise4bit.pairTable(w.type()), dims[0], dims[1], eps, TiledMatmul.directTransposed(eps));
    }

    private static int[] dims(QuantizedTensor w) {
        Objects.requireNonNull(w, "w must not be null");
        long[] s = w.shape();
        if (s.length != 2) {
            throw new IllegalArgumentException("weight has shape " + Arrays.toString(s)
                    + "; expected a matrix [nIn, nOut]");
        }
        return new int[] {(int) s[0], (int) s[1]};
    }

    private static void check(INDArray a, String name, int cols, String colName, QuantizedTensor w) {
        Objects.requireNonNull(a, name + " must not be null");
        if (a.rank() != 2 || a.size(1) != cols) {
            throw new IllegalArgumentException(name + " has shape " + Arrays.toString(a.shape())
                    + "; expected [batch, " + cols + "] (" + colName + " of weight " + Arrays.toString(w.shape()) + ")");
        }
    }

    private static void checkLength(float[] a, String name, int expected, String what, QuantizedTensor w) {
        Objects.requireNonNull(a, name + " must not be null");
        if (a.length != expected) {
            throw new IllegalArgumentException(name + " has length " + a.length + "; expected " + expected
                    + " (" + what + " of weight " + Arrays.toString(w.shape()) + ")");
        }
    }
}
