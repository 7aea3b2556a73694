package org.peft4j.core.blocks.internal;

import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;

/**
 * Block-wise heap access to the elements of a float32 or float64 ND4J array whose elements fill one
 * contiguous run of its host buffer (default strides), in buffer order, as {@code double}s: the I/O
 * of the row kernels of this package, which compute in double whatever the array's type (so the
 * double-precision gradient checks run the same code as float training).
 *
 * <p>Why: every ND4J op on nd4j-native 1.0.0-M2.1 costs a fixed 15–35 µs plus a pass over its
 * operands, and row statistics need several; a bulk copy of a block to the heap costs about as
 * much as one pass.
 *
 * <p>Thread-safety: an instance is used by one thread; it holds its scratch buffer.
 */
final class HostRows {
    private final INDArray array;
    private final boolean isFloat;
    private final FloatBuffer floats;
    private final DoubleBuffer doubles;
    private final int base;
    private float[] scratch;

    private HostRows(INDArray array) {
        this.array = array;
        this.isFloat = array.dataType() == DataType.FLOAT;
        this.floats = isFloat ? array.data().asNioFloat() : null;
        this.doubles = isFloat ? null : array.data().asNioDouble();
        this.base = (int) array.offset();
    }

    /**
     * Whether {@code a} is float32 or float64, with default strides, within one int-indexed buffer.
     * The buffer's extent is its underlying length, the capacity of the NIO view that
     * {@code asNioFloat()} would give; that view is not created here, as each one costs a JNI call
     * and a direct-buffer object (1–2 µs; this check runs several times per dense layer call, 0.3 %
     * of a MiniLM-sized one-thread LoRA step when it created the view).
     */
    static boolean accessible(INDArray a) {
        DataType t = a.dataType();
        if ((t != DataType.FLOAT && t != DataType.DOUBLE) || a.length() == 0
                || !Shape.hasDefaultStridesForShape(a)) {
            return false;
        }
        long capacity = a.data().underlyingLength();
        return capacity <= Integer.MAX_VALUE && a.offset() + a.length() <= capacity;
    }

    /** Access to {@code a}, which must be {@link #accessible}. */
    static HostRows of(INDArray a) {
        if (!accessible(a)) {
            throw new IllegalArgumentException("not a contiguous float32/float64 array: " + a.dataType() + " "
                    + java.util.Arrays.toString(a.shape()) + " strides " + java.util.Arrays.toString(a.stride()));
        }
        return new HostRows(a);
    }

    /** The array, 'c' ordered and contiguous (itself if it already is, else a copy). */
    static INDArray cRows(INDArray a) {
        return a.ordering() == 'c' && accessible(a) ? a : a.dup('c');
    }

    private float[] scratch(int len) {
        if (scratch == null || scratch.length < len) {
            scratch = new float[len];
        }
        return scratch;
    }

    /** Elements {@code [from, from + len)} (buffer order) into {@code dst[0, len)}. */
    void read(long from, double[] dst, int len) {
        int at = Math.toIntExact(base + from);
        if (isFloat) {
            float[] f = scratch(len);
            floats.get(at, f, 0, len);
            for (int i = 0; i < len; i++) {
                dst[i] = f[i];
            }
        } else {
            doubles.get(at, dst, 0, len);
        }
    }

    /** {@code src[0, len)} into elements {@code [from, from + len)} (rounded to float32 for a float array). */
    void write(long from, double[] src, int len) {
        int at = Math.toIntExact(base + from);
        if (isFloat) {
            float[] f = scratch(len);
            for (int i = 0; i < len; i++) {
                f[i] = (float) src[i];
            }
            floats.put(at, f, 0, len);
        } else {
            doubles.put(at, src, 0, len);
        }
    }

    /** All elements, in buffer order (for small arrays: parameters). */
    double[] readAll() {
        double[] out = new double[(int) array.length()];
        read(0, out, out.length);
        return out;
    }
}
