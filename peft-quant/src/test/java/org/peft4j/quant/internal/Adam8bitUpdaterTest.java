package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.quant.Adam8bit;

/** The 8-bit update where quantization could break what exact Adam guarantees. */
class Adam8bitUpdaterTest {
    private static final double LR = 1e-3;

    @Test
    void momentRatioBoundIsTheClosedFormForTheDefaultBetas() {
        // (1-0.9) / (sqrt(0.001) · (1 - 0.9/sqrt(0.999))) = 0.1 / (0.0316228 · 0.0995497) = 31.766
        assertEquals(31.766, Adam8bitUpdater.momentRatioBound(0.9, 0.999), 1e-3);
        assertEquals(Double.POSITIVE_INFINITY, Adam8bitUpdater.momentRatioBound(0.99, 0.9));
    }

    /**
     * One block of 256: parameter 0 sees gradient 1 at every step, parameter 1 sees 1e-4 for ten
     * steps and then exactly 0. Parameter 1's second moment is about 1e-8 of the block's largest,
     * below the dynamic map's smallest step, so it is stored as 0 while its first moment is not.
     * Without a guard the next update divides that first moment by ε alone (about 10^4 · lr);
     * exact Adam's update for parameter 1 never exceeds about 1.2 · lr here.
     */
    @Test
    void aSecondMomentStoredAsZeroNeverTurnsTheFirstMomentIntoAHugeStep() {
        int n = 256;
        Adam8bit config = new Adam8bit(LR);
        Adam8bitUpdater updater = new Adam8bitUpdater(config);
        INDArray state = Nd4j.zeros(DataType.FLOAT, 1, config.stateSize(n));
        updater.setStateViewArray(state, new long[] {1, n}, 'c', true);
        double m = 0;
        double v = 0;
        double largestExact = 0;
        for (int step = 0; step < 40; step++) {
            float g1 = step < 10 ? 1e-4f : 0f;
            INDArray grad = Nd4j.zeros(DataType.FLOAT, 1, n);
            grad.putScalar(0, 1f);
            grad.putScalar(1, g1);
            updater.applyUpdater(grad, step, 0);
            m = 0.9 * m + 0.1 * g1;
            v = 0.999 * v + 0.001 * g1 * g1;
            double exact = LR * (m / (1 - Math.pow(0.9, step + 1))) / (Math.sqrt(v / (1 - Math.pow(0.999, step + 1))) + 1e-8);
            largestExact = Math.max(largestExact, Math.abs(exact));
            double update = grad.getDouble(1);
            assertTrue(Double.isFinite(update) && Math.abs(update) <= 10 * LR,
                    "step " + step + ": update of parameter 1 is " + update + " (exact Adam: " + exact + ")");
        }
        assertTrue(largestExact <= 1.2 * LR, "the scenario's exact updates stay near lr: " + largestExact);
    }
}
