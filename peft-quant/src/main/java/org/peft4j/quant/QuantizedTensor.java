package org.peft4j.quant;

import java.util.Arrays;
import java.util.Map;
import java.util.Objects;
import java.util.stream.IntStream;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.quant.internal.BlockScales;
import org.peft4j.quant.internal.Blockwise4bit;
import org.peft4j.quant.internal.Blockwise8bit;
import org.peft4j.quant.internal.CodeTables;
import org.peft4j.quant.internal.QuantStateIo;

/**
 * A tensor stored as 4-bit codes (NF4 or FP4) with one scale per block, bitsandbytes-compatible.
 *
 * <h2>Format</h2>
 * The tensor of shape {@code shape} is flattened in C (row-major) order into {@code n} elements
 * and cut into {@code ceil(n / blockSize)} blocks; the last block may be partial.
 * <ul>
 *   <li>{@code absmax[b] = max |x|} over block {@code b};</li>
 *   <li>{@code code(x) = argmin_c |table[c] - x * (1f / max(absmax[b], 1e-38f))|}, evaluated with
 *       the float32 midpoints of the table, a value exactly on a midpoint taking the lower value
 *       (as bitsandbytes' CPU and CUDA code); a block of zeros gets the code of 0.0;</li>
 *   <li>two codes per byte, element {@code 2k} in the high nibble, {@code 2k+1} in the low nibble;
 *       {@code packed.length == ceil(n / 2)}: an odd {@code n} is padded, like bitsandbytes, with
 *       the code of 0.0 in the last low nibble;</li>
 *   <li>{@code dequantize(x)[i] = table[code[i]] * absmax[i / blockSize]} in float32.</li>
 * </ul>
 * With double quantization the absmax values are stored as {@code offset = mean(absmax)} plus
 * 8-bit codes of the signed dynamic map for {@code absmax - offset}, in blocks of 256 with their
 * own float32 absmax ({@code nestedAbsmax}); the effective scale is
 * {@code dynamic[code] * nestedAbsmax[b / 256] + offset}.
 *
 * <p>Memory: {@link #memoryBytes()} counts exactly the arrays this object holds (packed codes,
 * scales, nested scales, and 4 bytes for the offset); the code tables are shared constants and not
 * counted. {@link #bitsPerParameter()} is {@code 8 * memoryBytes() / n}.
 *
 * <p>Size limit: at most {@link Integer#MAX_VALUE} - 8 elements (the dequantized output must fit
 * one Java array).
 *
 * <p>Thread-safety: immutable; every accessor returns a copy, so instances may be shared freely
 * between threads.
 */
public final class QuantizedTensor {
    /** Largest element count supported. */
    public static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    private static final int PARALLEL_THRESHOLD = 1 << 20;

    private final QuantType type;
    private final int blockSize;
    private final long[] shape;
    private final int length;
    private final byte[] packed;
    private final BlockScales scales;

    private QuantizedTensor(QuantType type, int blockSize, long[] shape, int length, byte[] packed, BlockScales scales) {
        this.type = type;
        this.blockSize = blockSize;
        this.shape = shape;
        this.length = length;
        this.packed = packed;
        this.scales = scales;
    }

    /**
     * Quantizes {@code data} (C order) of the given shape.
     *
     * @throws IllegalArgumentException if the data length differs from the product of the shape, a
     *                                  value is NaN or infinite (the message names its flat index),
     *                                  or the shape is empty or too large
     */
    public static QuantizedTensor quantize(float[] data, long[] shape, QuantSpec spec) {
        Objects.requireNonNull(data, "data must not be null");
        Objects.requireNonNull(spec, "spec must not be null");
        long[] s = checkShape(shape);
        int n = (int) product(s);
        if (data.length != n) {
            throw new IllegalArgumentException("data has " + data.length + " elements but shape "
                    + Arrays.toString(s) + " needs " + n);
        }
        int bs = spec.blockSize();
        int blocks = Blockwise8bit.blockCount(n, bs);
        byte[] packed = new byte[(n + 1) / 2];
        float[] absmax = new float[blocks];
        if (n >= PARALLEL_THRESHOLD) {
            int chunkBlocks = Math.max(1, (1 << 16) / bs);
            int chunks = (blocks + chunkBlocks - 1) / chunkBlocks;
            IntStream.range(0, chunks).parallel().forEach(c -> {
                int from = c * chunkBlocks * bs;
                int to = (int) Math.min(n, (long) (c + 1) * chunkBlocks * bs);
                Blockwise4bit.quantize(data, from, to, bs, spec.type(), packed, absmax);
            });
        } else {
            Blockwise4bit.quantize(data, 0, n, bs, spec.type(), packed, absmax);
        }
        BlockScales scales = spec.doubleQuant()
                ? BlockScales.doubleQuantize(absmax, QuantSpec.NESTED_BLOCK_SIZE)
                : BlockScales.plain(absmax);
        return new QuantizedTensor(spec.type(), bs, s, n, packed, scales);
    }

    /**
     * Quantizes an ND4J array of any order and floating dtype (read in C order as float32).
     *
     * @throws IllegalArgumentException as {@link #quantize(float[], long[], QuantSpec)}
     */
    public static QuantizedTensor quantize(INDArray array, QuantSpec spec) {
        Objects.requireNonNull(array, "array must not be null");
        float[] data = array.castTo(DataType.FLOAT).dup('c').data().asFloat();
        return quantize(data, array.shape(), spec);
    }

    /**
     * Builds a tensor from stored parts with plain float32 block scales (copies the arrays).
     *
     * @throws IllegalArgumentException if an array length disagrees with the shape and block size,
     *                                  or a scale is negative, NaN or infinite
     */
    public static QuantizedTensor fromParts(QuantType type, int blockSize, long[] shape, byte[] packed, float[] absmax) {
        QuantSpec.checkBlockSize(blockSize);
        long[] s = checkShape(shape);
        int n = (int) product(s);
        checkPacked(packed, n, s);
        int blocks = Blockwise8bit.blockCount(n, blockSize);
        if (absmax.length != blocks) {
            throw new IllegalArgumentException("absmax has " + absmax.length + " values but " + n
                    + " elements in blocks of " + blockSize + " need " + blocks);
        }
        checkScales("absmax", absmax);
        return new QuantizedTensor(Objects.requireNonNull(type), blockSize, s, n, packed.clone(),
                BlockScales.plain(absmax.clone()));
    }

    /**
     * Builds a tensor from stored parts with double-quantized block scales (copies the arrays).
     *
     * @param absmaxCodes  one 8-bit dynamic-map code per block
     * @param nestedAbsmax one float32 absmax per {@link QuantSpec#NESTED_BLOCK_SIZE} codes
     * @param offset       the mean subtracted from the absmax values before quantizing them
     * @throws IllegalArgumentException if an array length disagrees with the shape and block sizes,
     *                                  a nested scale is negative, NaN or infinite, or the offset is
     *                                  not finite
     */
    public static QuantizedTensor fromParts(QuantType type, int blockSize, long[] shape, byte[] packed,
                                            byte[] absmaxCodes, float[] nestedAbsmax, float offset) {
        return fromParts(type, blockSize, shape, packed, absmaxCodes, nestedAbsmax, offset, CodeTables.dynamic8());
    }

    /**
     * As {@link #fromParts(QuantType, int, long[], byte[], byte[], float[], float)}, with the
     * 256-value map that decodes the absmax codes given explicitly (bitsandbytes stores it as
     * {@code nested_quant_map}; the other overload uses the signed dynamic map).
     *
     * @throws IllegalArgumentException as the other overload, or if the map does not hold 256 finite values
     */
    public static QuantizedTensor fromParts(QuantType type, int blockSize, long[] shape, byte[] packed,
                                            byte[] absmaxCodes, float[] nestedAbsmax, float offset,
                                            float[] nestedQuantMap) {
        QuantSpec.checkBlockSize(blockSize);
        long[] s = checkShape(shape);
        int n = (int) product(s);
        checkPacked(packed, n, s);
        int blocks = Blockwise8bit.blockCount(n, blockSize);
        if (absmaxCodes.length != blocks) {
            throw new IllegalArgumentException("absmax codes have " + absmaxCodes.length + " bytes but " + n
                    + " elements in blocks of " + blockSize + " need " + blocks);
        }
        int nested = Blockwise8bit.blockCount(blocks, QuantSpec.NESTED_BLOCK_SIZE);
        if (nestedAbsmax.length != nested) {
            throw new IllegalArgumentException("nested absmax has " + nestedAbsmax.length + " values but "
                    + blocks + " block scales in blocks of " + QuantSpec.NESTED_BLOCK_SIZE + " need " + nested);
        }
        checkScales("nested absmax", nestedAbsmax);
        if (!Float.isFinite(offset)) {
            throw new IllegalArgumentException("offset was " + offset + "; expected a finite float");
        }
        if (nestedQuantMap.length != 256) {
            throw new IllegalArgumentException("nested quant map has " + nestedQuantMap.length
                    + " values; expected 256, one per 8-bit code");
        }
        for (int i = 0; i < nestedQuantMap.length; i++) {
            if (!Float.isFinite(nestedQuantMap[i])) {
                throw new IllegalArgumentException("nested quant map[" + i + "] is " + nestedQuantMap[i]
                        + "; expected a finite value");
            }
        }
        return new QuantizedTensor(Objects.requireNonNull(type), blockSize, s, n, packed.clone(),
                BlockScales.nested(absmaxCodes.clone(), nestedAbsmax.clone(), offset, nestedQuantMap.clone(),
                        QuantSpec.NESTED_BLOCK_SIZE));
    }

    /** Block scales are absolute maxima: finite and not negative (a negative one would flip a block's sign). */
    private static void checkScales(String what, float[] scales) {
        for (int i = 0; i < scales.length; i++) {
            if (!(scales[i] >= 0f) || scales[i] == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException(what + "[" + i + "] is " + scales[i]
                        + "; block scales must be finite and >= 0");
            }
        }
    }

    private static void checkPacked(byte[] packed, int n, long[] shape) {
        int expected = (n + 1) / 2;
        if (packed.length != expected) {
            throw new IllegalArgumentException("packed buffer has " + packed.length + " bytes but shape "
                    + Arrays.toString(shape) + " (" + n + " elements, two per byte) needs " + expected);
        }
    }

    private static long[] checkShape(long[] shape) {
        Objects.requireNonNull(shape, "shape must not be null");
        if (shape.length == 0) {
            throw new IllegalArgumentException("shape was []; expected at least one dimension");
        }
        long n = 1;
        for (long d : shape) {
            if (d <= 0) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape)
                        + " has a dimension of " + d + "; expected all dimensions >= 1");
            }
            n *= d;
            if (n > MAX_ELEMENTS) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than "
                        + MAX_ELEMENTS + " elements, the largest supported");
            }
        }
        return shape.clone();
    }

    private static long product(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** The code table. */
    public QuantType type() {
        return type;
    }

    /** Elements per absmax block. */
    public int blockSize() {
        return blockSize;
    }

    /** The shape (a copy). */
    public long[] shape() {
        return shape.clone();
    }

    /** The number of elements, the product of the shape. */
    public int length() {
        return length;
    }

    /** Whether the block scales are double-quantized. */
    public boolean isDoubleQuantized() {
        return scales.isNested();
    }

    /** How this tensor was quantized: code table, block size, double quantization. */
    public QuantSpec spec() {
        return new QuantSpec(type, blockSize, isDoubleQuantized());
    }

    /** The number of absmax blocks, {@code ceil(length / blockSize)}. */
    public int blockCount() {
        return scales.count();
    }

    /** The packed codes (a copy), {@code ceil(length / 2)} bytes, first element in the high nibble. */
    public byte[] packedCodes() {
        return packed.clone();
    }

    /**
     * The effective float32 scale of every block (a new array): the stored absmax, or when double
     * quantized, {@code dynamic[code] * nestedAbsmax[b / 256] + offset}.
     */
    public float[] absmax() {
        return scales.toFloats();
    }

    /** The 8-bit absmax codes (a copy); empty when not double-quantized. */
    public byte[] absmaxCodes() {
        return scales.isNested() ? scales.codesArray().clone() : new byte[0];
    }

    /** The second-level absmax values (a copy); empty when not double-quantized. */
    public float[] nestedAbsmax() {
        return scales.isNested() ? scales.nestedArray().clone() : new float[0];
    }

    /**
     * The 256 values that decode the absmax codes (a copy): the signed dynamic map unless the
     * tensor was read with another ({@code nested_quant_map}); empty when not double-quantized.
     */
    public float[] nestedQuantMap() {
        return scales.isNested() ? scales.nestedMapArray().clone() : new float[0];
    }

    /** The mean subtracted before double quantization; 0 when not double-quantized. */
    public float offset() {
        return scales.offset();
    }

    /** Exact bytes of the arrays held: packed codes, scales, nested scales, plus 4 for the offset. */
    public long memoryBytes() {
        return packed.length + scales.memoryBytes();
    }

    /** {@code 8 * memoryBytes() / length()}: 4.5 at block 64 without double quantization. */
    public double bitsPerParameter() {
        return 8.0 * memoryBytes() / length;
    }

    /** The float32 tensor these codes stand for, flattened in C order (a new array). */
    public float[] dequantize() {
        float[] out = new float[length];
        dequantize(0, length, out, 0);
        return out;
    }

    /**
     * Writes elements {@code [from, to)} (flat C-order indices) of the dequantized tensor into
     * {@code out} starting at {@code outOffset}. Ranges of a million elements or more are split
     * over the common ForkJoin pool.
     *
     * @throws IndexOutOfBoundsException if the range is outside the tensor or the output
     */
    public void dequantize(int from, int to, float[] out, int outOffset) {
        Objects.checkFromToIndex(from, to, length);
        Objects.checkFromIndexSize(outOffset, to - from, out.length);
        float[] pair = Blockwise4bit.pairTable(type);
        int count = to - from;
        if (count >= PARALLEL_THRESHOLD) {
            int chunk = 1 << 16;
            int chunks = (int) ((count + (long) chunk - 1) / chunk);
            IntStream.range(0, chunks).parallel().forEach(c -> {
                int start = from + c * chunk;
                int end = (int) Math.min(to, (long) start + chunk);
                Blockwise4bit.dequantize(packed, scales, blockSize, pair, start, end, out, outOffset + start - from);
            });
        } else {
            Blockwise4bit.dequantize(packed, scales, blockSize, pair, from, to, out, outOffset);
        }
    }

    /** The dequantized tensor as a new float32 C-order {@link INDArray} of {@link #shape()}. */
    public INDArray toINDArray() {
        return Nd4j.create(dequantize(), shape.clone(), 'c');
    }

    /**
     * The tensors bitsandbytes writes for a 4-bit parameter, keyed {@code prefix + ".weight"} (U8
     * packed codes of shape {@code [ceil(n/2), 1]}, like bitsandbytes' {@code Params4bit}),
     * {@code ".weight.absmax"} (F32, or the U8 absmax codes when double-quantized),
     * {@code ".weight.quant_map"} (F32 [16]), when double-quantized {@code ".weight.nested_absmax"}
     * (F32) and {@code ".weight.nested_quant_map"} (F32 [256]), and
     * {@code ".weight.quant_state.bitsandbytes__nf4"} (or {@code __fp4}): U8 bytes of the JSON
     * {@code QuantState.as_dict(packed=True)} holds ({@code quant_type, blocksize, dtype, shape} and
     * {@code nested_blocksize, nested_dtype, nested_offset}). The map keeps insertion order.
     *
     * @param prefix the module name, e.g. {@code model.layers.0.mlp.down_proj}
     */
    public Map<String, SafeTensor> toTensors(String prefix) {
        Objects.requireNonNull(prefix, "prefix must not be null");
        return QuantStateIo.toTensors(prefix, type, blockSize, shape, packed, scales);
    }

    /**
     * Reads the tensors written by {@link #toTensors(String)} or by bitsandbytes for the 4-bit
     * parameter {@code prefix}; other keys in the map are ignored. The stored {@code dtype} (the
     * original tensor's, e.g. bfloat16) is not kept: this class always dequantizes to float32. The
     * stored {@code nested_quant_map} is used as is, as bitsandbytes does.
     *
     * @throws AdapterFormatException if an entry is missing, has the wrong dtype or length for the
     *                                stated shape and block size, the quant state JSON is
     *                                malformed, or the stored 4-bit map is not the NF4/FP4 table
     */
    public static QuantizedTensor fromTensors(String prefix, Map<String, SafeTensor> tensors) {
        Objects.requireNonNull(prefix, "prefix must not be null");
        Objects.requireNonNull(tensors, "tensors must not be null");
        QuantStateIo.Parts p = QuantStateIo.fromTensors(prefix, tensors);
        try {
            if (p.absmaxCodes() == null) {
                return fromParts(p.type(), p.blockSize(), p.shape(), p.packed(), p.absmax());
            }
            return fromParts(p.type(), p.blockSize(), p.shape(), p.packed(), p.absmaxCodes(), p.nestedAbsmax(),
                    p.offset(), p.nestedMap());
        } catch (IllegalArgumentException e) {
            throw new AdapterFormatException("4-bit tensor " + prefix + ".weight is inconsistent: " + e.getMessage(), e);
        }
    }

    // Package-private views for the kernels (no copies).
    byte[] packedArray() {
        return packed;
    }

    BlockScales scales() {
        return scales;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof QuantizedTensor t)) {
            return false;
        }
        return type == t.type && blockSize == t.blockSize && Arrays.equals(shape, t.shape)
                && Arrays.equals(packed, t.packed) && scales.isNested() == t.scales.isNested()
                && Arrays.equals(scales.plainArray(), t.scales.plainArray())
                && Arrays.equals(scales.codesArray(), t.scales.codesArray())
                && Arrays.equals(scales.nestedArray(), t.scales.nestedArray())
                && Arrays.equals(scales.nestedMapArray(), t.scales.nestedMapArray())
                && Float.compare(scales.offset(), t.scales.offset()) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(type, blockSize, Arrays.hashCode(shape), Arrays.hashCode(packed),
                Arrays.hashCode(scales.plainArray()), Arrays.hashCode(scales.codesArray()));
    }

    @Override
    public String toString() {
        return "QuantizedTensor{type=" + type + ", shape=" + Arrays.toString(shape) + ", blockSize=" + blockSize
                + ", doubleQuant=" + scales.isNested() + ", memoryBytes=" + memoryBytes()
                + ", bitsPerParameter=" + String.format(java.util.Locale.ROOT, "%.4f", bitsPerParameter()) + "}";
    }
}
