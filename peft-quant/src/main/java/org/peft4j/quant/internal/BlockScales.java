package org.peft4j.quant.internal;

/**
 * The per-block absmax of a 4-bit tensor, either as plain float32 values or double-quantized:
 * 8-bit codes of the signed dynamic map, one float32 absmax per {@code nestedBlockSize} codes,
 * and a float32 offset (the mean subtracted before the second quantization). The scale of block
 * {@code b} is then {@code DYNAMIC8[code[b]] * nested[b / nestedBlockSize] + offset}, evaluated in
 * float32 in that order, as bitsandbytes' {@code dequantize_blockwise} followed by {@code += offset}.
 *
 * <p>Thread-safety: immutable once built; the arrays are owned and never written after
 * construction.
 */
public final class BlockScales {
    private final float[] absmax;
    private final byte[] codes;
    private final float[] nested;
    private final float offset;
    private final float[] nestedMap;
    private final int nestedShift;
    private final int count;

    private BlockScales(float[] absmax, byte[] codes, float[] nested, float offset, float[] nestedMap,
                        int nestedBlockSize, int count) {
        this.absmax = absmax;
        this.codes = codes;
        this.nested = nested;
        this.offset = offset;
        this.nestedMap = nestedMap;
        this.nestedShift = Integer.numberOfTrailingZeros(nestedBlockSize);
        this.count = count;
    }

    /** Plain float32 absmax per block; the array is owned from now on. */
    public static BlockScales plain(float[] absmax) {
        return new BlockScales(absmax, null, null, 0f, null, 1, absmax.length);
    }

    /** Double-quantized absmax with the signed dynamic map; the arrays are owned from now on. */
    public static BlockScales nested(byte[] codes, float[] nestedAbsmax, float offset, int nestedBlockSize) {
        return nested(codes, nestedAbsmax, offset, CodeTables.DYNAMIC8, nestedBlockSize);
    }

    /**
     * Double-quantized absmax with a given 256-entry code map (as read from a file: bitsandbytes
     * dequantizes with the stored {@code nested_quant_map}); the arrays are owned from now on.
     */
    public static BlockScales nested(byte[] codes, float[] nestedAbsmax, float offset, float[] nestedMap,
                                     int nestedBlockSize) {
        float[] map = java.util.Arrays.equals(nestedMap, CodeTables.DYNAMIC8) ? CodeTables.DYNAMIC8 : nestedMap;
        return new BlockScales(null, codes, nestedAbsmax, offset, map, nestedBlockSize, codes.length);
    }

    /**
     * Double quantization of plain absmax values: subtract their mean (accumulated in double,
     * stored as float32), then quantize the centred values blockwise with the signed dynamic map.
     */
    public static BlockScales doubleQuantize(float[] absmax, int nestedBlockSize) {
        double sum = 0;
        for (float a : absmax) {
            sum += a;
        }
        float offset = absmax.length == 0 ? 0f : (float) (sum / absmax.length);
        float[] centred = new float[absmax.length];
        for (int i = 0; i < centred.length; i++) {
            centred[i] = absmax[i] - offset;
        }
        byte[] codes = new byte[centred.length];
        float[] nested = new float[Blockwise8bit.blockCount(centred.length, nestedBlockSize)];
        Blockwise8bit.quantizeDynamic(centred, nestedBlockSize, codes, nested);
        return nested(codes, nested, offset, nestedBlockSize);
    }

    public boolean isNested() {
        return absmax == null;
    }

    /** Number of blocks. */
    public int count() {
        return count;
    }

    /** The float32 scale of block {@code b}. */
    public float get(int b) {
        if (absmax != null) {
            return absmax[b];
        }
        return nestedMap[codes[b] & 0xFF] * nested[b >>> nestedShift] + offset;
    }

    /** All scales as float32 (a new array). */
    public float[] toFloats() {
        float[] out = new float[count];
        for (int b = 0; b < count; b++) {
            out[b] = get(b);
        }
        return out;
    }

    /**
     * Bytes of the arrays held, plus 4 for the offset when nested; the shared dynamic map is not
     * counted, a map of its own (read from a file and different from ours) is.
     */
    public long memoryBytes() {
        if (absmax != null) {
            return 4L * absmax.length;
        }
        long map = nestedMap == CodeTables.DYNAMIC8 ? 0 : 4L * nestedMap.length;
        return codes.length + 4L * nested.length + 4L + map;
    }

    /** The plain absmax array (owned; do not write), or null when nested. */
    public float[] plainArray() {
        return absmax;
    }

    /** The 8-bit absmax codes (owned; do not write), or null when plain. */
    public byte[] codesArray() {
        return codes;
    }

    /** The second-level absmax (owned; do not write), or null when plain. */
    public float[] nestedArray() {
        return nested;
    }

    /** The 256-entry map of the absmax codes (owned; do not write), or null when plain. */
    public float[] nestedMapArray() {
        return nestedMap;
    }

    public float offset() {
        return offset;
    }

    public int nestedBlockSize() {
        return 1 << nestedShift;
    }
}
