package org.peft4j.core.spi;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Heap access to dense float32 matrices held by ND4J, for the small products where one ND4J call
 * costs more than the arithmetic (on nd4j-native 1.0.0-M2.1 any op, even a {@code [1, 1024]}
 * row-vector add, takes a fixed 15–35 µs; a bulk copy of a 1024 × 8 matrix out of its buffer takes
 * about 1 µs).
 *
 * <p>A matrix is read and written in its buffer order, from its offset: views of a flattened
 * parameter vector (as DL4J hands layers their parameters) work in either ordering. Element
 * {@code (r, c)} of the copy is at {@code r · rowStride(m) + c · colStride(m)}.
 *
 * <p>Thread-safety: stateless; concurrent writes to one array are the caller's business.
 */
public final class DenseFloats {

    private DenseFloats() {
    }

    /** Whether {@code m} is a float32 matrix whose elements fill one contiguous run of its buffer ('c' or 'f'). */
    public static boolean isDense(INDArray m) {
        if (m.dataType() != DataType.FLOAT || m.rank() != 2) {
            return false;
        }
        long rows = m.size(0);
        long cols = m.size(1);
        long s0 = m.stride(0);
        long s1 = m.stride(1);
        boolean cOrder = (cols == 1 || s1 == 1) && (rows == 1 || s0 == cols);
        boolean fOrder = (rows == 1 || s0 == 1) && (cols == 1 || s1 == rows);
        return (cOrder || fOrder) && m.offset() + m.length() <= m.data().asNioFloat().capacity();
    }

    /** The elements of a dense matrix in buffer order (a new array). */
    public static float[] read(INDArray m) {
        float[] out = new float[(int) m.length()];
        m.data().asNioFloat().get((int) m.offset(), out, 0, out.length);
        return out;
    }

    /** Overwrites a dense matrix with {@code values} given in its buffer order. */
    public static void write(INDArray m, float[] values) {
        m.data().asNioFloat().put((int) m.offset(), values, 0, (int) m.length());
    }

    /** Distance between rows in the array {@link #read} returns. */
    public static int rowStride(INDArray m) {
        return m.size(0) == 1 ? (int) m.size(1) : (int) m.stride(0);
    }

    /** Distance between columns in the array {@link #read} returns. */
    public static int colStride(INDArray m) {
        return m.size(1) == 1 ? 1 : (int) m.stride(1);
    }
}
