package org.peft4j.quant.internal;

import java.util.HashMap;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.GradientUpdater;
import org.peft4j.quant.Adam8bit;

/**
 * The state and update of {@link Adam8bit}. DL4J gives each updater block (consecutive parameters
 * with one updater configuration) a view of the state array in the network's data type, which must
 * be FLOAT or DOUBLE (both hold a float32 exactly). This updater packs the four
 * 8-bit codes of two parameters {@code p, q} into the bits of one float:
 * <pre>
 *   bit 31      : bit 7 of v_q          bits 30..23 (exponent): v_p − 126
 *   bits 22..15 : m_p                   bits 14..7            : m_q
 *   bits 6..0   : bits 6..0 of v_q
 * </pre>
 * {@code v ≥ 0}, so its code is at least 127 (the dynamic map's zero) and the exponent field holds
 * 1…129: every word is a normal, finite float. That matters because ND4J's serializer writes state
 * through {@code Float.floatToIntBits}, which rewrites NaN payloads (measured: a corrupted state
 * word after a {@code ModelSerializer} round trip when codes filled the exponent freely), and
 * because flush-to-zero arithmetic could erase subnormals; normal floats survive copies, casts to
 * double and back, and serialization bit for bit. An all-zero word (the initial state) reads as
 * codes whose values are multiplied by a zero scale. After the codes, in order: {@code ⌈n/B⌉}
 * float scales of {@code m} and as many of {@code v}. Hand-written: ND4J has no 8-bit blockwise
 * optimizer.
 *
 * <p>Thread-safety: one instance per parameter block, used by one thread at a time.
 */
public final class Adam8bitUpdater implements GradientUpdater<Adam8bit> {

    private final Adam8bit config;
    private INDArray view;

    public Adam8bitUpdater(Adam8bit config) {
        this.config = config;
    }

    @Override
    public Adam8bit getConfig() {
        return config;
    }

    @Override
    public void setState(Map<String, INDArray> stateMap, boolean initialize) {
        INDArray s = stateMap.get("S");
        if (s == null || stateMap.size() != 1) {
            throw new IllegalStateException("Adam8bit state map must hold one array under \"S\"; got keys " + stateMap.keySet());
        }
        setStateViewArray(s, s.shape(), s.ordering(), initialize);
    }

    @Override
    public Map<String, INDArray> getState() {
        Map<String, INDArray> m = new HashMap<>();
        m.put("S", view);
        return m;
    }

    @Override
    public void setStateViewArray(INDArray viewArray, long[] gradientShape, char gradientOrder, boolean initialize) {
        DataType type = viewArray.dataType();
        if (type != DataType.FLOAT && type != DataType.DOUBLE) {
            throw new IllegalArgumentException("Adam8bit keeps its 8-bit codes packed in the bits of 32-bit floats "
                    + "and needs a FLOAT or DOUBLE updater state; this network's is " + type
                    + ". Train the network in FLOAT (or DOUBLE), or use DL4J's Adam");
        }
        if (initialize) {
            viewArray.assign(0);
        }
        this.view = viewArray.reshape(viewArray.length());
    }

    /** The dynamic map's code of 0.0, the smallest code a non-negative {@code v} gets. */
    private static final int ZERO_CODE = 127;

    /** Floats holding the codes of {@code params} parameters: two parameters (four codes) per float. */
    public static long packedFloats(long params) {
        return (params + 1) / 2;
    }

    /** Unpacks the codes of the first {@code count} parameters. */
    static void unpack(float[] words, int count, byte[] mCodes, byte[] vCodes) {
        for (int p = 0; p < count; p += 2) {
            int w = Float.floatToRawIntBits(words[p >>> 1]);
            int exponent = (w >>> 23) & 0xFF;
            mCodes[p] = (byte) (w >>> 15);
            vCodes[p] = (byte) (exponent == 0 ? ZERO_CODE : exponent + ZERO_CODE - 1);
            if (p + 1 < count) {
                mCodes[p + 1] = (byte) (w >>> 7);
                vCodes[p + 1] = (byte) (((w >>> 24) & 0x80) | (w & 0x7F));
            }
        }
    }

    /**
     * Packs the codes of {@code count} parameters into {@link #packedFloats}{@code (count)} words.
     * A {@code v} code below {@link #ZERO_CODE} would mean a negative {@code v}, which the update
     * never produces; it is stored as zero so every word stays a normal, finite float.
     */
    static void pack(byte[] mCodes, byte[] vCodes, int count, float[] words) {
        for (int p = 0; p < count; p += 2) {
            int vp = Math.max(vCodes[p] & 0xFF, ZERO_CODE);
            int mq = p + 1 < count ? mCodes[p + 1] & 0xFF : 0;
            int vq = p + 1 < count ? vCodes[p + 1] & 0xFF : ZERO_CODE;
            int w = ((vq & 0x80) << 24) | ((vp - ZERO_CODE + 1) << 23) | ((mCodes[p] & 0xFF) << 15)
                    | (mq << 7) | (vq & 0x7F);
            words[p >>> 1] = Float.intBitsToFloat(w);
        }
    }

    /**
     * The largest {@code |m| / √v} that exact Adam can reach from zero state, whatever the
     * gradients: {@code (1-β1) / (√(1-β2) · (1 - β1/√β2))}, about 31.8 for β1 = 0.9, β2 = 0.999
     * (each past gradient enters {@code m} with weight {@code (1-β1)β1^k} and {@code v} with
     * {@code (1-β2)β2^k}, and {@code |g_k| ≤ √(v / ((1-β2)β2^k))}). Infinite when β1 ≥ √β2.
     * A slack of 1e-6 keeps float rounding from ever clipping exact arithmetic.
     */
    static double momentRatioBound(double beta1, double beta2) {
        double decay = 1 - beta1 / Math.sqrt(beta2);
        if (decay <= 0) {
            return Double.POSITIVE_INFINITY;
        }
        return (1 + 1e-6) * (1 - beta1) / (Math.sqrt(1 - beta2) * decay);
    }

    /** The message for a moment that is not a finite float32: names the parameter and its gradient. */
    static String nonFinite(int index, float gradient, long count) {
        String what = Float.isFinite(gradient)
                ? "is " + gradient + ", too large: the float32 second moment overflows"
                : "is " + gradient;
        return "Adam8bit: the gradient of parameter " + index + " (of " + count + " in this updater block) " + what
                + "; this block's state and gradient are left as they were. Check the loss for NaN/Inf, "
                + "scale it down or clip gradients (e.g. DL4J's GradientNormalization)";
    }

    @Override
    public void applyUpdater(INDArray gradient, int iteration, int epoch) {
        if (view == null) {
            throw new IllegalStateException("Adam8bit updater has not been given its state array");
        }
        int count = Math.toIntExact(gradient.length());
        // DL4J sizes a block's state as the sum of stateSize over its parameters, which is at least
        // stateSize of their total (the rounding is subadditive); the layout uses the first part.
        if (config.stateSize(count) > view.length()) {
            throw new IllegalStateException("Adam8bit state holds " + view.length() + " floats; " + count
                    + " parameters need " + config.stateSize(count));
        }
        int block = config.blockSize();
        int blocks = Blockwise8bit.blockCount(count, block);
        int codeFloats = (int) packedFloats(count);
        float[] state = view.get(NDArrayIndex.interval(0, codeFloats + 2L * blocks)).castTo(DataType.FLOAT).toFloatVector();
        byte[] mCodes = new byte[count];
        byte[] vCodes = new byte[count];
        unpack(state, count, mCodes, vCodes);
        float[] mScale = java.util.Arrays.copyOfRange(state, codeFloats, codeFloats + blocks);
        float[] vScale = java.util.Arrays.copyOfRange(state, codeFloats + blocks, codeFloats + 2 * blocks);

        float[] m = new float[count];
        float[] v = new float[count];
        Blockwise8bit.dequantizeDynamic(mCodes, mScale, block, m);
        Blockwise8bit.dequantizeDynamic(vCodes, vScale, block, v);
        float[] g = gradient.castTo(DataType.FLOAT).dup('c').reshape(count).toFloatVector();

        double beta1 = config.beta1();
        double beta2 = config.beta2();
        int t = iteration + 1;
        double lr = config.getLearningRate(iteration, epoch);
        double c1 = 1 - Math.pow(beta1, t);
        double c2 = 1 - Math.pow(beta2, t);
        double eps = config.epsilon();
        // A moment dequantized as 0 while the other is not (v spans the square of g's range, so it
        // underflows first) would divide m by ε alone; clip m to what exact Adam can reach.
        double ratio = momentRatioBound(beta1, beta2);
        boolean clip = ratio < Double.POSITIVE_INFINITY;
        for (int i = 0; i < count; i++) {
            double gi = g[i];
            double vi = beta2 * v[i] + (1 - beta2) * gi * gi;
            double mi = beta1 * m[i] + (1 - beta1) * gi;
            if (clip) {
                double bound = ratio * Math.sqrt(vi);
                mi = Math.max(-bound, Math.min(bound, mi));
            }
            m[i] = (float) mi;
            v[i] = (float) vi;
            if (!Float.isFinite(v[i]) || !Float.isFinite(m[i])) {
                throw new IllegalArgumentException(nonFinite(i, g[i], gradient.length()));
            }
            g[i] = (float) (lr * (mi / c1) / (Math.sqrt(vi / c2) + eps));
        }
        Blockwise8bit.quantizeDynamic(m, block, mCodes, mScale);
        Blockwise8bit.quantizeDynamic(v, block, vCodes, vScale);
        pack(mCodes, vCodes, count, state);
        System.arraycopy(mScale, 0, state, codeFloats, blocks);
        System.arraycopy(vScale, 0, state, codeFloats + blocks, blocks);
        view.get(NDArrayIndex.interval(0, state.length)).assign(Nd4j.createFromArray(state).castTo(view.dataType()));
        gradient.assign(Nd4j.createFromArray(g).reshape(gradient.shape()).castTo(gradient.dataType()));
    }
}
