package org.peft4j.core.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One tensor as a safetensors file stores it: a {@link DType}, a shape and the elements in C
 * (row-major) order as little-endian bytes. A shape of {@code []} is a scalar (one element); a
 * shape containing {@code 0} has no elements and no bytes.
 *
 * <p>Instances are immutable: the factories copy the arrays they are given and every accessor
 * returns a fresh copy, so a caller can never change a tensor after it was built.
 *
 * <p>Thread-safety: immutable, safe to share between threads.
 */
public final class SafeTensor {

    private final DType dtype;
    private final long[] shape;
    private final byte[] data;

    /** Takes ownership of {@code shape} and {@code data}; callers pass private copies. */
    private SafeTensor(DType dtype, long[] shape, byte[] data) {
        this.dtype = dtype;
        this.shape = shape;
        this.data = data;
    }

    /**
     * An {@link DType#F32} tensor.
     *
     * @param shape the shape, every entry {@code >= 0}; {@code []} for a scalar
     * @param data the elements in C order; its length must be the product of {@code shape}
     * @throws IllegalArgumentException if the shape is negative or does not match the data length
     */
    public static SafeTensor ofFloats(long[] shape, float[] data) {
        Objects.requireNonNull(data, "data");
        long[] s = checkedShape(shape);
        long count = elementCountOrThrow(s);
        if (count != data.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " holds " + count
                    + " elements but " + data.length + " floats were given");
        }
        ByteBuffer buf = ByteBuffer.allocate(Math.multiplyExact(data.length, 4))
                .order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(data);
        return new SafeTensor(DType.F32, s, buf.array());
    }

    /**
     * A tensor of any dtype from its raw little-endian bytes in C order.
     *
     * @throws IllegalArgumentException if the shape is negative or {@code littleEndianData} does
     *     not hold exactly (product of shape) × {@code dtype.byteSize()} bytes
     */
    public static SafeTensor ofBytes(DType dtype, long[] shape, byte[] littleEndianData) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(littleEndianData, "littleEndianData");
        long[] s = checkedShape(shape);
        long count = elementCountOrThrow(s);
        long bytes;
        try {
            bytes = Math.multiplyExact(count, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " of " + dtype
                    + " needs more than 2^63-1 bytes", e);
        }
        if (bytes != littleEndianData.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " of " + dtype
                    + " needs " + bytes + " bytes but " + littleEndianData.length
                    + " were given");
        }
        return new SafeTensor(dtype, s, littleEndianData.clone());
    }

    /**
     * A copy of an ND4J array in C order. The dtype follows the array's data type: DOUBLE → F64,
     * FLOAT → F32, HALF → F16, BFLOAT16 → BF16, LONG → I64, INT → I32, SHORT → I16, BYTE → I8,
     * UBYTE → U8, BOOL → BOOL. Values are copied bit for bit.
     *
     * @throws IllegalArgumentException for any other data type (e.g. UTF8, UINT32)
     */
    public static SafeTensor of(INDArray array) {
        Objects.requireNonNull(array, "array");
        DType dtype = dtypeOf(array.dataType());
        long[] shape = array.shape().clone();
        long count = elementCountOrThrow(shape);
        int size = dtype.byteSize();
        if (count == 0) {
            return new SafeTensor(dtype, shape, new byte[0]);
        }
        long nbytes = count * size; // cannot overflow: ND4J already holds that many bytes
        if (nbytes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("array of shape " + Arrays.toString(shape) + " ("
                    + nbytes + " bytes) is too large for one safetensors tensor in memory");
        }
        INDArray c = array.dup('c');
        ByteBuffer src = c.data().asNio().order(ByteOrder.nativeOrder());
        src.position(0);
        byte[] out = new byte[(int) nbytes];
        ByteBuffer dst = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) count;
        switch (size) {
            case 1 -> src.get(out, 0, n);
            case 2 -> {
                for (int i = 0; i < n; i++) {
                    dst.putShort(i * 2, src.getShort(i * 2));
                }
            }
            case 4 -> {
                for (int i = 0; i < n; i++) {
                    dst.putInt(i * 4, src.getInt(i * 4));
                }
            }
            case 8 -> {
                for (int i = 0; i < n; i++) {
                    dst.putLong(i * 8, src.getLong(i * 8));
                }
            }
            default -> throw new AssertionError("element size " + size);
        }
        return new SafeTensor(dtype, shape, out);
    }

    /** Wraps bytes the reader already copied out of a file; no further copy. */
    static SafeTensor ofOwnedBytes(DType dtype, long[] shape, byte[] data) {
        return new SafeTensor(dtype, shape, data);
    }

    /** The element type. */
    public DType dtype() {
        return dtype;
    }

    /** A copy of the shape ({@code []} for a scalar). */
    public long[] shape() {
        return shape.clone();
    }

    /** Number of elements: the product of the shape (1 for a scalar). */
    public long elementCount() {
        return data.length / dtype.byteSize();
    }

    /** Number of data bytes, without copying them. */
    public int byteLength() {
        return data.length;
    }

    /** A copy of the elements as little-endian bytes in C order. */
    public byte[] rawBytes() {
        return data.clone();
    }

    /** The data bytes themselves, for writers in this package; never hand this out. */
    byte[] internalBytes() {
        return data;
    }

    /**
     * The elements as floats in C order. F32 is returned as stored; F16 and BF16 are widened,
     * which is exact (every F16 and BF16 value, including subnormals, infinities and NaN
     * payloads, is representable as a float); F64 is narrowed with IEEE round-to-nearest-even,
     * as a Java {@code (float)} cast does.
     *
     * @throws IllegalStateException if the dtype is not one of F32, F16, BF16, F64
     */
    public float[] toFloats() {
        int n = (int) elementCount();
        float[] out = new float[n];
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().get(out);
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = (float) b.getDouble(i * 8);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = halfToFloat(b.getShort(i * 2) & 0xFFFF);
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((b.getShort(i * 2) & 0xFFFF) << 16);
                }
            }
            default -> throw new IllegalStateException("tensor has dtype " + dtype
                    + ", expected a floating-point dtype (F32, F16, BF16 or F64) for toFloats();"
                    + " use rawBytes() or toINDArray() instead");
        }
        return out;
    }

    /**
     * The tensor as a new ND4J array of the given data type, in C order, with this tensor's
     * shape. Integer and boolean tensors are converted exactly; floating-point tensors go through
     * float (F32, F16, BF16) or double (F64) and are then cast to {@code type} by ND4J.
     *
     * @throws IllegalArgumentException if ND4J cannot represent the shape (e.g. rank above 32)
     */
    public INDArray toINDArray(DataType type) {
        Objects.requireNonNull(type, "type");
        long[] s = shape.clone();
        long[] strides = Nd4j.getStrides(s, 'c');
        int n = (int) elementCount();
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        INDArray arr;
        if (n == 0) {
            arr = Nd4j.create(type, s);
            return arr;
        }
        switch (dtype) {
            case F32, F16, BF16 -> arr = Nd4j.create(toFloats(), s, strides, 'c', DataType.FLOAT);
            case F64 -> {
                double[] d = new double[n];
                b.asDoubleBuffer().get(d);
                arr = Nd4j.create(d, s, strides, 'c', DataType.DOUBLE);
            }
            case I64 -> {
                long[] l = new long[n];
                b.asLongBuffer().get(l);
                arr = Nd4j.create(l, s, strides, 'c', DataType.LONG);
            }
            case I32, I16, I8, U8 -> {
                int[] v = new int[n];
                for (int i = 0; i < n; i++) {
                    v[i] = switch (dtype) {
                        case I32 -> b.getInt(i * 4);
                        case I16 -> b.getShort(i * 2);
                        case I8 -> data[i];
                        default -> data[i] & 0xFF;
                    };
                }
                arr = Nd4j.create(v, s, strides, 'c', DataType.INT);
            }
            case BOOL -> {
                boolean[] v = new boolean[n];
                for (int i = 0; i < n; i++) {
                    v[i] = data[i] != 0;
                }
                arr = Nd4j.create(v, s, strides, 'c', DataType.BOOL);
            }
            default -> throw new AssertionError(dtype);
        }
        return arr.dataType() == type ? arr : arr.castTo(type);
    }

    /** Exact IEEE 754 binary16 → binary32 widening. */
    static float halfToFloat(int h) {
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0x1F) { // infinity or NaN, payload kept
            return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        }
        if (exp == 0) { // zero or subnormal: mant × 2^-24, exact in float
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }

    static DType dtypeOf(DataType t) {
        return switch (t) {
            case DOUBLE -> DType.F64;
            case FLOAT -> DType.F32;
            case HALF -> DType.F16;
            case BFLOAT16 -> DType.BF16;
            case LONG -> DType.I64;
            case INT -> DType.I32;
            case SHORT -> DType.I16;
            case BYTE -> DType.I8;
            case UBYTE -> DType.U8;
            case BOOL -> DType.BOOL;
            default -> throw new IllegalArgumentException("ND4J data type " + t
                    + " has no safetensors dtype; supported: DOUBLE, FLOAT, HALF, BFLOAT16, LONG,"
                    + " INT, SHORT, BYTE, UBYTE, BOOL");
        };
    }

    private static long[] checkedShape(long[] shape) {
        Objects.requireNonNull(shape, "shape");
        long[] s = shape.clone();
        for (int i = 0; i < s.length; i++) {
            if (s[i] < 0) {
                throw new IllegalArgumentException("shape " + Arrays.toString(s)
                        + " has a negative dimension at index " + i);
            }
        }
        return s;
    }

    private static long elementCountOrThrow(long[] shape) {
        try {
            return elementCount(shape);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape)
                    + " has more than 2^63-1 elements", e);
        }
    }

    /** Product of the shape with overflow checking; throws ArithmeticException on overflow. */
    static long elementCount(long[] shape) {
        long count = 1;
        for (long d : shape) {
            count = Math.multiplyExact(count, d);
        }
        return count;
    }

    /** Equal dtype, shape and bytes. */
    @Override
    public boolean equals(Object o) {
        return o instanceof SafeTensor t && dtype == t.dtype && Arrays.equals(shape, t.shape)
                && Arrays.equals(data, t.data);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * dtype.hashCode() + Arrays.hashCode(shape)) + Arrays.hashCode(data);
    }

    /** For example {@code SafeTensor[dtype=F32, shape=[2, 3], bytes=24]}. */
    @Override
    public String toString() {
        return "SafeTensor[dtype=" + dtype + ", shape=" + Arrays.toString(shape) + ", bytes="
                + data.length + "]";
    }
}
