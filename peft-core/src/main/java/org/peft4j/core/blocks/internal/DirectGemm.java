package org.peft4j.core.blocks.internal;

import org.bytedeco.javacpp.FloatPointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.spi.HostBlas;

/**
 * {@code c = alpha·op(a)·op(b) + beta·c} for the dense layers' products: a direct {@link HostBlas}
 * call when all three matrices are float32 in a plain row or column layout (views of the flat
 * parameter and gradient vectors included), {@code Nd4j.gemm} otherwise.
 *
 * <p>Why not always {@code Nd4j.gemm}: its {@code Mmul} op costs a fixed set-up per call, and zeroes
 * {@code c} before a {@code beta = 0} product. At one thread, {@code [64, 384]·[384, 384]} (a
 * MiniLM-sized projection at batch 1 × 64 tokens) took about 60 µs more through {@code Nd4j.gemm}
 * than through {@code cblas_sgemm} on the same buffers (124 against 63 µs at {@code [512, 384]·[384, 8]}),
 * and a forward pass at batch 1 makes 36 such products: the MiniLM-sized encoder's forward pass at
 * batch 1 × 64 tokens, one thread, went from 25.6 to 24.5 and from 23.3 to 22.5 ms (median, two
 * side-by-side runs). Used by {@link DenseImpl}, by the LoRA branch through
 * {@link org.peft4j.core.spi.AdapterGemm}, and for the frozen base products of
 * {@link org.peft4j.core.spi.FrozenDenseLayerImpl} (and the layers that extend it), where the
 * saving per call holds at 8 × 64 tokens too: 1.14 against 1.24 ms per {@code [512, 384]·[384, 384]}
 * product in the LoRA training step (one thread, per-call times in one JVM, paths alternating).
 *
 * <p>Double arrays (the gradient checks), mixed types, other backends, strided slices and
 * {@code -Dpeft4j.directBlas=false} keep {@code Nd4j.gemm}, which computes the same product.
 *
 * <p>Thread-safety: stateless; concurrent writes to one {@code c} are the caller's business.
 */
public final class DirectGemm {

    private DirectGemm() {
    }

    /** Whether {@link #gemm} calls BLAS directly in this JVM for float32 operands it accepts. */
    static boolean available() {
        return HostBlas.available();
    }

    /**
     * {@code c = alpha·op(a)·op(b) + beta·c}, {@code op(X) = Xᵀ} when its flag is set, as
     * {@code Nd4j.gemm(a, b, c, transposeA, transposeB, alpha, beta)}; {@code c} is written in place.
     */
    public static void gemm(INDArray a, INDArray b, INDArray c, boolean transposeA, boolean transposeB, double alpha,
                            double beta) {
        gemm(a, b, c, transposeA, transposeB, alpha, beta, HostBlas.available());
    }

    /** {@link #gemm}, with {@code allowDirect} false always through {@code Nd4j.gemm} (the tests' reference). */
    static void gemm(INDArray a, INDArray b, INDArray c, boolean transposeA, boolean transposeB, double alpha,
                     double beta, boolean allowDirect) {
        if (!allowDirect || !operand(a) || !operand(b) || !operand(c)
                || !call(a, b, c, transposeA, transposeB, alpha, beta)) {
            Nd4j.gemm(a, b, c, transposeA, transposeB, alpha, beta);
        }
    }

    /**
     * Whether {@code m} is a float32 matrix that BLAS can read in place: rows or columns dense
     * (unit stride one way, a leading dimension at least the other size), within its buffer.
     */
    static boolean operand(INDArray m) {
        if (m.dataType() != DataType.FLOAT || m.rank() != 2 || m.length() == 0 || m.size(0) > Integer.MAX_VALUE
                || m.size(1) > Integer.MAX_VALUE) {
            return false;
        }
        long ld = Math.abs(leading(m));
        return ld > 0 && ld <= Integer.MAX_VALUE && start(m) >= 0 && end(m) <= m.data().length();
    }

    /**
     * The leading dimension of {@code m} read row-major ({@code > 0}), or its negative when it must be
     * read as the transpose of a row-major matrix ('f' layout), or 0 when neither fits.
     */
    private static long leading(INDArray m) {
        long rows = m.size(0);
        long cols = m.size(1);
        long s0 = m.stride(0);
        long s1 = m.stride(1);
        if ((cols == 1 || s1 == 1) && (rows == 1 || s0 >= cols)) {
            return rows == 1 ? cols : Math.max(s0, 1);
        }
        if ((rows == 1 || s0 == 1) && (cols == 1 || s1 >= rows)) {
            return -(cols == 1 ? rows : s1);
        }
        return 0;
    }

    /** Elements from {@link HostBlas#pointer}'s address to one past the last element of {@code m}. */
    private static long end(INDArray m) {
        long last = (m.size(0) - 1) * m.stride(0) + (m.size(1) - 1) * m.stride(1);
        return start(m) + last + 1;
    }

    /** The element offset of {@code m}'s first element from its buffer's address. */
    private static long start(INDArray m) {
        return m.offset() - m.data().offset();
    }

    private static boolean call(INDArray a, INDArray b, INDArray c, boolean ta, boolean tb, double alpha,
                                double beta) {
        long m = ta ? a.size(1) : a.size(0);
        long k = ta ? a.size(0) : a.size(1);
        long n = tb ? b.size(0) : b.size(1);
        if (k != (tb ? b.size(1) : b.size(0)) || m != c.size(0) || n != c.size(1)) {
            return false;
        }
        long lda = leading(a);
        long ldb = leading(b);
        long ldc = leading(c);
        // a matrix stored column-major is, read row-major, its transpose: BLAS transposes it when op() does not
        boolean ra = lda > 0;
        boolean rb = ldb > 0;
        FloatPointer pa = HostBlas.pointer(a);
        FloatPointer pb = HostBlas.pointer(b);
        FloatPointer pc = HostBlas.pointer(c);
        if (ldc > 0) {
            HostBlas.sgemm(ta == ra, tb == rb, (int) m, (int) n, (int) k, (float) alpha, pa, start(a), (int) Math.abs(lda),
                    pb, start(b), (int) Math.abs(ldb), (float) beta, pc, start(c), (int) ldc);
        } else {
            // c stored column-major: cᵀ = op(b)ᵀ·op(a)ᵀ, row-major
            HostBlas.sgemm(tb != rb, ta != ra, (int) n, (int) m, (int) k, (float) alpha, pb, start(b),
                    (int) Math.abs(ldb), pa, start(a), (int) Math.abs(lda), (float) beta, pc, start(c), (int) -ldc);
        }
        return true;
    }
}
