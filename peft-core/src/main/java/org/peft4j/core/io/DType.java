package org.peft4j.core.io;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * Element types a safetensors file can hold, named exactly as the format spells them in the
 * header's {@code "dtype"} field. All multi-byte types are stored little-endian.
 *
 * <p>The format defines a few more types (unsigned 16/32/64-bit integers, 8-bit floats); peft4j
 * reads none of them and reports a file that uses one as malformed.
 *
 * <p>Thread-safety: immutable.
 */
public enum DType {
    /** IEEE 754 binary64. */
    F64(8),
    /** IEEE 754 binary32. */
    F32(4),
    /** IEEE 754 binary16 (half precision). */
    F16(2),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16(2),
    /** Signed two's-complement 64-bit integer. */
    I64(8),
    /** Signed two's-complement 32-bit integer. */
    I32(4),
    /** Signed two's-complement 16-bit integer. */
    I16(2),
    /** Signed two's-complement 8-bit integer. */
    I8(1),
    /** Unsigned 8-bit integer. */
    U8(1),
    /** Boolean, one byte per element (0 = false, anything else = true). */
    BOOL(1);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element of this type. */
    public int byteSize() {
        return byteSize;
    }

    /** The dtype with this exact (case-sensitive) name, or {@code null} if there is none. */
    static DType fromName(String name) {
        for (DType t : values()) {
            if (t.name().equals(name)) {
                return t;
            }
        }
        return null;
    }

    /** The names of all dtypes, comma separated, for error messages. */
    static String supportedNames() {
        return Arrays.stream(values()).map(Enum::name).collect(Collectors.joining(", "));
    }
}
