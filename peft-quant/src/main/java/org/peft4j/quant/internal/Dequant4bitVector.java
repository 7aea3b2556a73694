package org.peft4j.quant.internal;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;

/**
 * Blockwise 4-bit dequantization ({@link Blockwise4bit#dequantize}) written with the Java Vector
 * API. Only {@link VectorKernels} loads this class, and only when the module is in the boot layer.
 *
 * <p>Why by hand and why vectors: the batched products ({@link TiledMatmul}) dequantize the whole
 * weight once per call, and the scalar loop (one table load and one multiply per element) took
 * about 7 ms of a 4096² product whose float GEMM takes 15 ms. Here {@code L} packed bytes
 * ({@code 2L} codes) are widened to {@code L} ints; two constant lane permutations repeat each byte
 * twice, in element order, and a lane-wise shift by 4, 0, 4, 0 … leaves the high nibble (the
 * first element, as bitsandbytes packs it) in even lanes and the low nibble in odd lanes. Each
 * nibble vector selects from the 16-entry code table held in registers
 * ({@link Gemv4bitVector#select}) and is multiplied by the block's scale. The products are the
 * same float32 multiplications as the scalar loop's, so the output is bit-identical.
 *
 * <p>Requirements, checked by {@link #supports}: a preferred species of 8 or 16 float lanes and a
 * block size that is a multiple of {@code 2L}; callers pass a block-aligned start.
 *
 * <p>Thread-safety: stateless; concurrent calls are safe if they write to different outputs.
 */
final class Dequant4bitVector {
    private static final int LANES = Gemv4bitVector.LANES;
    /** Lane {@code m} takes byte {@code m / 2}: the first {@code L} elements of {@code L} bytes. */
    private static final VectorShuffle<Integer> FIRST = VectorShuffle.fromOp(Gemv4bitVector.INTS, m -> m >> 1);
    /** Lane {@code m} takes byte {@code L / 2 + m / 2}: the last {@code L} elements. */
    private static final VectorShuffle<Integer> SECOND =
            VectorShuffle.fromOp(Gemv4bitVector.INTS, m -> LANES / 2 + (m >> 1));
    /** High nibble in even lanes, low nibble in odd lanes. */
    private static final IntVector SHIFTS = IntVector.zero(Gemv4bitVector.INTS).addIndex(1).and(1)
            .lanewise(VectorOperators.XOR, 1).lanewise(VectorOperators.LSHL, 2);

    private Dequant4bitVector() {
    }

    /** Whether {@link #dequantize} handles this block size. */
    static boolean supports(int blockSize) {
        return (LANES == 8 || LANES == 16) && blockSize % (2 * LANES) == 0;
    }

    /**
     * Writes the {@code blocks} whole blocks starting at flat element {@code from} (a multiple of
     * {@code blockSize}) to {@code out[outOff ...]}. Call only when {@link #supports} is true.
     */
    static void dequantize(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                           int from, int blocks, float[] out, int outOff) {
        float[] table = Gemv4bitVector.codeTable(pair);
        FloatVector lo = FloatVector.fromArray(Gemv4bitVector.FLOATS, table, 0);
        FloatVector hi = FloatVector.fromArray(Gemv4bitVector.FLOATS, table, 16 - LANES);
        int shift = Integer.numberOfTrailingZeros(blockSize);
        int first = from >>> shift;
        for (int b = 0; b < blocks; b++) {
            FloatVector s = FloatVector.broadcast(Gemv4bitVector.FLOATS, scales.get(first + b));
            int p = (from >>> 1) + b * (blockSize >>> 1);
            int o = outOff + b * blockSize;
            for (int q = 0; q < blockSize >>> 1; q += LANES) {
                IntVector c = (IntVector) ByteVector.fromArray(Gemv4bitVector.BYTES, packed, p + q)
                        .convertShape(VectorOperators.B2I, Gemv4bitVector.INTS, 0);
                IntVector n0 = c.rearrange(FIRST).lanewise(VectorOperators.LSHR, SHIFTS).and(15);
                IntVector n1 = c.rearrange(SECOND).lanewise(VectorOperators.LSHR, SHIFTS).and(15);
                Gemv4bitVector.select(lo, hi, n0).mul(s).intoArray(out, o + 2 * q);
                Gemv4bitVector.select(lo, hi, n1).mul(s).intoArray(out, o + 2 * q + LANES);
            }
        }
    }
}
