package org.peft4j.core.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One tensor of a safetensors file: dtype, shape and its raw little-endian bytes in row-major
 * (C) order.
 *
 * <p>Thread-safety: immutable (every accessor returns a copy).
 */
public final class SafeTensor {

    private final DType dtype;
    private final long[] shape;
    private final byte[] data;

    private SafeTensor(DType dtype, long[] shape, byte[] data) {
        this.dtype = dtype;
        this.shape = shape;
        this.data = data;
    }

    /** Number of elements of {@code shape}, overflow-checked. */
    static long elementCount(long[] shape) {
        long n = 1;
        for (long s : shape) {
            if (s < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, s);
        }
        return n;
    }

    /** An F32 tensor. */
    public static SafeTensor ofFloats(long[] shape, float[] values) {
        Objects.requireNonNull(values, "values");
        long[] s = shape.clone();
        if (elementCount(s) != values.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " holds " + elementCount(s)
                    + " elements; got " + values.length + " values");
        }
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return new SafeTensor(DType.F32, s, b.array());
    }

    /** A tensor from raw little-endian bytes. */
    public static SafeTensor ofBytes(DType dtype, long[] shape, byte[] littleEndianData) {
        Objects.requireNonNull(dtype, "dtype");
        long[] s = shape.clone();
        long bytes = Math.multiplyExact(elementCount(s), (long) dtype.byteSize());
        if (bytes != littleEndianData.length) {
            throw new IllegalArgumentException(dtype + " shape " + Arrays.toString(s) + " needs " + bytes + " bytes; got "
                    + littleEndianData.length);
        }
        return new SafeTensor(dtype, s, littleEndianData.clone());
    }

    /** A copy of an ND4J array (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL), in C order. */
    public static SafeTensor of(INDArray array) {
        INDArray c = array.dup('c');
        long[] shape = c.shape();
        long n = c.length();
        ByteBuffer b;
        switch (c.dataType()) {
            case FLOAT:
                return ofFloats(shape, c.data().asFloat());
            case DOUBLE: {
                double[] v = c.data().asDouble();
                b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
                b.asDoubleBuffer().put(v);
                return new SafeTensor(DType.F64, shape, b.array());
            }
            case HALF:
            case BFLOAT16: {
                float[] v = c.castTo(DataType.FLOAT).data().asFloat();
                b = ByteBuffer.allocate((int) n * 2).order(ByteOrder.LITTLE_ENDIAN);
                boolean half = c.dataType() == DataType.HALF;
                for (float f : v) {
                    b.putShort(half ? floatToHalf(f) : (short) (Float.floatToRawIntBits(f) >>> 16));
                }
                return new SafeTensor(half ? DType.F16 : DType.BF16, shape, b.array());
            }
            case LONG: {
                long[] v = c.data().asLong();
                b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
                b.asLongBuffer().put(v);
                return new SafeTensor(DType.I64, shape, b.array());
            }
            case INT: {
                int[] v = c.data().asInt();
                b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                b.asIntBuffer().put(v);
                return new SafeTensor(DType.I32, shape, b.array());
            }
            case BYTE:
            case UBYTE:
            case BOOL: {
                int[] v = c.castTo(DataType.INT).data().asInt();
                byte[] out = new byte[v.length];
                for (int i = 0; i < v.length; i++) {
                    out[i] = (byte) v[i];
                }
                DType t = c.dataType() == DataType.BYTE ? DType.I8 : c.dataType() == DataType.UBYTE ? DType.U8 : DType.BOOL;
                return new SafeTensor(t, shape, out);
            }
            default:
                throw new IllegalArgumentException("no safetensors dtype for ND4J type " + c.dataType());
        }
    }

    public DType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public long elementCount() {
        return elementCount(shape);
    }

    /** The raw little-endian bytes (a copy). */
    public byte[] rawBytes() {
        return data.clone();
    }

    /** Byte count without copying. */
    public int byteLength() {
        return data.length;
    }

    byte[] rawBytesNoCopy() {
        return data;
    }

    /**
     * The values as floats: F32 as is, F16 and BF16 widened exactly, F64 rounded to nearest.
     *
     * @throws IllegalStateException for integer and boolean dtypes
     */
    public float[] toFloats() {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) elementCount();
        float[] out = new float[n];
        switch (dtype) {
            case F32:
                b.asFloatBuffer().get(out);
                return out;
            case F16:
                for (int i = 0; i < n; i++) {
                    out[i] = halfToFloat(b.getShort(2 * i));
                }
                return out;
            case BF16:
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xFFFF) << 16);
                }
                return out;
            case F64:
                for (int i = 0; i < n; i++) {
                    out[i] = (float) b.getDouble(8 * i);
                }
                return out;
            default:
                throw new IllegalStateException("a " + dtype + " tensor has no float values");
        }
    }

    /** The tensor as an ND4J array of {@code type} (float dtypes only), C order, its shape. */
    public INDArray toINDArray(DataType type) {
        if (dtype == DType.F64) {
            double[] v = new double[(int) elementCount()];
            ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(v);
            return Nd4j.create(v, shape, 'c').castTo(type);
        }
        return Nd4j.create(toFloats(), shape, 'c').castTo(type);
    }

    /** IEEE 754 binary16 to float, exact (Java 17 has no {@code Float.float16ToFloat}). */
    static float halfToFloat(short h) {
        int bits = h & 0xFFFF;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1F;
        int mant = bits & 0x3FF;
        if (exp == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        }
        if (exp == 0) {
            float v = mant * 0x1p-24f;
            return sign == 0 ? v : -v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    /** Float to IEEE 754 binary16, rounding to nearest even; overflow gives infinity. */
    static short floatToHalf(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7FFFFFFF;
        if (abs >= 0x7F800000) {
            return (short) (sign | 0x7C00 | (abs > 0x7F800000 ? 0x200 : 0));
        }
        if (abs >= 0x477FF000) {
            return (short) (sign | 0x7C00);
        }
        if (abs < 0x38800000) {
            // subnormal half: value / 2^-24, rounded to nearest even
            float scaled = Float.intBitsToFloat(abs) * 0x1p24f;
            return (short) (sign | (int) Math.rint(scaled));
        }
        int exp = ((abs >>> 23) - 112) << 10;
        int mant = abs & 0x7FFFFF;
        int half = exp | (mant >>> 13);
        int rest = mant & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
            half++;
        }
        return (short) (sign | half);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof SafeTensor)) {
            return false;
        }
        SafeTensor t = (SafeTensor) o;
        return dtype == t.dtype && Arrays.equals(shape, t.shape) && Arrays.equals(data, t.data);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * dtype.hashCode() + Arrays.hashCode(shape)) + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
        return "SafeTensor(" + dtype + " " + Arrays.toString(shape) + ")";
    }
}
