package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class BadInputTest {

    @Test
    void nanIsRejectedWithItsIndex() {
        float[] x = new float[100];
        x[77] = Float.NaN;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantizedTensor.quantize(x, new long[] {100}, QuantSpec.nf4()));
        assertTrue(e.getMessage().contains("77") && e.getMessage().contains("NaN"), e.getMessage());
    }

    @Test
    void infinityIsRejectedWithItsIndex() {
        float[] x = new float[100];
        x[3] = Float.NEGATIVE_INFINITY;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantizedTensor.quantize(x, new long[] {100}, QuantSpec.nf4()));
        assertTrue(e.getMessage().contains("index 3") && e.getMessage().contains("Infinity"), e.getMessage());
    }

    @Test
    void blockSizeMustBeAPowerOfTwoInRange() {
        for (int bad : new int[] {0, 16, 48, 100, 8192, -64}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new QuantSpec(QuantType.NF4, bad, false));
            assertTrue(e.getMessage().contains("block size was " + bad), e.getMessage());
        }
        assertEquals(32, new QuantSpec(QuantType.NF4, 32, false).blockSize());
        assertEquals(4096, new QuantSpec(QuantType.NF4, 4096, false).blockSize());
    }

    @Test
    void oddElementCountIsPaddedToWholeBytes() {
        QuantizedTensor q = QuantizedTensor.quantize(new float[] {1f, -1f, 0.5f}, new long[] {3},
                new QuantSpec(QuantType.NF4, 64, false));
        byte[] p = q.packedCodes();
        assertEquals(2, p.length);
        assertEquals(0x7, p[1] & 0xF, "padding nibble is the code of 0.0");
        assertEquals(3, q.dequantize().length);
    }

    @Test
    void packedBufferMustMatchTheShape() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantizedTensor.fromParts(QuantType.NF4, 64, new long[] {10, 10}, new byte[49], new float[2]));
        assertTrue(e.getMessage().contains("49 bytes") && e.getMessage().contains("needs 50"), e.getMessage());
    }

    @Test
    void absmaxCountMustMatchTheBlocks() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantizedTensor.fromParts(QuantType.NF4, 64, new long[] {10, 10}, new byte[50], new float[1]));
        assertTrue(e.getMessage().contains("need 2"), e.getMessage());
    }

    @Test
    void dataLengthMustMatchTheShape() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantizedTensor.quantize(new float[5], new long[] {2, 3}, QuantSpec.nf4()));
        assertTrue(e.getMessage().contains("5 elements") && e.getMessage().contains("needs 6"), e.getMessage());
    }

    @Test
    void matmulRejectsMismatchedShapes() {
        QuantizedTensor w = QuantizedTensor.quantize(new float[64 * 3], new long[] {64, 3}, QuantSpec.nf4());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantizedMatmul.gemv(new float[63], w, new float[3]));
        assertTrue(e.getMessage().contains("length 63") && e.getMessage().contains("expected 64"), e.getMessage());
    }
}
