package org.peft4j.quant.internal;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;

import org.bytedeco.javacpp.FloatPointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

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
 * <p>Available only when ND4J runs its CPU backend (whose buffers are host memory and whose BLAS
 * is the OpenBLAS build bundled with it, {@code org.bytedeco.openblas}) and the system property
 * {@code peft4j.directBlas} is not {@code false}. The library compiles against {@code nd4j-api}
 * only, so the routine is found by name at class initialisation; on any other backend, or if the
 * lookup fails, {@link #available()} is false and callers use {@code Nd4j.gemm}.
 *
 * <p>Thread-safety: immutable after class initialisation; OpenBLAS itself is thread-safe.
 */
final class HostSgemm {
    static final String CPU_BACKEND = "org.nd4j.linalg.cpu.nativecpu.CpuBackend";
    static final String OPENBLAS = "org.bytedeco.openblas.global.openblas_nolapack";
    private static final int ROW_MAJOR = 101;
    private static final int NO_TRANS = 111;
    private static final int TRANS = 112;

    private static final MethodHandle SGEMM = find(System.getProperty("peft4j.directBlas", "true"));

    private HostSgemm() {
    }

    /** Whether {@link #sgemm} may be called in this JVM. */
    static boolean available() {
        return SGEMM != null;
    }

    private static MethodHandle find(String property) {
        String p = property.trim().toLowerCase(Locale.ROOT);
        if (!p.equals("true") && !p.equals("false")) {
            throw new IllegalArgumentException("system property peft4j.directBlas must be true or false, got '"
                    + property + "'");
        }
        if (p.equals("false") || !CPU_BACKEND.equals(Nd4j.getBackend().getClass().getName())) {
            return null;
        }
        try {
            Class<?> blas = Class.forName(OPENBLAS, true, HostSgemm.class.getClassLoader());
            MethodType type = MethodType.methodType(void.class, int.class, int.class, int.class,
                    int.class, int.class, int.class, float.class, FloatPointer.class, int.class,
                    FloatPointer.class, int.class, float.class, FloatPointer.class, int.class);
            return MethodHandles.publicLookup().findStatic(blas, "cblas_sgemm", type);
        } catch (ReflectiveOperationException | LinkageError e) {
            return null;
        }
    }

    /**
     * Whether {@code a} can be handed to {@link #sgemm}: float32, C order, dense rows, not a view
     * and starting at the beginning of its buffer, so element {@code (r, c)} is at
     * {@code r · a.size(1) + c}.
     */
    static boolean isPlain(INDArray a) {
        return a.dataType() == DataType.FLOAT && a.rank() == 2 && a.ordering() == 'c' && !a.isView()
                && a.offset() == 0 && a.data().offset() == 0 && a.stride(1) == 1 && a.stride(0) == a.size(1);
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
        FloatPointer pa = new FloatPointer(a.data().addressPointer()).position(aOff);
        FloatPointer pb = new FloatPointer(b.data().addressPointer()).position(bOff);
        FloatPointer pc = new FloatPointer(c.data().addressPointer()).position(cOff);
        try {
            SGEMM.invokeExact(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, 1f,
                    pa, lda, pb, ldb, beta, pc, ldc);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cblas_sgemm failed", t);
        }
    }
}
