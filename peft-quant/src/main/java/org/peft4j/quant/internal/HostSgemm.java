package org.peft4j.quant.internal;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.spi.HostBlas;

/**
 * OpenBLAS's row-major {@code cblas_sgemm}, called directly on the host buffers of ND4J float
 * arrays, for {@link TiledMatmul}.
 *
 * <p>Why not {@code Nd4j.gemm}: that goes through ND4J's {@code Mmul} op, which refuses an output
 * that is a column slice ({@code C array should NOT be a view}) and adds a per-call overhead that,
 * for the many small tile products here ({@code x[:, i0:i0+256] · W_tile} accumulated sixteen
 * times at 4096², batch 64), costs more than the arithmetic; called directly, the sixteen products
 * take about as long as one float GEMM of the whole matrix. The BLAS routine takes leading
 * dimensions, so a slice of {@code x} or of the output needs no copy.
 *
 * <p>The routine itself is core's {@link HostBlas} (one lookup, one {@code peft4j.directBlas}
 * switch, CPU backend only); this class adds the element offsets and the checks of the arrays the
 * tiled products hand it. When {@link #available()} is false callers use {@code Nd4j.gemm}.
 *
 * <p>Thread-safety: stateless; OpenBLAS itself is thread-safe.
 */
final class HostSgemm {
    private HostSgemm() {
    }

    /** Whether {@link #sgemm} may be called in this JVM. */
    static boolean available() {
        return HostBlas.available();
    }

    /**
     * Whether {@code a} can be handed to {@link #sgemm}: float32, C order, dense rows, not a view
     * and starting at the beginning of its buffer, so element {@code (r, c)} is at
     * {@code r · a.size(1) + c}.
     */
    static boolean isPlain(INDArray a) {
        return HostBlas.isPlain(a, 2);
    }

    /**
     * Whether {@code a} is the {@code 'f'}-order counterpart of {@link #isPlain}: float32, rank 2,
     * column-major with dense columns, not a view, at the start of its buffer, so it is the row-major
     * matrix {@code aᵀ} with leading dimension {@code a.size(0)}.
     */
    static boolean isPlainF(INDArray a) {
        return a.dataType() == DataType.FLOAT && a.rank() == 2 && a.ordering() == 'f' && !a.isView()
                && a.offset() == 0 && a.data().offset() == 0 && a.stride(0) == 1 && a.stride(1) == a.size(0);
    }

    /** {@link #sgemm(boolean, boolean, int, int, int, INDArray, long, int, INDArray, long, int, float, INDArray, long, int)} with {@code A} not transposed and {@code B} from its first element. */
    static void sgemm(boolean transB, int m, int n, int k, INDArray a, long aOff, int lda,
                      INDArray b, int ldb, float beta, INDArray c, long cOff, int ldc) {
        sgemm(false, transB, m, n, k, a, aOff, lda, b, 0, ldb, beta, c, cOff, ldc);
    }

    /**
     * {@code C[cOff ...] = op(A)[aOff ...] · op(B) + beta · C[cOff ...]}, row-major, with
     * {@code op(X) = Xᵀ} when its flag is set. {@code op(A)} is {@code m × k} (stored {@code k × m}
     * when transposed) with leading dimension {@code lda}, {@code op(B)} is {@code k × n} (stored
     * {@code n × k} when transposed) with {@code ldb}, {@code C} is {@code m × n} with {@code ldc};
     * offsets are in elements. Every array must be {@link #isPlain plain} or {@link #isPlainF}
     * (read as its transpose); the caller has checked that every index lies inside them.
     */
    static void sgemm(boolean transA, boolean transB, int m, int n, int k, INDArray a, long aOff, int lda,
                      INDArray b, long bOff, int ldb, float beta, INDArray c, long cOff, int ldc) {
        HostBlas.sgemm(transA, transB, m, n, k, 1f, HostBlas.pointer(a), aOff, lda, HostBlas.pointer(b), bOff, ldb,
                beta, HostBlas.pointer(c), cOff, ldc);
    }
}
