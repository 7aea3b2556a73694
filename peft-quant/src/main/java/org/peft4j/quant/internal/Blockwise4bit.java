package org.peft4j.quant.internal;

import org.peft4j.quant.QuantType;

/**
 * Blockwise 4-bit quantization and dequantization with bitsandbytes' semantics.
 *
 * <p>Layout: the tensor is flattened in C order and cut into blocks of {@code blockSize}
 * elements (the last one may be shorter). Block {@code b} stores {@code absmax[b] = max|x|};
 * element {@code x} becomes the code nearest to {@code x * (1f / max(absmax, 1e-38f))} (ties to
 * the lower value). Two codes share a byte, element {@code 2k} in the high nibble and
 * {@code 2k+1} in the low nibble; an odd element count is padded with the code of 0.0 in the low
 * nibble of the last byte, as bitsandbytes pads. Dequantization is {@code table[code] * absmax[b]}
 * in float32.
 *
 * <p>Hand-written because ND4J has no 4-bit type or lookup-table op. The encoder looks up a
 * 1025-bucket table for the number of midpoints below the value's bucket and finishes with two
 * branchless comparisons (sign bit of {@code t - x}), so random data costs no branch
 * mispredictions; the decoder reads a 256-entry table that turns one byte into its two float
 * values.
 *
 * <p>Thread-safety: stateless; callers own the arrays they pass.
 */
public final class Blockwise4bit {
    /** byte → (value of high nibble, value of low nibble), 512 floats, for NF4. */
    static final float[] PAIR_NF4 = pairTable(CodeTables.NF4);
    /** byte → (value of high nibble, value of low nibble), 512 floats, for FP4. */
    static final float[] PAIR_FP4 = pairTable(CodeTables.FP4);

    /** Buckets of width 2/1024 over [-1, 1] for the encoder's first guess. */
    private static final int BUCKETS = 1024;
    private static final float BUCKET_SCALE = BUCKETS / 2f;
    /** Midpoints padded with two +∞ so the encoder may always test two of them. */
    static final float[] NF4_MID_PADDED = padded(CodeTables.NF4_MID);
    static final float[] FP4_MID_PADDED = padded(CodeTables.FP4_MID);
    /** Bucket → number of midpoints certainly below every value falling into the bucket. */
    static final byte[] NF4_BASE = bucketBase(CodeTables.NF4_MID);
    static final byte[] FP4_BASE = bucketBase(CodeTables.FP4_MID);

    private Blockwise4bit() {
    }

    private static float[] padded(float[] mid) {
        float[] m = java.util.Arrays.copyOf(mid, mid.length + 2);
        m[mid.length] = Float.POSITIVE_INFINITY;
        m[mid.length + 1] = Float.POSITIVE_INFINITY;
        return m;
    }

    /**
     * For each bucket {@code [lo, hi)}, the count of midpoints below {@code lo - δ}; checked so that
     * at most two midpoints lie in {@code [lo - δ, hi + δ]}, which makes two comparisons exact
     * whatever the rounding of the bucket index (δ = 1e-5 ≫ that rounding).
     */
    private static byte[] bucketBase(float[] mid) {
        final double delta = 1e-5;
        byte[] base = new byte[BUCKETS + 1];
        for (int k = 0; k <= BUCKETS; k++) {
            double lo = (double) k / BUCKET_SCALE - 1 - delta;
            double hi = (double) (k + 1) / BUCKET_SCALE - 1 + delta;
            int below = 0;
            int inside = 0;
            for (float m : mid) {
                if (m < lo) {
                    below++;
                } else if (m <= hi) {
                    inside++;
                }
            }
            if (inside > 2) {
                throw new AssertionError("bucket " + k + " holds " + inside + " midpoints");
            }
            base[k] = (byte) below;
        }
        return base;
    }

    public static float[] table(QuantType type) {
        return type == QuantType.NF4 ? CodeTables.NF4 : CodeTables.FP4;
    }

    public static float[] pairTable(QuantType type) {
        return type == QuantType.NF4 ? PAIR_NF4 : PAIR_FP4;
    }

    /** The code whose value is 0.0 (used for all-zero blocks and padding). */
    public static int zeroCode(QuantType type) {
        return type == QuantType.NF4 ? 7 : 0;
    }

    private static float[] pairTable(float[] t) {
        float[] p = new float[512];
        for (int v = 0; v < 256; v++) {
            p[2 * v] = t[v >>> 4];
            p[2 * v + 1] = t[v & 15];
        }
        return p;
    }

    /**
     * {@code max |src[i]|} over {@code [start, end)}.
     *
     * @throws IllegalArgumentException naming the first NaN or infinite element
     */
    public static float absmax(float[] src, int start, int end) {
        float m = 0f;
        for (int i = start; i < end; i++) {
            m = Math.max(m, Math.abs(src[i]));
        }
        if (!(m <= Float.MAX_VALUE)) {
            for (int i = start; i < end; i++) {
                if (!Float.isFinite(src[i])) {
                    throw new IllegalArgumentException("element at flat index " + i + " is " + src[i]
                            + "; quantization needs finite values (no NaN or infinity)");
                }
            }
        }
        return m;
    }

    /**
     * Quantizes {@code src[from, to)} (whole blocks, {@code from} a multiple of blockSize) into
     * {@code packed} and {@code absmax}; {@code n} is the total element count (for padding).
     */
    public static void quantize(float[] src, int from, int to, int blockSize, QuantType type,
                                byte[] packed, float[] absmax) {
        final float[] mid = type == QuantType.NF4 ? NF4_MID_PADDED : FP4_MID_PADDED;
        final byte[] base = type == QuantType.NF4 ? NF4_BASE : FP4_BASE;
        final byte[] order = type == QuantType.NF4 ? null : CodeTables.FP4_ORDER;
        final int zero = zeroCode(type);
        for (int start = from, end; start < to; start = end) {
            end = (int) Math.min(to, (long) start + blockSize);
            float amax = absmax(src, start, end);
            absmax[start / blockSize] = amax;
            float inv = 1f / Math.max(amax, Blockwise8bit.MIN_ABSMAX);
            int i = start;
            if (order == null) {
                for (; i + 1 < end; i += 2) {
                    int hi = encode4(src[i] * inv, mid, base);
                    int lo = encode4(src[i + 1] * inv, mid, base);
                    packed[i >>> 1] = (byte) ((hi << 4) | lo);
                }
            } else {
                for (; i + 1 < end; i += 2) {
                    int hi = order[encode4(src[i] * inv, mid, base)];
                    int lo = order[encode4(src[i + 1] * inv, mid, base)];
                    packed[i >>> 1] = (byte) ((hi << 4) | lo);
                }
            }
            if (i < end) {
                int hi = encode4(src[i] * inv, mid, base);
                if (order != null) {
                    hi = order[hi];
                }
                packed[i >>> 1] = (byte) ((hi << 4) | zero);
            }
        }
    }

    /**
     * Sorted index of the nearest table value: the number of midpoints strictly below {@code x}
     * (so a value exactly on a midpoint takes the lower value). A bucket table gives the count
     * below the bucket; two branchless comparisons (sign bit of {@code t - x}) finish it.
     */
    static int encode4(float x, float[] midPadded, byte[] base) {
        int k = (int) ((x + 1f) * BUCKET_SCALE);
        k = Math.max(0, Math.min(BUCKETS, k));
        int b = base[k];
        return b + Blockwise8bit.greater(x, midPadded[b]) + Blockwise8bit.greater(x, midPadded[b + 1]);
    }

    /** Reference encoder: branchless binary search over the 15 midpoints. */
    static int encode4Search(float x, float[] mid) {
        int i = Blockwise8bit.greater(x, mid[7]) << 3;
        i += Blockwise8bit.greater(x, mid[i + 3]) << 2;
        i += Blockwise8bit.greater(x, mid[i + 1]) << 1;
        i += Blockwise8bit.greater(x, mid[i]);
        return i;
    }

    /**
     * Writes elements {@code [from, to)} of the dequantized tensor to {@code out[outOff ...]}.
     * Any range is allowed (odd starts, partial blocks). Where {@link VectorKernels} enables them,
     * whole blocks from a block-aligned start go through {@link Dequant4bitVector} (bit-identical
     * output), the rest through the scalar loop.
     */
    public static void dequantize(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                  int from, int to, float[] out, int outOff) {
        int done = VectorKernels.dequantize(packed, scales, blockSize, pair, from, to, out, outOff);
        dequantizeScalar(packed, scales, blockSize, pair, from + done, to, out, outOff + done);
    }

    /** {@link #dequantize} with the scalar loop whatever {@link VectorKernels} decided. */
    static void dequantizeScalar(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                 int from, int to, float[] out, int outOff) {
        checkPairTable(pair);
        dequantizeKnownTable(packed, scales, blockSize, pair, from, to, out, outOff);
    }

    /**
     * Refuses a pair table that is not {@link #PAIR_NF4} or {@link #PAIR_FP4} itself: the scalar
     * kernels select one of those two static arrays in their loops (so C2 knows the length and
     * drops range checks) and would otherwise read another table than the one passed.
     */
    static void checkPairTable(float[] pair) {
        if (pair != PAIR_NF4 && pair != PAIR_FP4) {
            throw new IllegalArgumentException("pair table must be Blockwise4bit.pairTable(type) itself, not a copy");
        }
    }

    /**
     * {@link #dequantizeScalar}'s loop: the table is selected here as one of the two static final
     * arrays of length 512, so C2 drops the range checks of the table loads (it keeps them for a
     * table passed in as a parameter).
     */
    private static void dequantizeKnownTable(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                                             int from, int to, float[] out, int outOff) {
        final float[] t = pair == PAIR_FP4 ? PAIR_FP4 : PAIR_NF4;
        int shift = Integer.numberOfTrailingZeros(blockSize);
        int e = from;
        int o = outOff - from;
        while (e < to) {
            int b = e >>> shift;
            int end = (int) Math.min(to, ((long) b + 1) << shift);
            float s = scales.get(b);
            if ((e & 1) != 0) {
                out[o + e] = t[2 * (packed[e >>> 1] & 0xFF) + 1] * s;
                e++;
            }
            int half = ((end & ~1) - e) >>> 1;
            int pb = e >>> 1;
            int ob = o + e;
            for (int k = 0; k < half; k++) {
                int p = (packed[pb + k] & 0xFF) << 1;
                out[ob + 2 * k] = t[p] * s;
                out[ob + 2 * k + 1] = t[p + 1] * s;
            }
            e += 2 * half;
            if (e < end) {
                out[o + e] = t[2 * (packed[e >>> 1] & 0xFF)] * s;
                e++;
            }
        }
    }
}
