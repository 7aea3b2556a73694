package org.peft4j.quant.internal;

import java.util.stream.IntStream;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The batch-1 forward product {@code y = x · W} of {@link Gemv4bit#gemv}, written with the Java
 * Vector API ({@code jdk.incubator.vector}). Only {@link VectorKernels} loads this class, and only
 * when the module is in the boot layer, so the library runs without {@code --add-modules}.
 *
 * <p>Why by hand and why vectors: ND4J has no 4-bit type, and the scalar kernel spends its time
 * on one table load per weight. Here one lane-wise table permutation turns {@code L} 4-bit codes
 * into {@code L} floats: {@code L} packed bytes are widened to {@code L} ints; their high nibbles
 * are the codes of the even columns and their low nibbles those of the odd columns (bitsandbytes
 * puts the first element in the high nibble); each nibble vector selects from the 16-entry code
 * table held in registers (one vector of 16 lanes, or two of 8 with the second chosen for indices
 * ≥ 8) and is accumulated into separate even-column and odd-column sums with one fused
 * multiply-add per row, four rows at a time. The even/odd sums are interleaved into {@code y} once
 * at the end.
 *
 * <p>The species are the JVM's preferred float shape, held in {@code static final} fields: the
 * JIT compiles Vector API calls to vector instructions only when the species is a constant (passed
 * as an argument, the same loop ran about 10× slower than the scalar kernel).
 *
 * <p>Requirements, checked by {@link #supports}: a preferred species of 8 or 16 float lanes,
 * {@code nOut} a multiple of the block size, and a block size that is a multiple of {@code 2L}.
 *
 * <p>Thread-safety: stateless; concurrent calls are safe if they write to different outputs.
 */
final class Gemv4bitVector {
    private static final long PARALLEL_WORK = 1L << 18;
    /** Float lanes {@code L}: 16 with AVX-512, 8 with AVX2. */
    static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    static final int LANES = FLOATS.length();
    static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    /** {@code L} bytes, widened to {@code L} ints. */
    static final VectorSpecies<Byte> BYTES =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, LANES * 8)));

    private Gemv4bitVector() {
    }

    /** Whether {@link #gemv} handles this shape. */
    static boolean supports(int blockSize, int nOut) {
        return (LANES == 8 || LANES == 16) && blockSize % (2 * LANES) == 0 && nOut % blockSize == 0;
    }

    /** {@code y = x · W}; {@code y} is overwritten. Call only when {@link #supports} is true. */
    static void gemv(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                     int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        float[] even = new float[nOut / 2];
        float[] odd = new float[nOut / 2];
        float[] table = codeTable(pair);
        int blockCols = nOut / blockSize;
        int tasks = (long) nIn * nOut >= PARALLEL_WORK
                ? Math.max(1, Math.min(Runtime.getRuntime().availableProcessors(), blockCols)) : 1;
        if (tasks <= 1) {
            columns(packed, scales, blockSize, table, nIn, nOut, x, xOff, even, odd, 0, nOut);
        } else {
            IntStream.range(0, tasks).parallel().forEach(t -> {
                int j0 = (int) ((long) blockCols * t / tasks) * blockSize;
                int j1 = (int) ((long) blockCols * (t + 1) / tasks) * blockSize;
                columns(packed, scales, blockSize, table, nIn, nOut, x, xOff, even, odd, j0, j1);
            });
        }
        for (int k = 0; k < even.length; k++) {
            y[yOff + 2 * k] = even[k];
            y[yOff + 2 * k + 1] = odd[k];
        }
    }

    /**
     * The 16 code values out of a 256-entry byte → (high, low) pair table: entry {@code c} is the
     * high value of byte {@code c << 4}.
     */
    static float[] codeTable(float[] pair) {
        float[] table = new float[16];
        for (int c = 0; c < 16; c++) {
            table[c] = pair[(c << 4) << 1];
        }
        return table;
    }

    /**
     * Columns {@code [j0, j1)} (block-aligned) into {@code even[j0/2 …]} and {@code odd[j0/2 …]}.
     * Kept small on purpose: C2 compiles Vector API calls to instructions only when it inlines
     * them, and a version with the four rows unrolled (eight table lookups in one loop body)
     * exceeded its inlining budget and ran about 10× slower.
     */
    private static void columns(byte[] packed, BlockScales scales, int blockSize,
                                float[] table, int nIn, int nOut, float[] x, int xOff, float[] even, float[] odd,
                                int j0, int j1) {
        FloatVector lo = FloatVector.fromArray(FLOATS, table, 0);
        FloatVector hi = FloatVector.fromArray(FLOATS, table, 16 - LANES);
        int blocksPerRow = nOut / blockSize;
        int rowBytes = nOut >>> 1;
        float[] s = new float[4];
        for (int i = 0; i < nIn; i += 4) {
            int rows = Math.min(4, nIn - i);
            for (int jb = j0; jb < j1; jb += blockSize) {
                int b0 = i * blocksPerRow + jb / blockSize;
                for (int r = 0; r < rows; r++) {
                    s[r] = x[xOff + i + r] * scales.get(b0 + r * blocksPerRow);
                }
                int p = (int) (((long) i * nOut + jb) >>> 1);
                for (int q = 0; q < blockSize / 2; q += LANES) {
                    int o = (jb >>> 1) + q;
                    FloatVector e = FloatVector.fromArray(FLOATS, even, o);
                    FloatVector d = FloatVector.fromArray(FLOATS, odd, o);
                    for (int r = 0; r < rows; r++) {
                        IntVector c = (IntVector) ByteVector.fromArray(BYTES, packed, p + r * rowBytes + q)
                                .convertShape(VectorOperators.B2I, INTS, 0);
                        FloatVector sv = FloatVector.broadcast(FLOATS, s[r]);
                        e = select(lo, hi, c.lanewise(VectorOperators.LSHR, 4).and(15)).fma(sv, e);
                        d = select(lo, hi, c.and(15)).fma(sv, d);
                    }
                    e.intoArray(even, o);
                    d.intoArray(odd, o);
                }
            }
        }
    }

    /**
     * {@code table[nibble]} lane-wise from the table in registers: {@code lo} holds entries
     * {@code 0 … L−1}, {@code hi} entries {@code 16 − L … 15}. With 16 lanes {@code lo} is the whole
     * table; with 8, indices 8…15 are out of range for one vector and the two-vector form of
     * {@code rearrange} takes them from {@code hi}.
     */
    static FloatVector select(FloatVector lo, FloatVector hi, IntVector nibbles) {
        VectorShuffle<Float> s = nibbles.toShuffle().cast(FLOATS);
        return LANES == 16 ? lo.rearrange(s) : lo.rearrange(s, hi);
    }
}
