package org.peft4j.core.blocks.internal;

import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Row-wise work of the dense layers, done on the host buffer of a {@code 'c'}-ordered
 * {@code [rows, n]} float32 or float64 array on nd4j-native:
 * <ul>
 *   <li>{@link #fillRows}: every row of {@code z} set to the bias {@code b}, so that the product
 *       {@code x·W} is then accumulated onto it by the GEMM ({@code beta = 1}); this replaces the
 *       GEMM's own zeroing of {@code z} (OpenBLAS clears the output when {@code beta = 0}) and the
 *       broadcast add of {@code b} after it, a read and a write of {@code z}, by one write (the
 *       way PyTorch's {@code addmm} adds a bias);</li>
 *   <li>{@link #zeroMaskedRows}: DL4J's per-row mask {@code [rows, 1]} applied by writing zeros into
 *       the masked rows only, instead of multiplying every element by its row's mask value;</li>
 *   <li>{@link #columnSums}: the bias gradient {@code Σ_rows δ}.</li>
 * </ul>
 *
 * <p>Why by hand: on nd4j-native 1.0.0-M2.1 the broadcast add and the column-vector multiply are
 * a full pass over the activations each, with 20–70 µs of fixed cost in shape and TAD set-up; in
 * a MiniLM-sized LoRA step they were 6% of the time (with the zeroing inside the GEMM), at batch 1
 * more than the element work. The writes here are bulk copies of a bias row or a zero row.
 *
 * <p>Each method returns false, leaving the arrays untouched, when it does not apply (another
 * backend, data type, order or shape, a view with other strides, or a mask holding values other
 * than 0 and 1); the caller then uses ND4J's ops.
 *
 * <p>Thread-safety: stateless.
 */
public final class RowKernels {
    /** Host buffers are ND4J's memory only on nd4j-native; elsewhere (CUDA) the ops are used. */
    private static final boolean HOST = OmpThreads.CPU_BACKEND.equals(Nd4j.getBackend().getClass().getName());

    private RowKernels() {
    }

    /** Whether {@code a} is a float32/float64 array with default strides in one int-indexed host buffer. */
    private static boolean contiguous(INDArray a) {
        return HostRows.accessible(a);
    }

    /** Whether {@code z} is a {@code 'c'}-ordered contiguous {@code [rows, n]} host array. */
    private static boolean rowsOf(INDArray z) {
        return HOST && z.rank() == 2 && z.ordering() == 'c' && contiguous(z);
    }

    /**
     * Whether {@code a} and {@code b} are {@code 'c'}-ordered contiguous float32/float64 host arrays
     * of one type and shape, so that the same buffer index is the same element in both.
     */
    static boolean sameRows(INDArray a, INDArray b) {
        return HOST && a.ordering() == 'c' && b.ordering() == 'c' && a.dataType() == b.dataType()
                && Arrays.equals(a.shape(), b.shape()) && contiguous(a) && contiguous(b);
    }

    /**
     * Sets every row of {@code z [rows, n]} to the vector {@code b} ({@code n} elements, converted
     * to {@code z}'s type).
     *
     * @return whether it did; false (and {@code z} untouched) when {@code z} is not a
     *     {@code 'c'}-ordered contiguous float32/float64 host array or {@code b} is not a vector of
     *     {@code n} elements
     */
    public static boolean fillRows(INDArray z, INDArray b) {
        if (!rowsOf(z) || b.length() != z.size(1) || !(b.isVector() || b.length() == 1)) {
            return false;
        }
        int n = (int) z.size(1);
        long rows = z.size(0);
        int base = (int) z.offset();
        double[] bias = values(b);
        if (z.dataType() == DataType.FLOAT) {
            float[] row = new float[n];
            for (int j = 0; j < n; j++) {
                row[j] = (float) bias[j];
            }
            FloatBuffer buf = z.data().asNioFloat();
            for (long r = 0; r < rows; r++) {
                buf.put(base + (int) (r * n), row, 0, n);
            }
        } else {
            double[] row = bias;
            DoubleBuffer buf = z.data().asNioDouble();
            for (long r = 0; r < rows; r++) {
                buf.put(base + (int) (r * n), row, 0, n);
            }
        }
        return true;
    }

    /**
     * {@code z ← z ⊙ mask} for a per-row mask of zeros and ones: the rows whose mask is 0 are
     * overwritten with {@code +0} (where a multiply gives {@code -0} for a negative element, and
     * NaN for a non-finite one), the others are left as they are.
     *
     * @param mask {@code [rows, 1]} or {@code [rows]}
     * @return whether it did; false (and {@code z} untouched) when {@code z} is not a
     *     {@code 'c'}-ordered contiguous float32/float64 host array, the mask is not one value per
     *     row, or a mask value is neither 0 nor 1
     */
    public static boolean zeroMaskedRows(INDArray z, INDArray mask) {
        if (!rowsOf(z) || mask.length() != z.size(0) || !(mask.isVector() || mask.length() == 1)) {
            return false;
        }
        double[] m = values(mask);
        boolean any = false;
        for (double v : m) {
            if (v != 0.0 && v != 1.0) {
                return false;
            }
            any |= v == 0.0;
        }
        if (!any) {
            return true;
        }
        int n = (int) z.size(1);
        int base = (int) z.offset();
        if (z.dataType() == DataType.FLOAT) {
            float[] zeros = new float[n];
            FloatBuffer buf = z.data().asNioFloat();
            for (int r = 0; r < m.length; r++) {
                if (m[r] == 0.0) {
                    buf.put(base + r * n, zeros, 0, n);
                }
            }
        } else {
            double[] zeros = new double[n];
            DoubleBuffer buf = z.data().asNioDouble();
            for (int r = 0; r < m.length; r++) {
                if (m[r] == 0.0) {
                    buf.put(base + r * n, zeros, 0, n);
                }
            }
        }
        return true;
    }

    /**
     * Whether {@code a} and {@code b} are masks of one shape holding the same values, each 0 or 1
     * (so that their element-wise OR is {@code a}), compared in {@code 'c'} order.
     */
    public static boolean sameZeroOneMask(INDArray a, INDArray b) {
        if (!Arrays.equals(a.shape(), b.shape()) || a.length() > Integer.MAX_VALUE) {
            return false;
        }
        if (a.length() == 0) {
            return true;
        }
        double[] x = values(a);
        double[] y = a == b ? x : values(b);
        for (int i = 0; i < x.length; i++) {
            if (x[i] != y[i] || (x[i] != 0.0 && x[i] != 1.0)) {
                return false;
            }
        }
        return true;
    }

    /** Rows summed in float32 before they are added to the double totals (see {@link #columnSums}). */
    private static final int SUM_ROWS = 16;

    /**
     * {@code dst ← Σ_rows a}: the column sums of {@code a [rows, n]} (a bias gradient) written into
     * the vector {@code dst} ({@code n} elements, such as a view of the flat gradient). Float rows
     * are summed in float32 over {@value #SUM_ROWS} rows at a time, in a loop C2 vectorizes, and
     * those partial sums in double.
     *
     * <p>Why: ND4J's sum over dimension 0 of a {@code 'c'} array walks it column by column (strided)
     * and cost more than the weight gradient's GEMM of a MiniLM projection.
     *
     * @return whether it did; false (nothing written) when {@code a} is not a {@code 'c'}-ordered
     *     contiguous float32/float64 host array or {@code dst} not a contiguous vector of its type and width
     */
    public static boolean columnSums(INDArray a, INDArray dst) {
        if (!rowsOf(a) || dst.dataType() != a.dataType() || dst.length() != a.size(1)
                || !(dst.isVector() || dst.length() == 1) || !contiguous(dst)) {
            return false;
        }
        int n = (int) a.size(1);
        long rows = a.size(0);
        int base = (int) a.offset();
        double[] total = new double[n];
        if (a.dataType() == DataType.FLOAT) {
            FloatBuffer buf = a.data().asNioFloat();
            // a row at a time into an array indexed from 0 like acc: C2 vectorizes a loop only when
            // all its array indices have the same loop-invariant offset ([o + j] against [j] ran scalar)
            float[] row = new float[n];
            float[] acc = new float[n];
            for (long r0 = 0; r0 < rows; r0 += SUM_ROWS) {
                int k = (int) Math.min(SUM_ROWS, rows - r0);
                Arrays.fill(acc, 0f);
                for (int r = 0; r < k; r++) {
                    buf.get(base + (int) ((r0 + r) * n), row, 0, n);
                    for (int j = 0; j < n; j++) {
                        acc[j] += row[j];
                    }
                }
                for (int j = 0; j < n; j++) {
                    total[j] += acc[j];
                }
            }
            float[] out = new float[n];
            for (int j = 0; j < n; j++) {
                out[j] = (float) total[j];
            }
            dst.data().asNioFloat().put((int) dst.offset(), out, 0, n);
        } else {
            DoubleBuffer buf = a.data().asNioDouble();
            double[] row = new double[n];
            for (long r = 0; r < rows; r++) {
                buf.get(base + (int) (r * n), row, 0, n);
                for (int j = 0; j < n; j++) {
                    total[j] += row[j];
                }
            }
            dst.data().asNioDouble().put((int) dst.offset(), total, 0, n);
        }
        return true;
    }

    /** Rows of a time-distributed block copied per step of {@link #rowsToColumns}. */
    private static final int COPY_ROWS = 64;

    /**
     * {@code dst ← src} for float32 {@code [rows, n]} arrays, {@code src} in {@code 'c'} order and
     * {@code dst} in {@code 'f'} order (the layout DL4J's {@code FeedForwardToRnnPreProcessor} makes
     * before it views rows as a sequence): {@value #COPY_ROWS} rows at a time are read into the heap
     * and each column of them written as one run.
     *
     * <p>Why: ND4J's order-changing assign walked the {@code [512, 384]} rows at the end of a
     * MiniLM-sized encoder element by element, 1.4 % of a head-only training step at one thread.
     *
     * @return whether it did; false (nothing written) for other types, orders, shapes or backends
     */
    public static boolean rowsToColumns(INDArray src, INDArray dst) {
        if (!HOST || src.dataType() != DataType.FLOAT || dst.dataType() != DataType.FLOAT || src.rank() != 2
                || dst.rank() != 2 || src.ordering() != 'c' || dst.ordering() != 'f'
                || !Arrays.equals(src.shape(), dst.shape()) || !contiguous(src) || !contiguous(dst)) {
            return false;
        }
        int rows = (int) src.size(0);
        int n = (int) src.size(1);
        FloatBuffer in = src.data().asNioFloat();
        FloatBuffer out = dst.data().asNioFloat();
        int inBase = (int) src.offset();
        int outBase = (int) dst.offset();
        float[] block = new float[Math.min(rows, COPY_ROWS) * n];
        float[] column = new float[Math.min(rows, COPY_ROWS)];
        for (int r0 = 0; r0 < rows; r0 += COPY_ROWS) {
            int k = Math.min(COPY_ROWS, rows - r0);
            in.get(inBase + r0 * n, block, 0, k * n);
            for (int j = 0; j < n; j++) {
                for (int r = 0; r < k; r++) {
                    column[r] = block[r * n + j];
                }
                out.put(outBase + j * rows + r0, column, 0, k);
            }
        }
        return true;
    }

    /**
     * {@code dst[b + B·t, j] ← src[b, j, t]}: the float32 sequence {@code src [B, n, T]} ({@code 'c'}
     * or {@code 'f'} order) back to time-distributed rows {@code dst [B·T, n]} ({@code 'c'} order), row
     * {@code b + B·t} as DL4J's {@code RnnToFeedForwardPreProcessor} lays them out (the gradient of
     * {@link #rowsToColumns} followed by that view). One sequence ({@code 'c'}) or one time step
     * ({@code 'f'}: a column-major {@code [B, n]} block) at a time is read into the heap.
     *
     * <p>The {@code 'f'} case is the gradient DL4J's masked mean pooling ({@code GlobalPoolingLayer})
     * passes down: there ND4J's order-changing reshape took ≈ 1 ms of a MiniLM-sized one-thread LoRA
     * step (async-profiler).
     *
     * @return whether it did; false (nothing written) for other types, orders, shapes or backends
     */
    public static boolean sequenceToRows(INDArray src, INDArray dst) {
        if (!HOST || src.dataType() != DataType.FLOAT || dst.dataType() != DataType.FLOAT || src.rank() != 3
                || dst.rank() != 2 || (src.ordering() != 'c' && src.ordering() != 'f') || dst.ordering() != 'c'
                || !contiguous(src) || !contiguous(dst) || dst.size(0) != src.size(0) * src.size(2)
                || dst.size(1) != src.size(1)) {
            return false;
        }
        int batch = (int) src.size(0);
        int n = (int) src.size(1);
        int steps = (int) src.size(2);
        FloatBuffer in = src.data().asNioFloat();
        FloatBuffer out = dst.data().asNioFloat();
        int inBase = (int) src.offset();
        int outBase = (int) dst.offset();
        if (src.ordering() == 'f') {
            // src[b, j, t] at b + B·j + B·n·t: time step t is the column-major [B, n] block at B·n·t,
            // and its rows b + B·t are the B consecutive rows of dst from B·t
            float[] block = new float[batch * n];
            float[] rows = new float[batch * n];
            for (int t = 0; t < steps; t++) {
                in.get(inBase + t * batch * n, block, 0, batch * n);
                for (int b = 0; b < batch; b++) {
                    for (int j = 0; j < n; j++) {
                        rows[b * n + j] = block[b + batch * j];
                    }
                }
                out.put(outBase + t * batch * n, rows, 0, batch * n);
            }
            return true;
        }
        float[] sequence = new float[n * steps];
        float[] row = new float[n];
        for (int b = 0; b < batch; b++) {
            in.get(inBase + b * n * steps, sequence, 0, n * steps);
            for (int t = 0; t < steps; t++) {
                for (int j = 0; j < n; j++) {
                    row[j] = sequence[j * steps + t];
                }
                out.put(outBase + (b + batch * t) * n, row, 0, n);
            }
        }
        return true;
    }

    /**
     * The elements of {@code v} in {@code 'c'} order as doubles: straight from the host buffer when
     * contiguous, or, for a vector, read at its element stride. The per-row masks reach the layers
     * as {@code [rows, 1]} views in {@code 'f'} order whose strides are not the default ones; going
     * through {@code castTo}/{@code dup} for them cost two ND4J allocations and ops per masked layer
     * call (1.4 % of a batch-1 encoder forward).
     */
    private static double[] values(INDArray v) {
        int len = (int) v.length();
        double[] d = new double[len];
        if (contiguous(v) && (v.ordering() == 'c' || v.isVector() || v.length() == 1)) {
            int base = (int) v.offset();
            if (v.dataType() == DataType.DOUBLE) {
                v.data().asNioDouble().get(base, d, 0, len);
            } else {
                float[] f = new float[len];
                v.data().asNioFloat().get(base, f, 0, len);
                for (int i = 0; i < len; i++) {
                    d[i] = f[i];
                }
            }
            return d;
        }
        long step = vectorStride(v);
        if (HOST && step > 0 && (v.dataType() == DataType.FLOAT || v.dataType() == DataType.DOUBLE)) {
            long last = v.offset() + (len - 1) * step;
            if (v.dataType() == DataType.FLOAT) {
                FloatBuffer buf = v.data().asNioFloat();
                if (last < buf.capacity()) {
                    for (int i = 0; i < len; i++) {
                        d[i] = buf.get((int) (v.offset() + i * step));
                    }
                    return d;
                }
            } else {
                DoubleBuffer buf = v.data().asNioDouble();
                if (last < buf.capacity()) {
                    for (int i = 0; i < len; i++) {
                        d[i] = buf.get((int) (v.offset() + i * step));
                    }
                    return d;
                }
            }
        }
        return v.castTo(DataType.DOUBLE).dup('c').data().asDouble();
    }

    /**
     * The buffer distance between consecutive elements of a vector ({@code [n]}, {@code [n, 1]} or
     * {@code [1, n]}, any rank with at most one dimension longer than 1), or -1 for anything else.
     */
    private static long vectorStride(INDArray v) {
        if (v.length() <= 1 || v.length() > Integer.MAX_VALUE) {
            return -1;
        }
        long step = -1;
        for (int i = 0; i < v.rank(); i++) {
            if (v.size(i) > 1) {
                if (step != -1) {
                    return -1;
                }
                step = v.stride(i);
            }
        }
        return step;
    }
}
