package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Packed bytes and scales worked out by hand from the NF4/FP4 tables and their midpoints. */
class HandComputedVectorsTest {

    private static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    private static byte[] fill(byte[] dst, int from, int to, int value) {
        for (int i = from; i < to; i++) {
            dst[i] = (byte) value;
        }
        return dst;
    }

    @Test
    void nf4BlocksOfThirtyTwoGiveHandComputedBytes() {
        float[] x = new float[101];
        // Block 0: absmax 2 → reciprocal 0.5 exactly.
        x[0] = 2.0f;                      // 1.0 → code 15
        x[1] = -0.0f;                     // -0.0 → code 7 (0.0)
        x[2] = 0.240510493516922f;        // 2 × midpoint(code 8, code 9) → exactly on it → lower, 8
        x[3] = 0.2405105084180832f;       // next float above that midpoint → 9
        x[4] = -0.09105003625154495f;     // 2 × midpoint(code 6, code 7) → on it → lower, 6
        // Block 1 (32..63): all zeros → absmax 0, codes of 0.0 (7).
        // Block 2 (64..95): one huge outlier.
        x[64] = -1e30f;                   // -1.0 → code 0
        x[65] = 1.0f;                     // 1e-30 → code 7
        x[66] = -5e29f;                   // -0.5, between -0.5251 (2) and -0.3949 (3), midpoint -0.46 → 2
        // Block 3 (96..100): partial, odd length → padded with code 7.
        x[96] = 0.5f;                     // 1.0 → 15
        x[97] = -0.25f;                   // -0.5 → 2
        x[98] = 0.1f;                     // 0.2 < midpoint(9, 10) = 0.2035 → 9
        x[100] = 0.5f;                    // 15, then padding 7

        QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {1, 101}, new QuantSpec(QuantType.NF4, 32, false));

        byte[] expected = fill(new byte[51], 0, 51, 0x77);
        expected[0] = (byte) 0xF7;
        expected[1] = (byte) 0x89;
        expected[2] = (byte) 0x67;
        expected[32] = (byte) 0x07;
        expected[33] = (byte) 0x27;
        expected[48] = (byte) 0xF2;
        expected[49] = (byte) 0x97;
        expected[50] = (byte) 0xF7;
        assertArrayEquals(expected, q.packedCodes());
        assertArrayEquals(new float[] {2.0f, 0.0f, 1e30f, 0.5f}, q.absmax(), 0f);

        float[] d = q.dequantize();
        assertEquals(2.0f, d[0], 0f);
        assertEquals(0.0f, d[1], 0f);
        assertEquals(0.07958029955625534f * 2f, d[2], 0f);
        assertEquals(-0.09105003625154495f * 2f, d[4], 0f);
        assertEquals(0.0f, d[40], 0f);
        assertEquals(-1e30f, d[64], 0f);
        assertEquals(0.0f, d[65], 0f);
        assertEquals(0.16093020141124725f * 0.5f, d[98], 0f);
    }

    @Test
    void fp4BlockGivesHandComputedBytes() {
        float[] x = new float[32];
        x[0] = 12f;    // ≈1.0 → magnitude code 3
        x[1] = -6f;    // -0.5 → sign bit + code 5 = 13
        x[2] = 1f;     // 1/12 ≈ 0.0833 < midpoint(0.0052, 0.1667) ≈ 0.0859 → code 1
        x[3] = -0.0f;  // → code 0
        QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {32}, new QuantSpec(QuantType.FP4, 32, false));
        byte[] expected = new byte[16];
        expected[0] = (byte) 0x3D;
        expected[1] = (byte) 0x10;
        assertArrayEquals(expected, q.packedCodes());
        assertArrayEquals(new float[] {12f}, q.absmax(), 0f);
        float[] d = q.dequantize();
        assertEquals(12f, d[0], 0f);
        assertEquals(-6f, d[1], 0f);
        assertEquals(0.0625f, d[2], 1e-7f);
    }

    @Test
    void doubleQuantizationOfTwoBlocksGivesHandComputedState() {
        // Block absmax 1 and 3 → offset 2, centred -1 and 1 → nested absmax 1,
        // codes: -1 clamps to the map's minimum -0.99296874 (code 0), 1 is code 255.
        float[] x = new float[64];
        x[0] = 1f;
        x[32] = 3f;
        QuantizedTensor q = QuantizedTensor.quantize(x, new long[] {64}, new QuantSpec(QuantType.NF4, 32, true));
        assertArrayEquals(bytes(0x00, 0xFF), q.absmaxCodes());
        assertArrayEquals(new float[] {1f}, q.nestedAbsmax(), 0f);
        assertEquals(2f, q.offset(), 0f);
        assertArrayEquals(new float[] {-0.992968738079071f + 2f, 3f}, q.absmax(), 0f);
        // 64 codes (32 B) + 2 absmax codes + 1 nested float + 1 offset float.
        assertEquals(32 + 2 + 4 + 4, q.memoryBytes());
    }
}
