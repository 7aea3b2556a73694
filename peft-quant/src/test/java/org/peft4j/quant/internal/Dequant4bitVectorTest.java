package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.peft4j.quant.QuantType;

/**
 * The Vector API dequantizer against the scalar loop: the same float32 products, so the outputs
 * must be bit-identical (compared with {@code assertArrayEquals} on floats, which is exact). Like
 * {@link Gemv4bitVectorTest}, peft-quant's build also runs this class with 8 lanes and with
 * {@code peft4j.vector=true}, where {@link Blockwise4bit#dequantize} itself splits a range into a
 * vector prefix and a scalar tail.
 */
class Dequant4bitVectorTest {

    private record Packed(byte[] packed, BlockScales scales, float[] pair, int n) {
        static Packed random(int n, int blockSize, QuantType type, boolean nested, long seed) {
            Random r = new Random(seed);
            float[] w = new float[n];
            for (int i = 0; i < n; i++) {
                w[i] = (float) (r.nextGaussian() * (1 + (i / blockSize) % 5));
            }
            byte[] packed = new byte[n / 2];
            float[] absmax = new float[(n + blockSize - 1) / blockSize];
            Blockwise4bit.quantize(w, 0, n, blockSize, type, packed, absmax);
            BlockScales scales = nested ? BlockScales.doubleQuantize(absmax, 256) : BlockScales.plain(absmax);
            return new Packed(packed, scales, Blockwise4bit.pairTable(type), n);
        }

        float[] scalar(int blockSize, int from, int to) {
            float[] out = new float[to - from];
            Blockwise4bit.dequantizeScalar(packed, scales, blockSize, pair, from, to, out, 0);
            return out;
        }
    }

    @Test
    void wholeBlocksAreBitIdenticalToTheScalarLoop() {
        int[][] cases = {{64, 0}, {32, 1}, {128, 0}, {256, 1}};
        for (int[] c : cases) {
            int blockSize = c[0];
            QuantType type = c[1] == 0 ? QuantType.NF4 : QuantType.FP4;
            Packed p = Packed.random(blockSize * 21, blockSize, type, true, blockSize);
            int from = 3 * blockSize;
            int blocks = 15;
            float[] out = new float[blocks * blockSize + 2];
            out[0] = Float.NaN;
            out[out.length - 1] = Float.NaN;
            Dequant4bitVector.dequantize(p.packed, p.scales, blockSize, p.pair, from, blocks, out, 1);
            assertTrue(Float.isNaN(out[0]) && Float.isNaN(out[out.length - 1]), "wrote outside its range");
            assertArrayEquals(p.scalar(blockSize, from, from + blocks * blockSize),
                    Arrays.copyOfRange(out, 1, out.length - 1), type + " block " + blockSize);
        }
    }

    @Test
    void anyRangeThroughTheDispatcherEqualsTheScalarLoop() {
        Packed p = Packed.random(64 * 40, 64, QuantType.NF4, false, 7);
        int[][] ranges = {{0, 64 * 40}, {128, 128 + 64 * 3 + 17}, {5, 64 * 9 + 3}, {640, 660}, {64, 64}};
        for (int[] r : ranges) {
            float[] out = new float[r[1] - r[0]];
            Blockwise4bit.dequantize(p.packed, p.scales, 64, p.pair, r[0], r[1], out, 0);
            assertArrayEquals(p.scalar(64, r[0], r[1]), out, "range " + Arrays.toString(r));
        }
    }

    @Test
    void blocksShorterThanTwoVectorsAreLeftToTheScalarLoop() {
        assertFalse(Dequant4bitVector.supports(8));
        assertTrue(Dequant4bitVector.supports(64));
        assertEquals(Gemv4bitVector.LANES == 16, !Dequant4bitVector.supports(16));
    }
}
