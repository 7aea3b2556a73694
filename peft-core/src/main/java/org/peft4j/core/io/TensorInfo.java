package org.peft4j.core.io;

import java.util.Arrays;

/**
 * One entry of a safetensors header: a tensor's name, dtype, shape and the byte range
 * {@code [begin, end)} of its data in the file's data buffer. Obtained from a validated
 * {@link SafetensorsHeader}, so the shape's byte size always equals {@code end - begin}.
 *
 * <p>Thread-safety: immutable.
 */
public final class TensorInfo {

    private final String name;
    private final DType dtype;
    private final long[] shape;
    private final long begin;
    private final long end;

    TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
        this.name = name;
        this.dtype = dtype;
        this.shape = shape;
        this.begin = begin;
        this.end = end;
    }

    /** The tensor's name as the header spells it. */
    public String name() {
        return name;
    }

    /** The element type. */
    public DType dtype() {
        return dtype;
    }

    /** A copy of the shape ({@code []} for a scalar). */
    public long[] shape() {
        return shape.clone();
    }

    /** The shape itself, for this package's checks; never hand it out. */
    long[] shapeView() {
        return shape;
    }

    /** Number of elements: the product of the shape. */
    public long elementCount() {
        return (end - begin) / dtype.byteSize();
    }

    /** Number of data bytes, {@code end - begin}. */
    public long byteLength() {
        return end - begin;
    }

    /** First byte of the tensor in the data buffer. */
    public long begin() {
        return begin;
    }

    /** One past the last byte of the tensor in the data buffer. */
    public long end() {
        return end;
    }

    /** Same name, dtype, shape and offsets. */
    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype
                && Arrays.equals(shape, t.shape) && begin == t.begin && end == t.end;
    }

    @Override
    public int hashCode() {
        return ((name.hashCode() * 31 + dtype.hashCode()) * 31 + Arrays.hashCode(shape)) * 31
                + Long.hashCode(begin);
    }

    /** For example {@code TensorInfo[w: F32 [2, 3] at [0, 24)]}; long names are shortened. */
    @Override
    public String toString() {
        return "TensorInfo[" + Safetensors.quote(name) + ": " + dtype + " " + Arrays.toString(shape)
                + " at [" + begin + ", " + end + ")]";
    }
}
