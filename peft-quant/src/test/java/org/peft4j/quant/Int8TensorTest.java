package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Int8TensorTest {

    @Test
    void linearCodesAreRoundedMultiplesOfAbsmaxOver127() {
        float[] x = new float[32];
        x[0] = 127f;
        x[1] = -63.5f;  // exactly -63.5 → Math.round → -63
        x[2] = 1.4f;    // → 1
        x[3] = -127f;
        Int8Tensor q = Int8Tensor.quantize(x, Int8Scheme.LINEAR, 32);
        byte[] c = q.codes();
        assertEquals(127, c[0]);
        assertEquals(-63, c[1]);
        assertEquals(1, c[2]);
        assertEquals(-127, c[3]);
        assertArrayEquals(new float[] {127f}, q.absmax(), 0f);
        assertEquals(1f, q.dequantize()[2], 0f);
    }

    @Test
    void dynamicCodesIndexTheSignedMap() {
        float[] x = new float[64];
        x[0] = 2f;     // 1.0 → index 255
        x[1] = -2f;    // -1.0 clamps to the map's minimum → index 0
        x[2] = 0f;     // index 127
        Int8Tensor q = Int8Tensor.quantize(x, Int8Scheme.DYNAMIC, 64);
        byte[] c = q.codes();
        assertEquals(255, c[0] & 0xFF);
        assertEquals(0, c[1] & 0xFF);
        assertEquals(127, c[2] & 0xFF);
        assertEquals(64 + 4, q.memoryBytes());
    }

    @Test
    void dynamicKeepsSmallValuesMoreAccuratelyThanLinear() {
        float[] x = ErrorStatisticsTest.gaussian(1 << 16, 17);
        for (int i = 0; i < x.length; i++) {
            x[i] = x[i] * x[i] * x[i] * 1e-3f;   // heavy-tailed, like Adam's second moment
        }
        double dyn = relErrSmall(x, Int8Tensor.quantize(x, Int8Scheme.DYNAMIC, 256).dequantize());
        double lin = relErrSmall(x, Int8Tensor.quantize(x, Int8Scheme.LINEAR, 256).dequantize());
        assertTrue(dyn < lin, "dynamic relative error on small values " + dyn + " should beat linear " + lin);
    }

    private static double relErrSmall(float[] x, float[] d) {
        double s = 0;
        int n = 0;
        for (int i = 0; i < x.length; i++) {
            if (Math.abs(x[i]) > 0 && Math.abs(x[i]) < 1e-4) {
                s += Math.abs(x[i] - d[i]) / Math.abs(x[i]);
                n++;
            }
        }
        return s / n;
    }
}
