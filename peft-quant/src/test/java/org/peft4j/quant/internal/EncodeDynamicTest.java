package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

/** The bucket encoder of the dynamic 8-bit map gives the binary search's code for every input. */
class EncodeDynamicTest {

    private static int bruteForce(float x) {
        int c = 0;
        for (float m : CodeTables.DYNAMIC8_MID) {
            if (m < x) {
                c++;
            }
        }
        return c;
    }

    private static void check(float x) {
        int expected = bruteForce(x);
        assertEquals(expected, Blockwise8bit.encodeDynamic(x), "bucket encoder at x = " + x);
        assertEquals(expected, Blockwise8bit.encodeDynamicSearch(x, CodeTables.DYNAMIC8_MID), "binary search at x = " + x);
        if (Math.abs(x) <= 1f) {
            assertEquals(expected, Blockwise8bit.encodeUnit(x), "unclamped bucket encoder at x = " + x);
        }
    }

    @Test
    void bucketEncoderCountsMidpointsBelowExactlyIncludingTies() {
        for (float m : CodeTables.DYNAMIC8_MID) {
            for (float x : new float[] {m, Math.nextUp(m), Math.nextDown(m), -m}) {
                check(x);
            }
        }
        for (float v : CodeTables.DYNAMIC8) {
            check(v);
        }
        for (float x : new float[] {-1f, 1f, 0f, -0f, Math.nextUp(1f), Math.nextDown(-1f), 1.5f, -1.5f, 1e-30f,
            -1e-30f, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE}) {
            check(x);
        }
        // both ends of every bucket: order keys k << KEY_SHIFT and (k << KEY_SHIFT) - 1, both signs
        int shift = Blockwise8bit.KEY_SHIFT;
        for (int k = 0; k <= 0x3F800000 >> shift; k++) {
            for (int bits : new int[] {k << shift, (k << shift) - 1}) {
                if (bits >= 0) {
                    check(Float.intBitsToFloat(bits));
                    check(-Float.intBitsToFloat(bits));
                }
            }
        }
        SplittableRandom r = new SplittableRandom(2);
        for (int i = 0; i < 200_000; i++) {
            check((float) (r.nextDouble() * 2 - 1));
            // log-uniform magnitudes over the map's range, where a uniform sample never goes
            check((float) ((r.nextBoolean() ? 1 : -1) * Math.pow(10, -8 * r.nextDouble())));
        }
    }
}
