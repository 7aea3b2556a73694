package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
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

    /** 16-bit floats cannot hold the packed 32-bit words: HALF (and BFLOAT16) state is refused, DOUBLE is not. */
    @Test
    void aSixteenBitStateArrayIsRefusedWithTheFix() {
        Adam8bit config = new Adam8bit(LR);
        for (DataType type : new DataType[] {DataType.HALF, DataType.BFLOAT16}) {
            INDArray state = Nd4j.zeros(type, 1, config.stateSize(8));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> config.instantiate(state, true));
            assertEquals("Adam8bit keeps its 8-bit codes packed in the bits of 32-bit floats and needs a FLOAT or "
                    + "DOUBLE updater state; this network's is " + type + ". Train the network in FLOAT (or DOUBLE), "
                    + "or use DL4J's Adam", e.getMessage());
        }
        INDArray dbl = Nd4j.zeros(DataType.DOUBLE, 1, config.stateSize(8));
        INDArray flt = Nd4j.zeros(DataType.FLOAT, 1, config.stateSize(8));
        INDArray g1 = Nd4j.linspace(DataType.DOUBLE, -1, 0.25, 8).reshape(1, 8);
        INDArray g2 = g1.castTo(DataType.FLOAT);
        config.instantiate(dbl, true).applyUpdater(g1, 0, 0);
        config.instantiate(flt, true).applyUpdater(g2, 0, 0);
        assertArrayEquals(g2.toFloatVector(), g1.castTo(DataType.FLOAT).toFloatVector(), "DOUBLE state steps as FLOAT does");
    }

    /** A NaN gradient, or one so large the second moment overflows float32, gives its index and changes nothing. */
    @Test
    void aNonFiniteMomentNamesTheParameterAndLeavesStateAndGradientAlone() {
        Adam8bit config = new Adam8bit(LR);
        INDArray state = Nd4j.zeros(DataType.FLOAT, 1, config.stateSize(300));
        Adam8bitUpdater updater = (Adam8bitUpdater) config.instantiate(state, true);
        INDArray warm = Nd4j.ones(DataType.FLOAT, 1, 300);
        updater.applyUpdater(warm, 0, 0);
        float[] before = state.toFloatVector();
        float[][] bad = {{Float.NaN}, {1e22f}};
        String[] says = {"is NaN", "is 1.0E22, too large: the float32 second moment overflows"};
        for (int k = 0; k < bad.length; k++) {
            INDArray grad = Nd4j.ones(DataType.FLOAT, 1, 300);
            grad.putScalar(257, bad[k][0]);
            float[] gradBefore = grad.toFloatVector();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> updater.applyUpdater(grad, 1, 0));
            assertEquals("Adam8bit: the gradient of parameter 257 (of 300 in this updater block) " + says[k]
                    + "; this block's state and gradient are left as they were. Check the loss for NaN/Inf, scale it "
                    + "down or clip gradients (e.g. DL4J's GradientNormalization)", e.getMessage());
            assertArrayEquals(before, state.toFloatVector(), "state unchanged");
            assertArrayEquals(gradBefore, grad.toFloatVector(), "gradient unchanged");
        }
    }
}
