package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.quant.Adam8bit;

/**
 * {@link Adam8bitUpdater}'s split block kernel (scalar table loops, vectorized update, absmax and
 * packing) gives, bit for bit, the state words and updates of the single per-parameter loop it
 * replaced, which is kept here as {@link #loopStep}: over several steps, with gradients of many
 * magnitudes, all-zero blocks, a short odd last block, both block sizes' extremes and betas with
 * and without the moment clip.
 */
class Adam8bitKernelMatchesLoopTest {

    @Test
    void splitKernelGivesTheLoopsStateAndUpdatesBitForBit() {
        SplittableRandom r = new SplittableRandom(11);
        double[][] betas = {{0.9, 0.999}, {0.99, 0.9}};
        for (int block : new int[] {64, 256, 4096}) {
            for (double[] beta : betas) {
                for (int n : new int[] {65_536, 20_001}) {
                    Adam8bit config = new Adam8bit(2e-3, beta[0], beta[1], 1e-8, block);
                    int size = (int) config.stateSize(n);
                    INDArray state = Nd4j.zeros(DataType.FLOAT, 1, size);
                    Adam8bitUpdater updater = (Adam8bitUpdater) config.instantiate(state, true);
                    float[] loopState = new float[size];
                    for (int step = 0; step < 8; step++) {
                        float[] g = gradient(r, n, block, step);
                        INDArray grad = Nd4j.createFromArray(g).reshape(1, n);
                        updater.applyUpdater(grad, step, 0);
                        loopStep(config, loopState, g, step);
                        String where = "block " + block + ", betas " + beta[0] + "/" + beta[1] + ", n " + n + ", step " + step;
                        float[] update = grad.toFloatVector();
                        for (int i = 0; i < n; i++) {
                            assertEquals(Float.floatToRawIntBits(g[i]), Float.floatToRawIntBits(update[i]),
                                    "update " + i + ", " + where);
                        }
                        float[] words = state.toFloatVector();
                        for (int i = 0; i < size; i++) {
                            assertEquals(Float.floatToRawIntBits(loopState[i]), Float.floatToRawIntBits(words[i]),
                                    "state word " + i + ", " + where);
                        }
                    }
                }
            }
        }
    }

    /**
     * Magnitudes log-uniform over ten decades per parameter, scaled per block by one of 1e-6 … 1e2;
     * every fifth block all zero at odd steps; now and then a lone gradient a thousand times its
     * block's others.
     */
    private static float[] gradient(SplittableRandom r, int n, int block, int step) {
        float[] g = new float[n];
        for (int start = 0, b = 0; start < n; start += block, b++) {
            int end = Math.min(n, start + block);
            if (b % 5 == 0 && step % 2 == 1) {
                continue;
            }
            double scale = Math.pow(10, -6 + r.nextInt(9));
            for (int i = start; i < end; i++) {
                g[i] = (float) ((r.nextBoolean() ? 1 : -1) * scale * Math.pow(10, -10 * r.nextDouble()));
            }
            if (r.nextInt(4) == 0) {
                g[start + r.nextInt(end - start)] = (float) (1e3 * scale);
            }
        }
        return g;
    }

    /** The previous kernel's step on heap copies of the state words and the gradient (replaced by the update). */
    private static void loopStep(Adam8bit config, float[] state, float[] g, int iteration) {
        int count = g.length;
        int block = config.blockSize();
        int blocks = Blockwise8bit.blockCount(count, block);
        int codeFloats = (int) Adam8bitUpdater.packedFloats(count);
        float[] m = new float[block];
        float[] v = new float[block];
        float[] u = new float[block];
        int t = iteration + 1;
        double c1 = 1 - Math.pow(config.beta1(), t);
        double c2 = 1 - Math.pow(config.beta2(), t);
        float b1 = (float) config.beta1();
        float b2 = (float) config.beta2();
        float ob1 = (float) (1 - config.beta1());
        float ob2 = (float) (1 - config.beta2());
        float step = (float) (config.getLearningRate(iteration, 0) / c1);
        float invSqrtC2 = (float) (1 / Math.sqrt(c2));
        float eps = Math.max((float) config.epsilon(), Float.MIN_VALUE);
        double ratio = Adam8bitUpdater.momentRatioBound(config.beta1(), config.beta2());
        boolean clip = ratio < Double.POSITIVE_INFINITY;
        float r = (float) ratio;
        for (int b = 0; b < blocks; b++) {
            int start = b * block;
            int len = Math.min(block, count - start);
            float mScale = state[codeFloats + b];
            float vScale = state[codeFloats + blocks + b];
            for (int i = 0; i < len; i += 2) {
                int w = Float.floatToRawIntBits(state[(start + i) >>> 1]);
                int exponent = (w >>> 23) & 0xFF;
                m[i] = CodeTables.DYNAMIC8[(w >>> 15) & 0xFF] * mScale;
                v[i] = CodeTables.DYNAMIC8[exponent == 0 ? 127 : exponent + 126] * vScale;
                if (i + 1 < len) {
                    m[i + 1] = CodeTables.DYNAMIC8[(w >>> 7) & 0xFF] * mScale;
                    v[i + 1] = CodeTables.DYNAMIC8[((w >>> 24) & 0x80) | (w & 0x7F)] * vScale;
                }
            }
            for (int i = 0; i < len; i++) {
                float gi = g[start + i];
                float vi = b2 * v[i] + (ob2 * gi) * gi;
                if (clip) {
                    float s = (float) Math.sqrt(vi);
                    float bound = r * s;
                    float mi = Math.max(-bound, Math.min(bound, b1 * m[i] + ob1 * gi));
                    m[i] = mi;
                    u[i] = step * mi / (s * invSqrtC2 + eps);
                } else {
                    float mi = b1 * m[i] + ob1 * gi;
                    m[i] = mi;
                    u[i] = step * mi / ((float) Math.sqrt(vi) * invSqrtC2 + eps);
                }
                v[i] = vi;
            }
            float mMax = 0f;
            float vMax = 0f;
            for (int i = 0; i < len; i++) {
                mMax = Math.max(mMax, Math.abs(m[i]));
                vMax = Math.max(vMax, Math.abs(v[i]));
            }
            System.arraycopy(u, 0, g, start, len);
            encodeInto(m, len, mMax, state, start, true);
            encodeInto(v, len, vMax, state, start, false);
            state[codeFloats + b] = mMax;
            state[codeFloats + blocks + b] = vMax;
        }
    }

    /** The previous word-by-word encoder: {@code m} codes first, then {@code v} codes filled into the same words. */
    private static void encodeInto(float[] x, int len, float amax, float[] words, int start, boolean first) {
        float inv = 1f / Math.max(amax, Blockwise8bit.MIN_ABSMAX);
        for (int i = 0; i < len; i += 2) {
            int p = Blockwise8bit.encodeDynamicSearch(x[i] * inv, CodeTables.DYNAMIC8_MID);
            int q = i + 1 < len ? Blockwise8bit.encodeDynamicSearch(x[i + 1] * inv, CodeTables.DYNAMIC8_MID) : -1;
            int word;
            if (first) {
                word = (p << 15) | ((q < 0 ? 0 : q) << 7);
            } else {
                int vp = Math.max(p, 127);
                int vq = q < 0 ? 127 : q;
                word = Float.floatToRawIntBits(words[(start + i) >>> 1]) & 0x7FFF80
                        | ((vq & 0x80) << 24) | ((vp - 126) << 23) | (vq & 0x7F);
            }
            words[(start + i) >>> 1] = Float.intBitsToFloat(word);
        }
    }
}
