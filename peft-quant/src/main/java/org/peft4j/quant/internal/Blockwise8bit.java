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
     * Values beyond ±1 take the map's end codes. See {@link #encodeUnit} for how.
     */
    static int encodeDynamic(float x) {
        int key = orderKey(x);
        int k = Math.max(0, Math.min(DYNAMIC8_BUCKETS.length - 1, (key >> KEY_SHIFT) + KEY_OFFSET));
        return codeInBucket(DYNAMIC8_BUCKETS[k], key);
    }

    /**
     * {@link #encodeDynamic} for {@code x} in {@code [-1, 1]}, as a value times the reciprocal of
     * its block's absmax is up to the rounding of that product: the buckets of ±1.0 reach to
     * {@code |x| < 1.0156}, and a value beyond them throws {@link ArrayIndexOutOfBoundsException},
     * never a wrong code.
     *
     * <p>The map is logarithmic (from about 5e-7 to 1), so the code comes from a table indexed by
     * the top bits of {@code x}'s {@link #orderKey order key} (sign, exponent and seven mantissa
     * bits: buckets of 1/128 to 1/256 of an octave). No bucket holds more than one midpoint
     * (checked when the table is built), so an entry holds the count of midpoints below the bucket
     * and the low key bits of the midpoint inside it, and one integer comparison finishes it: one
     * table load per value. An eight-step binary search ({@link #encodeDynamicSearch}) and then a
     * coarser table with two float comparisons were each the slowest part of an 8-bit Adam step.
     */
    static int encodeUnit(float x) {
        int key = orderKey(x);
        return codeInBucket(DYNAMIC8_BUCKETS[(key >> KEY_SHIFT) + KEY_OFFSET], key);
    }

    /** Bucket entry and order key → code: the midpoints below the bucket, plus one if the key is above the bucket's midpoint. */
    private static int codeInBucket(int entry, int key) {
        return (entry >>> KEY_SHIFT) + (((entry & KEY_LOW) - (key & KEY_LOW)) >>> 31);
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
    static final int KEY_SHIFT = 17;
    private static final int KEY_LOW = (1 << KEY_SHIFT) - 1;
    /** Added to {@code orderKey >> KEY_SHIFT} so that the bucket of -1.0 is 0 (that of 1.0 is the last). */
    private static final int KEY_OFFSET = -(orderKey(-1f) >> KEY_SHIFT);
    /**
     * Bucket → {@code below << KEY_SHIFT | low}: {@code below} the number of midpoints whose key is
     * below the bucket, {@code low} the low key bits of the one midpoint inside it, or all ones
     * when there is none (no key of the bucket is above that).
     */
    static final int[] DYNAMIC8_BUCKETS = dynamicBuckets(CodeTables.DYNAMIC8_MID);

    /**
     * The entries of {@link #DYNAMIC8_BUCKETS} for the buckets from that of -1.0 to that of 1.0;
     * the first and the last hold no midpoint, so a key clamped into them gets the map's end code.
     *
     * @throws AssertionError if a bucket holds more than one midpoint, or an end bucket one
     */
    private static int[] dynamicBuckets(float[] mid) {
        int buckets = (orderKey(1f) >> KEY_SHIFT) + KEY_OFFSET + 1;
        int[] table = new int[buckets];
        for (int k = 0; k < buckets; k++) {
            long lo = (long) (k - KEY_OFFSET) << KEY_SHIFT;
            long hi = lo + KEY_LOW;
            int below = 0;
            int inside = 0;
            int low = KEY_LOW;
            for (float m : mid) {
                long key = orderKey(m);
                if (key < lo) {
                    below++;
                } else if (key <= hi) {
                    inside++;
                    low = (int) (key & KEY_LOW);
                }
            }
            if (inside > 1 || inside > 0 && (k == 0 || k == buckets - 1)) {
                throw new AssertionError("dynamic-map bucket " + k + " holds " + inside + " midpoints");
            }
            table[k] = below << KEY_SHIFT | low;
        }
        return table;
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
