package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

class SafeTensorTest {

    @Test
    void byteSizesMatchTheFormat() {
        assertEquals(8, DType.F64.byteSize());
        assertEquals(4, DType.F32.byteSize());
        assertEquals(2, DType.F16.byteSize());
        assertEquals(2, DType.BF16.byteSize());
        assertEquals(8, DType.I64.byteSize());
        assertEquals(4, DType.I32.byteSize());
        assertEquals(2, DType.I16.byteSize());
        assertEquals(1, DType.I8.byteSize());
        assertEquals(1, DType.U8.byteSize());
        assertEquals(1, DType.BOOL.byteSize());
    }

    @Test
    void factoriesRejectDataThatDoesNotMatchTheShape() {
        assertThrows(IllegalArgumentException.class,
                () -> SafeTensor.ofFloats(new long[] {2, 2}, new float[3]));
        assertThrows(IllegalArgumentException.class,
                () -> SafeTensor.ofBytes(DType.F16, new long[] {2}, new byte[3]));
        assertThrows(IllegalArgumentException.class,
                () -> SafeTensor.ofFloats(new long[] {-1}, new float[0]));
        assertThrows(IllegalArgumentException.class,
                () -> SafeTensor.ofBytes(DType.F64, new long[] {1L << 61}, new byte[0]));
    }

    @Test
    void factoriesCopyTheirInputs() {
        long[] shape = {2};
        byte[] data = {1, 2};
        SafeTensor t = SafeTensor.ofBytes(DType.U8, shape, data);
        shape[0] = 5;
        data[0] = 9;
        assertArrayEquals(new long[] {2}, t.shape());
        assertArrayEquals(new byte[] {1, 2}, t.rawBytes());
    }

    @Test
    void toFloatsOnIntegerTensorThrowsIllegalState() {
        SafeTensor t = SafeTensor.ofBytes(DType.I32, new long[] {1}, new byte[4]);
        IllegalStateException e = assertThrows(IllegalStateException.class, t::toFloats);
        assertTrue(e.getMessage().contains("I32"), e.getMessage());
    }

    @Test
    void f64NarrowsToFloatByRoundingToNearest() {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putDouble(0.1).putDouble(1e300);
        float[] f = SafeTensor.ofBytes(DType.F64, new long[] {2}, b.array()).toFloats();
        assertEquals((float) 0.1, f[0]);
        assertEquals(Float.POSITIVE_INFINITY, f[1]);
    }

    /** Every non-NaN half agrees with ND4J's own half conversion, in both directions. */
    @Test
    void halfToFloatAgreesWithNd4jForEveryNonNanHalf() {
        int n = 0;
        float[] floats = new float[65536];
        short[] halves = new short[65536];
        for (int h = 0; h < 65536; h++) {
            boolean nan = ((h >>> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0;
            if (!nan) {
                halves[n] = (short) h;
                floats[n++] = SafeTensor.halfToFloat(h);
            }
        }
        float[] f = java.util.Arrays.copyOf(floats, n);
        INDArray asHalf = Nd4j.createFromArray(f).castTo(DataType.HALF);
        SafeTensor t = SafeTensor.of(asHalf);
        assertEquals(DType.F16, t.dtype());
        ByteBuffer raw = ByteBuffer.wrap(t.rawBytes()).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            assertEquals(halves[i], raw.getShort(i * 2), "half bits at " + i + " for " + f[i]);
        }
        assertArrayEquals(f, t.toFloats());
    }

    @Test
    void indArrayRoundTripsKeepShapeOrderAndType() {
        INDArray f = Nd4j.createFromArray(new float[][] {{1, 2, 3}, {4, 5, 6}});
        SafeTensor t = SafeTensor.of(f);
        assertEquals(DType.F32, t.dtype());
        assertArrayEquals(new long[] {2, 3}, t.shape());
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, t.toFloats());
        assertEquals(f, t.toINDArray(DataType.FLOAT));

        // A transposed ('f'-ordered view) array is written in C order of its logical shape.
        SafeTensor tr = SafeTensor.of(f.transpose());
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, tr.toFloats());

        INDArray d = Nd4j.createFromArray(new double[][] {{0.1, -2}, {3e-300, 4}});
        SafeTensor td = SafeTensor.of(d);
        assertEquals(DType.F64, td.dtype());
        assertEquals(d, td.toINDArray(DataType.DOUBLE));

        INDArray h = f.castTo(DataType.HALF);
        assertEquals(DType.F16, SafeTensor.of(h).dtype());
        assertEquals(h, SafeTensor.of(h).toINDArray(DataType.HALF));

        INDArray i = Nd4j.createFromArray(new int[][] {{-1, 2}, {Integer.MAX_VALUE, 0}});
        assertEquals(i, SafeTensor.of(i).toINDArray(DataType.INT));
        INDArray l = Nd4j.createFromArray(new long[] {Long.MIN_VALUE, 7});
        assertEquals(l, SafeTensor.of(l).toINDArray(DataType.LONG));
        INDArray bools = Nd4j.createFromArray(new boolean[] {true, false, true});
        assertEquals(bools, SafeTensor.of(bools).toINDArray(DataType.BOOL));

        // Casting on the way out.
        INDArray asDouble = t.toINDArray(DataType.DOUBLE);
        assertEquals(DataType.DOUBLE, asDouble.dataType());
        assertEquals(f.castTo(DataType.DOUBLE), asDouble);
    }

    @Test
    void u8AndI8ConvertToIndArrayWithTheirSign() {
        SafeTensor u = SafeTensor.ofBytes(DType.U8, new long[] {2}, new byte[] {(byte) 255, 1});
        SafeTensor s = SafeTensor.ofBytes(DType.I8, new long[] {2}, new byte[] {(byte) 255, 1});
        assertArrayEquals(new int[] {255, 1}, u.toINDArray(DataType.INT).toIntVector());
        assertArrayEquals(new int[] {-1, 1}, s.toINDArray(DataType.INT).toIntVector());
    }

    @Test
    void scalarAndEmptyTensorsConvertToIndArrays() {
        SafeTensor scalar = SafeTensor.ofFloats(new long[] {}, new float[] {2.5f});
        INDArray a = scalar.toINDArray(DataType.FLOAT);
        assertEquals(0, a.rank());
        assertEquals(2.5f, a.getFloat(0));
        assertEquals(scalar, SafeTensor.of(a));

        SafeTensor empty = SafeTensor.ofFloats(new long[] {0, 3}, new float[0]);
        INDArray e = empty.toINDArray(DataType.FLOAT);
        assertEquals(0, e.length());
        assertArrayEquals(new long[] {0, 3}, e.shape());
    }
}
