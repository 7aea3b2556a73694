package org.peft4j.quant.internal;

import java.util.Arrays;

/**
 * The code tables of the blockwise codecs and the float32 rounding thresholds derived from them.
 *
 * <p>Every table maps a code (array index) to a value in [-1, 1]; a block value {@code x} with
 * block absmax {@code a} is stored as the code whose value is nearest to {@code x * (1f / a)},
 * with ties (a scaled value exactly on the float32 midpoint of two neighbouring table values)
 * going to the lower value, as in bitsandbytes' CPU path ({@code torch.bucketize} against the
 * midpoints) and its CUDA decision trees ({@code x > threshold}).
 *
 * <p>Thread-safety: all fields are effectively immutable after class initialisation; the arrays
 * are never handed out (accessors return copies) except to package-internal kernels that only
 * read them.
 */
public final class CodeTables {

    /** NF4 values, QLoRA (arXiv 2305.14314) and bitsandbytes {@code get_4bit_type("nf4")}. */
    static final float[] NF4 = {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    };

    /**
     * FP4 (1 sign, 2 exponent, 1 mantissa bit) in code order, as bitsandbytes builds it: the
     * magnitudes {0, 0.0625, 8, 12, 4, 6, 2, 3} for codes 0..7, bit 3 the sign, all divided by 12
     * in float32. Code 8 is +0.0 (bitsandbytes writes {@code -0}, a Python int, which is 0).
     */
    static final float[] FP4 = fp4();

    /** bitsandbytes {@code create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)}. */
    static final float[] DYNAMIC8 = dynamicMap();

    /** Sorted-order thresholds and sorted-index-to-code maps for each table. */
    static final float[] NF4_MID = midpoints(sortedValues(NF4));
    static final byte[] NF4_ORDER = order(NF4);
    static final float[] FP4_MID = midpoints(sortedValues(FP4));
    static final byte[] FP4_ORDER = order(FP4);
    static final float[] DYNAMIC8_MID = midpoints(DYNAMIC8);

    private CodeTables() {
    }

    /** A copy of the NF4 table (code → value). */
    public static float[] nf4() {
        return NF4.clone();
    }

    /** A copy of the FP4 table (code → value). */
    public static float[] fp4Table() {
        return FP4.clone();
    }

    /** A copy of the signed dynamic 8-bit map (code → value, sorted ascending). */
    public static float[] dynamic8() {
        return DYNAMIC8.clone();
    }

    private static float[] fp4() {
        float[] raw = {0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, 0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f};
        float[] t = new float[16];
        for (int i = 0; i < 16; i++) {
            t[i] = raw[i] / 12f;
        }
        return t;
    }

    /**
     * Rebuilds the signed dynamic map in float32 arithmetic the way torch evaluates the Python
     * recipe: for exponent step i = 0..6, {@code 2^i + 1} points of {@code linspace(0.1, 1)}
     * (float32, computed from both ends like torch's CPU kernel), the means of neighbours, times
     * {@code 10^(i-6)}, both signs; then 0 and 1.0; sorted.
     */
    private static float[] dynamicMap() {
        float[] data = new float[256];
        int n = 0;
        final int maxExponentBits = 7;
        for (int i = 0; i < maxExponentBits; i++) {
            int items = (1 << i) + 1;
            float[] bounds = linspace(0.1f, 1.0f, items);
            float scale = (float) Math.pow(10, -(maxExponentBits - 1) + i);
            for (int k = 0; k + 1 < items; k++) {
                float mean = (bounds[k] + bounds[k + 1]) / 2.0f;
                float v = scale * mean;
                data[n++] = v;
                data[n++] = -v;
            }
        }
        data[n++] = 0f;
        data[n++] = 1.0f;
        if (n != 256) {
            throw new AssertionError("dynamic map has " + n + " entries, expected 256");
        }
        Arrays.sort(data);
        return data;
    }

    private static float[] linspace(float start, float end, int steps) {
        float[] out = new float[steps];
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int idx = 0; idx < steps; idx++) {
            out[idx] = idx < halfway ? start + step * idx : end - step * (steps - idx - 1);
        }
        return out;
    }

    /** Values sorted ascending; equal values keep code order (stable). */
    private static float[] sortedValues(float[] table) {
        byte[] ord = order(table);
        float[] s = new float[table.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = table[ord[i]];
        }
        return s;
    }

    /** Sorted position → code, stable for equal values (FP4's two zeros: code 0 comes first). */
    private static byte[] order(float[] table) {
        Integer[] idx = new Integer[table.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> Float.compare(table[a] + 0f, table[b] + 0f) != 0
                ? Float.compare(table[a] + 0f, table[b] + 0f) : Integer.compare(a, b));
        byte[] out = new byte[idx.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) (int) idx[i];
        }
        return out;
    }

    /** Float32 midpoints {@code (s[i] + s[i+1]) / 2} of a sorted table. */
    private static float[] midpoints(float[] sorted) {
        float[] m = new float[sorted.length - 1];
        for (int i = 0; i < m.length; i++) {
            m[i] = (sorted[i] + sorted[i + 1]) / 2f;
        }
        return m;
    }
}
