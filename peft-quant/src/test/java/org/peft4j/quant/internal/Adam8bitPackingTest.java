package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/** Four 8-bit codes per float word: exact round trip, and every word a normal finite float. */
class Adam8bitPackingTest {

    @Test
    void everyCodePairRoundTripsThroughNormalFiniteWordsThatSurviveFloatSerialization() throws IOException {
        // every m code against every v code a non-negative moment can have (127 = the map's zero … 255)
        int count = 256 * 129 + 1; // odd: the last word holds one parameter
        byte[] m = new byte[count];
        byte[] v = new byte[count];
        for (int i = 0; i < count; i++) {
            m[i] = (byte) (i % 256);
            v[i] = (byte) (127 + (i / 256) % 129);
        }
        float[] words = new float[(int) Adam8bitUpdater.packedFloats(count)];
        assertEquals((count + 1) / 2, words.length);
        Adam8bitUpdater.pack(m, v, count, words);

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            for (float w : words) {
                int exponent = (Float.floatToRawIntBits(w) >>> 23) & 0xFF;
                assertTrue(exponent >= 1 && exponent <= 129, "normal, finite word: exponent " + exponent);
                out.writeFloat(w); // Float.floatToIntBits: would rewrite a NaN payload
            }
        }
        float[] read = new float[words.length];
        try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            for (int i = 0; i < read.length; i++) {
                read[i] = (float) (double) in.readFloat(); // and through double, as a double network holds it
            }
        }
        byte[] m2 = new byte[count];
        byte[] v2 = new byte[count];
        Adam8bitUpdater.unpack(read, count, m2, v2);
        assertArrayEquals(m, m2);
        assertArrayEquals(v, v2);
    }

    @Test
    void theInitialAllZeroStateReadsAsZeroMoments() {
        byte[] m = new byte[3];
        byte[] v = new byte[3];
        Adam8bitUpdater.unpack(new float[2], 3, m, v);
        float[] mv = new float[3];
        float[] vv = new float[3];
        Blockwise8bit.dequantizeDynamic(m, new float[] {0f}, 256, mv);
        Blockwise8bit.dequantizeDynamic(v, new float[] {0f}, 256, vv);
        assertArrayEquals(new float[3], mv, 0f);
        assertArrayEquals(new float[3], vv, 0f);
        assertEquals(127, v[0] & 0xFF, "the exponent slot of a zero word is v's zero code");
    }
}
