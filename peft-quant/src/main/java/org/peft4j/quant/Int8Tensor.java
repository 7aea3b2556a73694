package org.peft4j.quant;

import java.util.Arrays;
import java.util.Objects;

import org.peft4j.quant.internal.Blockwise8bit;

/**
 * A float32 vector stored blockwise as 8-bit codes with one float32 absmax per block, for
 * low-memory optimizer state (bitsandbytes' 8-bit optimizers use the {@link Int8Scheme#DYNAMIC}
 * map in blocks of 256).
 *
 * <p>Block {@code b} covers elements {@code [b·blockSize, (b+1)·blockSize)} (the last may be
 * partial) and stores {@code absmax[b] = max |x|}; see {@link Int8Scheme} for the code of each
 * element. Memory: {@code n + 4 · ceil(n / blockSize)} bytes.
 *
 * <p>Thread-safety: immutable; accessors return copies.
 */
public final class Int8Tensor {
    /** bitsandbytes' block size for 8-bit optimizer state. */
    public static final int DEFAULT_BLOCK_SIZE = 256;

    private final Int8Scheme scheme;
    private final int blockSize;
    private final byte[] codes;
    private final float[] absmax;

    private Int8Tensor(Int8Scheme scheme, int blockSize, byte[] codes, float[] absmax) {
        this.scheme = scheme;
        this.blockSize = blockSize;
        this.codes = codes;
        this.absmax = absmax;
    }

    /**
     * Quantizes {@code data} blockwise.
     *
     * @param blockSize a power of two from 32 to 4096
     * @throws IllegalArgumentException for a bad block size or a NaN/infinite value (named by index)
     */
    public static Int8Tensor quantize(float[] data, Int8Scheme scheme, int blockSize) {
        Objects.requireNonNull(data, "data must not be null");
        Objects.requireNonNull(scheme, "scheme must not be null");
        QuantSpec.checkBlockSize(blockSize);
        byte[] codes = new byte[data.length];
        float[] absmax = new float[Blockwise8bit.blockCount(data.length, blockSize)];
        if (scheme == Int8Scheme.LINEAR) {
            Blockwise8bit.quantizeLinear(data, blockSize, codes, absmax);
        } else {
            Blockwise8bit.quantizeDynamic(data, blockSize, codes, absmax);
        }
        return new Int8Tensor(scheme, blockSize, codes, absmax);
    }

    /** The float32 values these codes stand for (a new array). */
    public float[] dequantize() {
        float[] out = new float[codes.length];
        if (scheme == Int8Scheme.LINEAR) {
            Blockwise8bit.dequantizeLinear(codes, absmax, blockSize, out);
        } else {
            Blockwise8bit.dequantizeDynamic(codes, absmax, blockSize, out);
        }
        return out;
    }

    public Int8Scheme scheme() {
        return scheme;
    }

    public int blockSize() {
        return blockSize;
    }

    /** Number of elements. */
    public int length() {
        return codes.length;
    }

    /** The codes (a copy): signed int8 for LINEAR, unsigned map indices for DYNAMIC. */
    public byte[] codes() {
        return codes.clone();
    }

    /** The per-block absmax (a copy). */
    public float[] absmax() {
        return absmax.clone();
    }

    /** Exact bytes of the arrays held. */
    public long memoryBytes() {
        return codes.length + 4L * absmax.length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Int8Tensor t && scheme == t.scheme && blockSize == t.blockSize
                && Arrays.equals(codes, t.codes) && Arrays.equals(absmax, t.absmax);
    }

    @Override
    public int hashCode() {
        return Objects.hash(scheme, blockSize, Arrays.hashCode(codes), Arrays.hashCode(absmax));
    }

    @Override
    public String toString() {
        return "Int8Tensor{scheme=" + scheme + ", length=" + codes.length + ", blockSize=" + blockSize + "}";
    }
}
