package org.peft4j.core.blocks.internal;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Element-wise sum of float32 arrays of one shape and order whose elements fill one contiguous run
 * of their buffers, in blocks of {@value #BLOCK} elements copied to heap arrays. The result is
 * bit-for-bit ND4J's add (one IEEE float32 addition an element).
 *
 * <p>Why by hand: a residual add {@code Nd4j.exec(new AddOp(...))} on {@code [512, 384]} took
 * 285, 287 and 327 µs a call in three runs inside a one-thread MiniLM-sized LoRA training step
 * (batch 8 × 64, 6 layers, 12 adds a step), against 233, 238 and 304 µs here (timed per call in
 * one JVM, old and new path alternating; the pass over memory is most of either): a
 * {@code DynamicCustomOp} draws a {@code UUID.randomUUID()} for its id, builds an op context and
 * looks the op up, with the caches cold after the step's products. The same kind of loop lost to
 * ND4J's in-place multiply on {@code [512, 1536]} (745 against 620 µs), so only the add is here.
 *
 * <p>Thread-safety: stateless; each call works in its own heap blocks.
 */
final class Elementwise {
    /** Elements per heap block: the blocks of one call stay in the L1/L2 cache. */
    static final int BLOCK = 4096;

    private Elementwise() {
    }

    /**
     * Whether {@link #add} handles these arrays: all float32, of one shape and one order, each with
     * default strides and its elements within one int-indexed buffer.
     */
    static boolean handles(INDArray... arrays) {
        INDArray first = arrays[0];
        for (INDArray a : arrays) {
            if (a == null || a.dataType() != DataType.FLOAT || a.ordering() != first.ordering()
                    || !Arrays.equals(a.shape(), first.shape()) || !HostRows.accessible(a)) {
                return false;
            }
        }
        return true;
    }

    /** {@code out ← a + b}; all three accepted together by {@link #handles}; {@code out} may be {@code a}. */
    static void add(INDArray a, INDArray b, INDArray out) {
        FloatBuffer ab = a.data().asNioFloat();
        FloatBuffer bb = b.data().asNioFloat();
        FloatBuffer ob = out.data().asNioFloat();
        int aBase = (int) a.offset();
        int bBase = (int) b.offset();
        int oBase = (int) out.offset();
        int n = (int) a.length();
        int block = Math.min(n, BLOCK);
        float[] x = new float[block];
        float[] y = new float[block];
        for (int from = 0; from < n; from += BLOCK) {
            int len = Math.min(BLOCK, n - from);
            ab.get(aBase + from, x, 0, len);
            bb.get(bBase + from, y, 0, len);
            for (int i = 0; i < len; i++) {
                x[i] += y[i];
            }
            ob.put(oBase + from, x, 0, len);
        }
    }
}
