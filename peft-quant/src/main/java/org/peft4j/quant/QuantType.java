package org.peft4j.quant;

import org.peft4j.quant.internal.CodeTables;

/**
 * The 4-bit code tables. Each maps a 4-bit code to a value in [-1, 1]; a weight is stored as the
 * code nearest to {@code w / absmax(block)} and read back as {@code table[code] * absmax(block)}.
 *
 * <ul>
 *   <li>{@link #NF4} — NormalFloat4 (QLoRA, arXiv 2305.14314): 16 quantiles of N(0, 1), normalised
 *       to [-1, 1], with an exact 0. The right choice for normally distributed weights.</li>
 *   <li>{@link #FP4} — a 4-bit float (1 sign, 2 exponent, 1 mantissa bit), bitsandbytes' layout:
 *       magnitudes {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12 for codes 0..7, bit 3 the sign.</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public enum QuantType {
    /** NormalFloat4: codes 0..15 ascending from -1.0 to 1.0, code 7 is 0.0. */
    NF4("nf4"),
    /** bitsandbytes FP4: code 0 is 0.0, code 3 is 1.0, code 11 is -1.0. */
    FP4("fp4");

    private final String bitsandbytesName;

    QuantType(String bitsandbytesName) {
        this.bitsandbytesName = bitsandbytesName;
    }

    /** The name bitsandbytes uses in {@code quant_type} and in the {@code bitsandbytes__nf4} key. */
    public String bitsandbytesName() {
        return bitsandbytesName;
    }

    /** A copy of the 16 table values, indexed by code. */
    public float[] table() {
        return this == NF4 ? CodeTables.nf4() : CodeTables.fp4Table();
    }

    /**
     * The type with the given bitsandbytes name ("nf4" or "fp4").
     *
     * @throws IllegalArgumentException for any other name
     */
    public static QuantType fromBitsandbytesName(String name) {
        for (QuantType t : values()) {
            if (t.bitsandbytesName.equals(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown 4-bit quant_type '" + name + "'; expected 'nf4' or 'fp4'");
    }
}
