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
        final float[] mid = CodeTables.DYNAMIC8_MID;
        int n = src.length;
        for (int b = 0, start = 0, end; start < n; b++, start = end) {
            end = (int) Math.min(n, (long) start + blockSize);
            float amax = Blockwise4bit.absmax(src, start, end);
            absmax[b] = amax;
            float inv = 1f / Math.max(amax, MIN_ABSMAX);
            for (int i = start; i < end; i++) {
                codes[i] = (byte) encodeDynamic(src[i] * inv, mid);
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

    /** Number of midpoints strictly below {@code x}: the sorted index of the nearest value. */
    static int encodeDynamic(float x, float[] mid) {
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
