package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

class Encode4Test {

    private static int bruteForce(float x, float[] mid) {
        int c = 0;
        for (float m : mid) {
            if (m < x) {
                c++;
            }
        }
        return c;
    }

    private static void check(float x, float[] mid, float[] padded, byte[] base) {
        int expected = bruteForce(x, mid);
        assertEquals(expected, Blockwise4bit.encode4(x, padded, base), "bucket encoder at x = " + x);
        assertEquals(expected, Blockwise4bit.encode4Search(x, mid), "binary search at x = " + x);
    }

    @Test
    void bucketEncoderCountsMidpointsBelowExactlyIncludingTies() {
        float[][] mids = {CodeTables.NF4_MID, CodeTables.FP4_MID};
        float[][] padded = {Blockwise4bit.NF4_MID_PADDED, Blockwise4bit.FP4_MID_PADDED};
        byte[][] bases = {Blockwise4bit.NF4_BASE, Blockwise4bit.FP4_BASE};
        SplittableRandom r = new SplittableRandom(1);
        for (int t = 0; t < 2; t++) {
            for (float m : mids[t]) {
                for (float x : new float[] {m, Math.nextUp(m), Math.nextDown(m), -m}) {
                    check(x, mids[t], padded[t], bases[t]);
                }
            }
            for (float x : new float[] {-1f, 1f, 0f, -0f, Math.nextUp(1f), Math.nextDown(-1f), 1e-30f, -1e-30f}) {
                check(x, mids[t], padded[t], bases[t]);
            }
            for (int k = 0; k <= 1024; k++) {
                float edge = k / 512f - 1f;
                check(edge, mids[t], padded[t], bases[t]);
                check(Math.nextDown(edge), mids[t], padded[t], bases[t]);
            }
            for (int i = 0; i < 200_000; i++) {
                check((float) (r.nextDouble() * 2 - 1), mids[t], padded[t], bases[t]);
            }
        }
    }
}
