package org.peft4j.core.spi;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;
import org.bytedeco.javacpp.FloatPointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * OpenBLAS's row-major {@code cblas_sgemm}, called directly on the host buffers of ND4J float32
 * arrays, with any leading dimensions and element offsets.
 *
 * <p>Why not {@code Nd4j.gemm} / {@code Nd4j.matmul}: they go through ND4J's {@code Mmul} op, which
 * refuses an output that is a strided slice, copies strided inputs, and costs a fixed set-up per call;
 * libnd4j's batched matmul repeats that per matrix. The attention products of a MiniLM-sized layer
 * (96 products of {@code 64 × 64 × 32} per batch of 8, each reading a head of the
 * {@code [batch·time, heads·headSize]} rows in place) took 0.6–0.8 ms through the batched op and
 * 0.38 ms as 96 direct calls with the rows' width as leading dimension (one thread).
 *
 * <p>Available only when ND4J runs its CPU backend (host buffers; its BLAS is the OpenBLAS build
 * bundled with it, {@code org.bytedeco.openblas}) and the system property {@value #PROPERTY} is not
 * {@code false}. peft4j compiles against {@code nd4j-api} only, so the routine is found by name at
 * class initialisation; on any other backend, or if the lookup fails, {@link #available()} is false
 * and callers keep their ND4J path.
 *
 * <p>Part of the SPI so that every module's kernels (the attention core here, peft-quant's tiled
 * 4-bit products) share one lookup and one switch.
 *
 * <p>Thread-safety: immutable after class initialisation; OpenBLAS itself is thread-safe. The
 * {@link FloatPointer}s given to {@link #sgemm} are repositioned by it, so a pointer is used by one
 * thread.
 */
public final class HostBlas {
    /** System property: {@code false} turns direct BLAS calls off (default {@code true}). */
    public static final String PROPERTY = "peft4j.directBlas";
    private static final String CPU_BACKEND = "org.nd4j.linalg.cpu.nativecpu.CpuBackend";
    private static final String OPENBLAS = "org.bytedeco.openblas.global.openblas_nolapack";
    private static final int ROW_MAJOR = 101;
    private static final int NO_TRANS = 111;
    private static final int TRANS = 112;

    private static final MethodHandle SGEMM = find(System.getProperty(PROPERTY, "true"));

    private HostBlas() {
    }

    /** Whether {@link #sgemm} may be called in this JVM. */
    public static boolean available() {
        return SGEMM != null;
    }

    private static MethodHandle find(String property) {
        String p = property.trim().toLowerCase(Locale.ROOT);
        if (!p.equals("true") && !p.equals("false")) {
            throw new IllegalArgumentException("system property " + PROPERTY + " must be true or false, got '"
                    + property + "'");
        }
        if (p.equals("false") || !CPU_BACKEND.equals(Nd4j.getBackend().getClass().getName())) {
            return null;
        }
        try {
            Class<?> blas = Class.forName(OPENBLAS, true, HostBlas.class.getClassLoader());
            MethodType type = MethodType.methodType(void.class, int.class, int.class, int.class,
                    int.class, int.class, int.class, float.class, FloatPointer.class, int.class,
                    FloatPointer.class, int.class, float.class, FloatPointer.class, int.class);
            return MethodHandles.publicLookup().findStatic(blas, "cblas_sgemm", type);
        } catch (ReflectiveOperationException | LinkageError e) {
            return null;
        }
    }

    /**
     * Whether {@code a} is plain float32 rows: rank 2, {@code 'c'} order with dense rows, not a view
     * and at the start of its buffer, so element {@code (r, c)} is at {@code r · a.size(1) + c} from
     * {@link #pointer}. With {@code rank} other than 2, the same for a {@code 'c'} array of that rank
     * with default strides.
     */
    public static boolean isPlain(INDArray a, int rank) {
        if (a.dataType() != DataType.FLOAT || a.rank() != rank || a.ordering() != 'c' || a.isView()
                || a.offset() != 0 || a.data().offset() != 0 || a.length() == 0) {
            return false;
        }
        long expected = 1;
        for (int i = rank - 1; i >= 0; i--) {
            if (a.size(i) > 1 && a.stride(i) != expected) {
                return false;
            }
            expected *= a.size(i);
        }
        return a.data().length() >= a.length();
    }

    /** A pointer to the first element of {@code a}, which must be {@link #isPlain plain}. */
    public static FloatPointer pointer(INDArray a) {
        return new FloatPointer(a.data().addressPointer());
    }

    /**
     * {@code C[cOff ...] = alpha · op(A)[aOff ...] · op(B)[bOff ...] + beta · C[cOff ...]},
     * row-major, with {@code op(X) = Xᵀ} when its flag is set: {@code op(A)} is {@code m × k} (stored
     * {@code k × m} when transposed) with leading dimension {@code lda}, {@code op(B)} is
     * {@code k × n} (stored {@code n × k} when transposed) with {@code ldb}, {@code C} is
     * {@code m × n} with {@code ldc}; offsets are in elements from {@link #pointer}. The caller has
     * checked that every index lies inside the arrays. Only when {@link #available()}.
     */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a,
                             long aOff, int lda, FloatPointer b, long bOff, int ldb, float beta, FloatPointer c,
                             long cOff, int ldc) {
        try {
            SGEMM.invokeExact(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, alpha,
                    a.position(aOff), lda, b.position(bOff), ldb, beta, c.position(cOff), ldc);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cblas_sgemm failed", t);
        }
    }
}
