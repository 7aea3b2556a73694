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

    /** Per-block scratch (one updater block is updated by one thread at a time). */
    private float[] mBlock = new float[0];
    private float[] vBlock = new float[0];
    private float[] uBlock = new float[0];
    private float[] gBlock = new float[0];
    /** A block's codes by parameter parity: {@code m} and {@code v} of parameters {@code 2j} and {@code 2j + 1}. */
    private int[] mEven = new int[0];
    private int[] mOdd = new int[0];
    private int[] vEven = new int[0];
    private int[] vOdd = new int[0];
    /** Heap copies of the state words (as int bits) and of the gradient, reused from step to step. */
    private int[] stateBuffer = new int[0];
    private float[] gradientBuffer = new float[0];
    /** Float copy of the state for a state array that is not float32 and contiguous. */
    private float[] stateFloats = new float[0];

    /**
     * One Adam step on {@code gradient} (replaced by the update), block by block: each block's
     * codes are decoded into a scratch of {@link Adam8bit#blockSize()} floats, updated and encoded
     * again while they are in the L1 cache, so the step reads and writes each word once. The state
     * (as the int bits of its words) and the gradient are copied to the heap in one bulk read each,
     * changed there, and written back in one bulk write each after every block has been checked; a
     * non-finite moment therefore leaves both as they were.
     *
     * <p>Per block the work is split into loops by what C2 makes of them: the table look-ups of
     * decoding and encoding are scalar (loads by index, one per code), while the moment update
     * with its square root and divide, the two absolute maxima (on int bits) and the packing of
     * four codes into a word are loops over arrays that all start at index 0, which C2
     * vectorizes. Why hand-written: ND4J has no 8-bit blockwise optimizer. Why this shape: with
     * the update reading the gradient at the block's offset C2 left it scalar (4.2 ns a
     * parameter instead of 0.8), and {@code Math.max} on floats and a two-comparison encoder
     * were the rest; the step took 12.2 ns a parameter on one core at 65,536 parameters and
     * 14.8 at 4 Mi, and takes 6.7 and 9.3 this way (float Adam's loop, {@code FastAdamUpdater}:
     * about 1.75).
     */
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
        int stateWords = codeFloats + 2 * blocks;
        if (stateBuffer.length < stateWords) {
            stateBuffer = new int[stateWords];
        }
        if (gradientBuffer.length < count) {
            gradientBuffer = new float[count];
        }
        boolean hostState = contiguousFloats(view);
        int[] state = stateBuffer;
        if (hostState) {
            view.data().asNioInt().get((int) view.offset(), state, 0, stateWords);
        } else {
            if (stateFloats.length < stateWords) {
                stateFloats = new float[stateWords];
            }
            float[] words = read(view, stateWords, stateFloats);
            for (int i = 0; i < stateWords; i++) {
                state[i] = Float.floatToRawIntBits(words[i]);
            }
        }
        float[] g = read(gradient, count, gradientBuffer);
        if (mBlock.length != block) {
            mBlock = new float[block];
            vBlock = new float[block];
            uBlock = new float[block];
            gBlock = new float[block];
            mEven = new int[block / 2];
            mOdd = new int[block / 2];
            vEven = new int[block / 2];
            vOdd = new int[block / 2];
        }

        int t = iteration + 1;
        double c1 = 1 - Math.pow(config.beta1(), t);
        double c2 = 1 - Math.pow(config.beta2(), t);
        // float32 arithmetic, as bitsandbytes' kernels: loops C2 vectorizes (double sqrt and
        // division, scalar, cost 40 times as much) on moments that are stored in 8 bits anyway
        float b1 = (float) config.beta1();
        float b2 = (float) config.beta2();
        float ob1 = (float) (1 - config.beta1());
        float ob2 = (float) (1 - config.beta2());
        float step = (float) (config.getLearningRate(iteration, epoch) / c1);
        float invSqrtC2 = (float) (1 / Math.sqrt(c2));
        // an ε below float32's range would make 0/0 of a parameter whose gradients were all 0
        float eps = Math.max((float) config.epsilon(), Float.MIN_VALUE);
        // A moment dequantized as 0 while the other is not (v spans the square of g's range, so it
        // underflows first) would divide m by ε alone; clip m to what exact Adam can reach.
        double ratio = momentRatioBound(config.beta1(), config.beta2());
        boolean clip = ratio < Double.POSITIVE_INFINITY;
        float r = (float) ratio;
        float[] m = mBlock;
        float[] v = vBlock;
        float[] u = uBlock;
        float[] gb = gBlock;
        for (int b = 0; b < blocks; b++) {
            int start = b * block;
            int len = Math.min(block, count - start);
            int pairs = (len + 1) >>> 1;
            int word0 = start >>> 1;
            decode(state, word0, pairs, Float.intBitsToFloat(state[codeFloats + b]),
                    Float.intBitsToFloat(state[codeFloats + blocks + b]), m, v);
            // the block's gradient at index 0 like the scratch, so that C2 can align all of them
            System.arraycopy(g, start, gb, 0, len);
            if (clip) {
                updateClipped(gb, len, m, v, u, b1, b2, ob1, ob2, step, invSqrtC2, eps, r);
            } else {
                update(gb, len, m, v, u, b1, b2, ob1, ob2, step, invSqrtC2, eps);
            }
            float mMax = absmax(m, len);
            float vMax = absmax(v, len);
            if (!(mMax <= Float.MAX_VALUE) || !(vMax <= Float.MAX_VALUE)) {
                for (int i = 0; i < len; i++) {
                    if (!Float.isFinite(v[i]) || !Float.isFinite(m[i])) {
                        throw new IllegalArgumentException(nonFinite(start + i, g[start + i], count));
                    }
                }
            }
            System.arraycopy(u, 0, g, start, len);
            if ((len & 1) != 0) {
                // the element past a short block's end, which decode filled, must scale into [-1, 1]
                m[len] = 0f;
                v[len] = 0f;
            }
            encode(m, len, 1f / Math.max(mMax, Blockwise8bit.MIN_ABSMAX), mEven, mOdd);
            encode(v, len, 1f / Math.max(vMax, Blockwise8bit.MIN_ABSMAX), vEven, vOdd);
            if ((len & 1) != 0) {
                // the second half of the last word belongs to no parameter: as {@link #pack} lays it out
                mOdd[pairs - 1] = 0;
                vOdd[pairs - 1] = ZERO_CODE;
            }
            packBlock(mEven, mOdd, vEven, vOdd, pairs, mEven);
            System.arraycopy(mEven, 0, state, word0, pairs);
            state[codeFloats + b] = Float.floatToRawIntBits(mMax);
            state[codeFloats + blocks + b] = Float.floatToRawIntBits(vMax);
        }
        if (hostState) {
            view.data().asNioInt().put((int) view.offset(), state, 0, stateWords);
        } else {
            float[] words = stateFloats;
            for (int i = 0; i < stateWords; i++) {
                words[i] = Float.intBitsToFloat(state[i]);
            }
            write(view, words, stateWords);
        }
        write(gradient, g, count);
    }

    /**
     * The moments {@code m, v} of a block (decoded, replaced by the new ones) and its update
     * {@code u} from the gradient {@code g[0, len)}, with {@code |m|} clipped to
     * {@code r·√v} (see {@link #momentRatioBound}).
     */
    private static void updateClipped(float[] g, int len, float[] m, float[] v, float[] u, float b1,
                                      float b2, float ob1, float ob2, float step, float invSqrtC2, float eps, float r) {
        for (int i = 0; i < len; i++) {
            float gi = g[i];
            float vi = b2 * v[i] + (ob2 * gi) * gi;
            float s = (float) Math.sqrt(vi);
            float bound = r * s;
            float mi = Math.max(-bound, Math.min(bound, b1 * m[i] + ob1 * gi));
            m[i] = mi;
            v[i] = vi;
            u[i] = step * mi / (s * invSqrtC2 + eps);
        }
    }

    /** {@link #updateClipped} without the clip, for betas where exact Adam's ratio is unbounded. */
    private static void update(float[] g, int len, float[] m, float[] v, float[] u, float b1, float b2,
                               float ob1, float ob2, float step, float invSqrtC2, float eps) {
        for (int i = 0; i < len; i++) {
            float gi = g[i];
            float vi = b2 * v[i] + (ob2 * gi) * gi;
            float mi = b1 * m[i] + ob1 * gi;
            m[i] = mi;
            v[i] = vi;
            u[i] = step * mi / ((float) Math.sqrt(vi) * invSqrtC2 + eps);
        }
    }

    /**
     * {@code max |x[i]|} over {@code [0, len)} when every element is finite (then the value of
     * {@link Blockwise4bit#absmax}); NaN if any element is NaN, infinite if one is infinite and
     * none NaN. Computed on the magnitude bits as ints, whose order is the floats' order for
     * finite and infinite values and puts every NaN above infinity: C2 vectorizes the int maximum,
     * while {@code Math.max} on floats is a scalar sequence that handles NaN and -0.0.
     */
    private static float absmax(float[] x, int len) {
        int a = 0;
        for (int i = 0; i < len; i++) {
            a = Math.max(a, Float.floatToRawIntBits(x[i]) & 0x7FFFFFFF);
        }
        return Float.intBitsToFloat(a);
    }

    /**
     * {@code m[i], v[i]} of the parameters of words {@code word0 …} ({@code pairs} words, two
     * parameters each) and the block's two scales: {@code DYNAMIC8[code] · scale}, as
     * {@link #unpack} then {@link Blockwise8bit#dequantizeDynamic}. Writes {@code 2 · pairs}
     * elements (one past a short block's end when its length is odd). An exponent field of 0 (the
     * initial all-zero word) and of 1 both read as {@link #ZERO_CODE}.
     */
    private static void decode(int[] words, int word0, int pairs, float mScale, float vScale, float[] m, float[] v) {
        final float[] table = CodeTables.DYNAMIC8;
        for (int j = 0; j < pairs; j++) {
            int w = words[word0 + j];
            int i = 2 * j;
            m[i] = table[(w >>> 15) & 0xFF] * mScale;
            m[i + 1] = table[(w >>> 7) & 0xFF] * mScale;
            v[i] = table[Math.max((w >>> 23) & 0xFF, 1) + ZERO_CODE - 1] * vScale;
            v[i + 1] = table[((w >>> 24) & 0x80) | (w & 0x7F)] * vScale;
        }
    }

    /**
     * The dynamic-map codes of {@code x[i] · inv}, {@code i < len}, as {@link Blockwise8bit#quantizeDynamic}
     * with {@code inv = 1f / max(absmax, 1e-38f)}: of even {@code i} into {@code even[i / 2]}, of odd
     * {@code i} into {@code odd[i / 2]} (for an odd {@code len}, the last {@code odd} entry is the
     * code of {@code x[len]}, which the caller sets to 0 first and overwrites after).
     */
    private static void encode(float[] x, int len, float inv, int[] even, int[] odd) {
        int pairs = (len + 1) >>> 1;
        for (int j = 0; j < pairs; j++) {
            even[j] = Blockwise8bit.encodeUnit(x[2 * j] * inv);
            odd[j] = Blockwise8bit.encodeUnit(x[2 * j + 1] * inv);
        }
    }

    /**
     * Packs the codes of {@code pairs} words into {@code words[0, pairs)} (which may be
     * {@code mEven}: each entry is read before it is written), as {@link #pack} lays them
     * out: a {@code v} code of an even parameter below {@link #ZERO_CODE} (a negative {@code v},
     * which the update never produces) is stored as zero.
     */
    private static void packBlock(int[] mEven, int[] mOdd, int[] vEven, int[] vOdd, int pairs, int[] words) {
        for (int j = 0; j < pairs; j++) {
            int vp = Math.max(vEven[j], ZERO_CODE);
            int vq = vOdd[j];
            words[j] = ((vq & 0x80) << 24) | ((vp - ZERO_CODE + 1) << 23) | (mEven[j] << 15)
                    | (mOdd[j] << 7) | (vq & 0x7F);
        }
    }

    /**
     * The first {@code n} elements of a vector {@code a} in order, into {@code out} (returned): one
     * bulk copy out of the buffer when {@code a} is float32 and contiguous (DL4J's state and
     * gradient views are), else through ND4J.
     */
    private static float[] read(INDArray a, int n, float[] out) {
        if (contiguousFloats(a)) {
            a.data().asNioFloat().get((int) a.offset(), out, 0, n);
        } else {
            INDArray flat = a.reshape(a.length());
            float[] all = flat.get(NDArrayIndex.interval(0, n)).castTo(DataType.FLOAT).toFloatVector();
            System.arraycopy(all, 0, out, 0, n);
        }
        return out;
    }

    /** Overwrites the first {@code n} elements of a vector {@code a} with {@code values[0, n)} (see {@link #read}). */
    private static void write(INDArray a, float[] values, int n) {
        if (contiguousFloats(a)) {
            a.data().asNioFloat().put((int) a.offset(), values, 0, n);
        } else {
            INDArray src = Nd4j.createFromArray(java.util.Arrays.copyOf(values, n)).castTo(a.dataType());
            if (n == a.length()) {
                a.assign(src.reshape(a.shape()));
            } else {
                a.reshape(a.length()).get(NDArrayIndex.interval(0, n)).assign(src);
            }
        }
    }

    /**
     * Whether {@code a} is a float32 vector (rank 1, or rank 2 with one dimension 1) whose elements
     * lie one after the other in its buffer, from {@code a.offset()}.
     */
    static boolean contiguousFloats(INDArray a) {
        if (a.dataType() != DataType.FLOAT || a.rank() > 2 || a.length() > Integer.MAX_VALUE) {
            return false;
        }
        for (int d = 0; d < a.rank(); d++) {
            if (a.size(d) > 1 && (a.size(d) != a.length() || a.stride(d) != 1)) {
                return false;
            }
        }
        return a.offset() + a.length() <= a.data().asNioFloat().capacity();
    }
}
