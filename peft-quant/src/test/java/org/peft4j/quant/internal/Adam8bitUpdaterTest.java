package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
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

    /**
     * The step as the bit layout defines it, one stage at a time over the whole updater block
     * (unpack, dequantize, update, quantize by binary search, pack): the reference for the
     * block-by-block update.
     */
    private static void referenceStep(Adam8bit config, float[] state, float[] g, int iteration) {
        int count = g.length;
        int block = config.blockSize();
        int blocks = Blockwise8bit.blockCount(count, block);
        int codeFloats = (int) Adam8bitUpdater.packedFloats(count);
        byte[] mCodes = new byte[count];
        byte[] vCodes = new byte[count];
        Adam8bitUpdater.unpack(state, count, mCodes, vCodes);
        float[] mScale = java.util.Arrays.copyOfRange(state, codeFloats, codeFloats + blocks);
        float[] vScale = java.util.Arrays.copyOfRange(state, codeFloats + blocks, codeFloats + 2 * blocks);
        float[] m = new float[count];
        float[] v = new float[count];
        Blockwise8bit.dequantizeDynamic(mCodes, mScale, block, m);
        Blockwise8bit.dequantizeDynamic(vCodes, vScale, block, v);
        double c1 = 1 - Math.pow(config.beta1(), iteration + 1);
        double c2 = 1 - Math.pow(config.beta2(), iteration + 1);
        // float32 arithmetic, with the constants rounded to float once
        float ratio = (float) Adam8bitUpdater.momentRatioBound(config.beta1(), config.beta2());
        float step = (float) (config.getLearningRate(iteration, 0) / c1);
        float invSqrtC2 = (float) (1 / Math.sqrt(c2));
        for (int i = 0; i < count; i++) {
            float gi = g[i];
            float vi = (float) config.beta2() * v[i] + ((float) (1 - config.beta2()) * gi) * gi;
            float mi = (float) config.beta1() * m[i] + (float) (1 - config.beta1()) * gi;
            float s = (float) Math.sqrt(vi);
            mi = Math.max(-ratio * s, Math.min(ratio * s, mi));
            m[i] = mi;
            v[i] = vi;
            g[i] = step * mi / (s * invSqrtC2 + (float) config.epsilon());
        }
        for (float[][] mv : new float[][][] {{m, mScale}, {v, vScale}}) {
            byte[] codes = mv[0] == m ? mCodes : vCodes;
            for (int b = 0; b < blocks; b++) {
                int start = b * block;
                int end = Math.min(count, start + block);
                float amax = Blockwise4bit.absmax(mv[0], start, end);
                mv[1][b] = amax;
                float inv = 1f / Math.max(amax, Blockwise8bit.MIN_ABSMAX);
                for (int i = start; i < end; i++) {
                    codes[i] = (byte) Blockwise8bit.encodeDynamicSearch(mv[0][i] * inv, CodeTables.DYNAMIC8_MID);
                }
            }
        }
        Adam8bitUpdater.pack(mCodes, vCodes, count, state);
        System.arraycopy(mScale, 0, state, codeFloats, blocks);
        System.arraycopy(vScale, 0, state, codeFloats + blocks, blocks);
    }

    /**
     * The block-by-block update equals the stage-by-stage reference bit for bit: state words,
     * scales and updates, over several steps, for a block size of 64 and 256, an odd parameter
     * count (a short last block with a half-filled last word), state and gradient that are views at
     * an offset of larger arrays (as DL4J hands them), the gradient in 'f' order, and a DOUBLE
     * state (read through ND4J instead of the buffer).
     */
    @Test
    void blockwiseUpdateEqualsTheStageByStageReferenceBitForBit() {
        SplittableRandom r = new SplittableRandom(5);
        for (int block : new int[] {64, 256}) {
            for (DataType type : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
                Adam8bit config = new Adam8bit(1e-2, 0.9, 0.999, 1e-8, block);
                int n = 1001;
                long size = config.stateSize(n);
                INDArray stateParent = Nd4j.zeros(type, 1, size + 7);
                INDArray state = stateParent.get(NDArrayIndex.point(0), NDArrayIndex.interval(3, 3 + size)).reshape(1, size);
                Adam8bitUpdater updater = (Adam8bitUpdater) config.instantiate(state, true);
                float[] refState = new float[(int) size];
                INDArray gradParent = Nd4j.create(DataType.FLOAT, new long[] {1, n + 5}, 'f');
                for (int step = 0; step < 6; step++) {
                    float[] g = new float[n];
                    for (int i = 0; i < n; i++) {
                        // magnitudes over eight decades, so the codes cover the whole map
                        g[i] = (float) ((r.nextBoolean() ? 1 : -1) * Math.pow(10, -8 * r.nextDouble()));
                    }
                    INDArray grad = gradParent.get(NDArrayIndex.all(), NDArrayIndex.interval(5, 5 + n));
                    grad.assign(Nd4j.createFromArray(g).reshape(1, n));
                    updater.applyUpdater(grad, step, 0);
                    referenceStep(config, refState, g, step);
                    assertArrayEquals(g, grad.toFloatVector(), 0f, "update, block " + block + " " + type + " step " + step);
                    float[] got = state.castTo(DataType.FLOAT).toFloatVector();
                    for (int i = 0; i < size; i++) {
                        assertEquals(Float.floatToRawIntBits(refState[i]), Float.floatToRawIntBits(got[i]),
                                "state word " + i + ", block " + block + " " + type + " step " + step);
                    }
                }
                assertEquals(0f, stateParent.getFloat(0, 0) + stateParent.getFloat(0, size + 3), 0f,
                        "the words around the view are untouched");
            }
        }
    }
}
