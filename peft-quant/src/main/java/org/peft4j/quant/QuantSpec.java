package org.peft4j.quant;

import java.util.Objects;

/**
 * How to quantize a tensor to 4 bits: the code table, the block size and whether the block
 * scales are themselves quantized (double quantization).
 *
 * <p>Storage per parameter: {@code 4 + 32 / blockSize} bits without double quantization (4.5 at
 * block 64); with it, {@code 4 + 8 / blockSize + 32 / (blockSize * 256)} bits (≈ 4.127 at block
 * 64, the QLoRA figure), plus 4 bytes for the offset.
 *
 * <p>Validated at construction: the block size must be a power of two in [32, 4096], the range
 * bitsandbytes accepts for 4-bit quantization.
 *
 * <p>Thread-safety: immutable.
 *
 * @param type        the 4-bit code table
 * @param blockSize   elements per absmax block (power of two, 32 … 4096)
 * @param doubleQuant whether the block absmax values are quantized to 8 bits in blocks of 256
 */
public record QuantSpec(QuantType type, int blockSize, boolean doubleQuant) {
    /** Smallest block size bitsandbytes accepts for 4-bit quantization. */
    public static final int MIN_BLOCK_SIZE = 32;
    /** Largest block size bitsandbytes accepts for 4-bit quantization. */
    public static final int MAX_BLOCK_SIZE = 4096;
    /** bitsandbytes' default 4-bit block size. */
    public static final int DEFAULT_BLOCK_SIZE = 64;
    /** Block size of the second-level (double) quantization, as in bitsandbytes. */
    public static final int NESTED_BLOCK_SIZE = 256;

    public QuantSpec {
        Objects.requireNonNull(type, "type must not be null");
        checkBlockSize(blockSize);
    }

    /** The QLoRA setting: NF4, block 64, double quantization. */
    public static QuantSpec nf4() {
        return new QuantSpec(QuantType.NF4, DEFAULT_BLOCK_SIZE, true);
    }

    /** This spec with another block size. */
    public QuantSpec withBlockSize(int newBlockSize) {
        return new QuantSpec(type, newBlockSize, doubleQuant);
    }

    /** This spec with double quantization switched on or off. */
    public QuantSpec withDoubleQuant(boolean on) {
        return new QuantSpec(type, blockSize, on);
    }

    static void checkBlockSize(int blockSize) {
        if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("block size was " + blockSize
                    + "; expected a power of two from " + MIN_BLOCK_SIZE + " to " + MAX_BLOCK_SIZE
                    + " (32, 64, 128, 256, 512, 1024, 2048 or 4096)");
        }
    }
}
