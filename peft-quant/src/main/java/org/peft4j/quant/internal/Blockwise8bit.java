package org.peft4j.quant.internal;

/**
 * Blockwise 8-bit codecs: the signed dynamic map of bitsandbytes (used for double quantization
 * and 8-bit optimizer state) and symmetric linear int8 ({@code q = round(x * 127 / absmax)}).
 *
 * <p>Hand-written because ND4J has no blockwise quantization op; the loops are simple enough
 * for the JIT and run once per tensor (quantize) or once per optimizer step.
 *
 * <p>Thread-safety: stateless; callers own the arrays they pass.
 */
public final class Blockwise8bit {
    /** Smallest absmax used for the reciprocal, as bitsandbytes' {@code absmax.clamp(min=1e-38)}. */
    static final float MIN_ABSMAX = 1e-38f;

    private Blockwise8bit() {
    }

    public static int blockCount(int n, int blockSize) {
        return (int) (((long) n + blockSize - 1) / blockSize);
    }

    /**
     * Quantizes {@code src} with the signed dynamic map: per block, {@code absmax = max|x|} and
     * {@code code = nearest(DYNAMIC8, x * (1f / max(absmax, 1e-38f)))}, ties to the lower value.
     */
    public static void quantizeDynamic(float[] src, int blockSize, byte[] codes, float[] absmax) {
        int n = src.length;
        for (int b = 0, start = 0, end; start < n; b++, start = end) {
            end = (int) Math.min(n, (long) start + blockSize);
            float amax = Blockwise4bit.absmax(src, start, end);
            absmax[b] = amax;
            float inv = 1f / Math.max(amax, MIN_ABSMAX);
            for (int i = start; i < end; i++) {
                codes[i] = (byte) encodeDynamic(src[i] * inv);
            }
        }
    }

    /** {@code out[i] = DYNAMIC8[codes[i]] * absmax[i / blockSize]}. */
    public static void dequantizeDynamic(byte[] codes, float[] absmax, int blockSize, float[] out) {
        final float[] table = CodeTables.DYNAMIC8;
        for (int i = 0; i < codes.length; i++) {
            out[i] = table[codes[i] & 0xFF] * absmax[i / blockSize];
        }
    }

    /**
     * The sorted index of the dynamic map's value nearest to {@code x} (finite): the number of
     * midpoints strictly below {@code x}, so a value exactly on a midpoint takes the lower value.
     * The map is logarithmic (from about 5e-7 to 1), so the first guess comes from a table indexed
     * by the top bits of {@code x}'s {@link #orderKey order key} (sign, exponent and six mantissa
     * bits: buckets of 1/64 to 1/128 of an octave), which holds the count of midpoints below the
     * bucket; no bucket holds more than two midpoints (checked when the table is built), so two
     * branchless comparisons finish it. The same answer as {@link #encodeDynamicSearch}, an
     * eight-step binary search whose dependent loads made it the slowest part of an 8-bit Adam
     * step.
     */
    static int encodeDynamic(float x) {
        int k = (orderKey(x) >> KEY_SHIFT) + KEY_OFFSET;
        k = Math.max(0, Math.min(DYNAMIC8_BASE.length - 1, k));
        int b = DYNAMIC8_BASE[k] & 0xFF;
        return b + greater(x, DYNAMIC8_MID_PADDED[b]) + greater(x, DYNAMIC8_MID_PADDED[b + 1]);
    }

    /**
     * An int that orders like the float {@code x} (for non-NaN {@code x}; -0.0 just below +0.0):
     * the raw bits for {@code x >= 0}, the magnitude bits flipped for {@code x < 0}.
     */
    static int orderKey(float x) {
        int bits = Float.floatToRawIntBits(x);
        return bits ^ ((bits >> 31) & 0x7FFFFFFF);
    }

    /** Order-key bits below the bucket index of {@link #encodeDynamic}. */
    private static final int KEY_SHIFT = 18;
    /** Added to {@code orderKey >> KEY_SHIFT} so that the bucket of -1.0 is 0 (that of 1.0 is the last). */
    private static final int KEY_OFFSET = -(orderKey(-1f) >> KEY_SHIFT);
    /** The dynamic map's midpoints followed by two +∞, so the encoder may always test two of them. */
    static final float[] DYNAMIC8_MID_PADDED = padded(CodeTables.DYNAMIC8_MID);
    /** Bucket → number of midpoints below every value of the bucket (unsigned byte). */
    static final byte[] DYNAMIC8_BASE = dynamicBase(CodeTables.DYNAMIC8_MID);

    private static float[] padded(float[] mid) {
        float[] m = java.util.Arrays.copyOf(mid, mid.length + 2);
        m[mid.length] = Float.POSITIVE_INFINITY;
        m[mid.length + 1] = Float.POSITIVE_INFINITY;
        return m;
    }

    /**
     * For each bucket (order keys {@code [lo, hi]}, the last one also taking everything above 1.0
     * and the first everything below -1.0, whose codes are the map's ends), the count of midpoints
     * whose key is below {@code lo}.
     *
     * @throws AssertionError if a bucket holds more than two midpoints
     */
    private static byte[] dynamicBase(float[] mid) {
        int buckets = (orderKey(1f) >> KEY_SHIFT) + KEY_OFFSET + 1;
        byte[] base = new byte[buckets];
        for (int k = 0; k < buckets; k++) {
            long lo = (long) (k - KEY_OFFSET) << KEY_SHIFT;
            long hi = lo + (1L << KEY_SHIFT) - 1;
            int below = 0;
            int inside = 0;
            for (float m : mid) {
                long key = orderKey(m);
                if (key < lo) {
                    below++;
                } else if (key <= hi) {
                    inside++;
                }
            }
            if (inside > 2) {
                throw new AssertionError("dynamic-map bucket " + k + " holds " + inside + " midpoints");
            }
            base[k] = (byte) below;
        }
        return base;
    }

    /** Reference encoder: number of midpoints strictly below {@code x}, by binary search. */
    static int encodeDynamicSearch(float x, float[] mid) {
        int i = 0;
        for (int step = 128; step > 0; step >>= 1) {
            i += greater(x, mid[i + step - 1]) * step;
        }
        return i;
    }

    /** 1 if {@code x > t}, else 0, without a branch: the sign bit of {@code t - x}. */
    static int greater(float x, float t) {
        return Float.floatToRawIntBits(t - x) >>> 31;
    }

    /**
     * Symmetric linear int8: per block {@code q = clamp(round(x * (127f / absmax)), -127, 127)};
     * a block of zeros stores absmax 0 and codes 0.
     */
    public static void quantizeLinear(float[] src, int blockSize, byte[] codes, float[] absmax) {
        int n = src.length;
        for (int b = 0, start = 0, end; start < n; b++, start = end) {
            end = (int) Math.min(n, (long) start + blockSize);
            float amax = Blockwise4bit.absmax(src, start, end);
            absmax[b] = amax;
            float mul = amax == 0f ? 0f : 127f / amax;
            for (int i = start; i < end; i++) {
                int q = Math.round(src[i] * mul);
                codes[i] = (byte) Math.max(-127, Math.min(127, q));
            }
        }
    }

    /** {@code out[i] = codes[i] * (absmax[block] / 127f)}. */
    public static void dequantizeLinear(byte[] codes, float[] absmax, int blockSize, float[] out) {
        for (int b = 0, start = 0, end; start < codes.length; b++, start = end) {
            end = (int) Math.min(codes.length, (long) start + blockSize);
            float s = absmax[b] / 127f;
            for (int i = start; i < end; i++) {
                out[i] = codes[i] * s;
            }
        }
    }
}
