package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;

/**
 * Conversions between the array layouts the blocks meet:
 * <ul>
 *   <li>NCW sequences {@code [b, f, T]} (DL4J's recurrent layout);</li>
 *   <li>rows {@code [b·T, f]} with row {@code b·T + t}, {@code 'c'} order (this package's working layout);</li>
 *   <li>DL4J's time-distributed rows {@code [b·T, f]} with row {@code b + B·t}, as
 *       {@code RnnToFeedForwardPreProcessor} writes them;</li>
 *   <li>heads {@code [b, h, T, d]} with feature {@code f = h·d + j}.</li>
 * </ul>
 * Thread-safety: stateless.
 */
public final class Layouts {

    private Layouts() {
    }

    /** {@code [b, f, T]} → rows {@code [b·T, f]} (a copy), or a 2D array unchanged. */
    public static INDArray rows(INDArray x) {
        if (x.rank() == 2) {
            return x;
        }
        long b = x.size(0);
        long f = x.size(1);
        long t = x.size(2);
        return x.permute(0, 2, 1).dup('c').reshape('c', b * t, f);
    }

    /** Rows {@code [b·T, f]} → a {@code [b, f, T]} view of them (shape taken from {@code like}). */
    public static INDArray unrows(INDArray rows, long[] like) {
        if (like.length == 2) {
            return rows;
        }
        return rows.reshape('c', like[0], like[2], rows.size(1)).permute(0, 2, 1);
    }

    /** NCW {@code [b, h·d, T]} → heads {@code [b, h, T, d]} (a view when {@code x} is 'c'-contiguous). */
    public static INDArray heads(INDArray x, int h) {
        long f = x.size(1);
        if (f % h != 0) {
            throw new DL4JInvalidInputException("feature size " + f + " is not divisible by " + h + " heads");
        }
        return x.reshape('c', x.size(0), h, f / h, x.size(2)).permute(0, 1, 3, 2);
    }

    /** Rows {@code [b·T, h·d]} ('c', row b·T + t) → heads {@code [b, h, T, d]}. */
    public static INDArray rowsToHeads(INDArray rows, long b, int h) {
        long t = rows.size(0) / b;
        return rows.reshape('c', b, t, h, rows.size(1) / h).permute(0, 2, 1, 3);
    }

    /** Heads {@code [b, h, T, d]} → rows {@code [b·T, h·d]} (a 'c' copy). */
    public static INDArray headsToRows(INDArray heads) {
        long b = heads.size(0);
        long h = heads.size(1);
        long t = heads.size(2);
        long d = heads.size(3);
        return heads.permute(0, 2, 1, 3).dup('c').reshape('c', b * t, h * d);
    }

    /** Writes heads {@code [b, h, T, d]} into NCW {@code out [b, h·d, T]}, which must be 'c'-contiguous. */
    public static void headsToNcw(INDArray heads, INDArray out) {
        out.reshape('c', heads.size(0), heads.size(1), heads.size(3), heads.size(2)).assign(heads.permute(0, 1, 3, 2));
    }

    /** DL4J time-distributed rows {@code [B·T, f]} (row b + B·t) → NCW {@code [B, f, T]}. */
    public static INDArray ncwFromTimeDistributed(INDArray x2, long batch, String where) {
        if (batch <= 0 || x2.size(0) % batch != 0) {
            throw new DL4JInvalidInputException(where + ": cannot split " + x2.size(0) + " time-distributed rows "
                    + Arrays.toString(x2.shape()) + " into a mini-batch of " + batch);
        }
        INDArray f = x2.ordering() == 'f' ? x2 : x2.dup('f');
        return f.reshape('f', batch, x2.size(0) / batch, x2.size(1)).permute(0, 2, 1);
    }

    /**
     * A sequence input of a vertex as NCW {@code [B, f, T]} in {@code dataType}: rank 3 as it is,
     * rank 2 read as time-distributed rows (see {@link #ncwFromTimeDistributed}).
     *
     * @throws DL4JInvalidInputException for any other rank, naming {@code vertexName} and the shape
     */
    public static INDArray ncwInput(INDArray in, long batch, DataType dataType, String vertexName) {
        INDArray x = in.castTo(dataType);
        if (x.rank() == 3) {
            return x;
        }
        if (x.rank() == 2) {
            return ncwFromTimeDistributed(x, batch, "vertex \"" + vertexName + "\"");
        }
        throw new DL4JInvalidInputException("vertex \"" + vertexName + "\" expects [batch, features, time] or "
                + "[batch·time, features] inputs, got " + Arrays.toString(in.shape()));
    }

    /**
     * DL4J time-distributed rows {@code [B·T, h·d]} (row b + B·t) → heads {@code [B, h, T, d]}: a view
     * (no copy) when the rows are a plain {@code 'c'} or {@code 'f'} array, as dense layers emit them.
     *
     * @throws DL4JInvalidInputException if the rows do not split into {@code batch} sequences or the
     *     width into {@code h} heads
     */
    public static INDArray timeDistributedToHeads(INDArray x2, long batch, int h, String where) {
        if (batch <= 0 || x2.size(0) % batch != 0) {
            throw new DL4JInvalidInputException(where + ": cannot split " + x2.size(0) + " time-distributed rows "
                    + Arrays.toString(x2.shape()) + " into a mini-batch of " + batch);
        }
        long f = x2.size(1);
        if (f % h != 0) {
            throw new DL4JInvalidInputException(where + ": feature size " + f + " is not divisible by " + h + " heads");
        }
        long t = x2.size(0) / batch;
        long d = f / h;
        if (x2.ordering() == 'f' && Shape.hasDefaultStridesForShape(x2)) {
            // element (b + B·t, hh·d + j) at b + B·t + B·T·j + B·T·d·hh
            return x2.reshape('f', batch, t, d, h).permute(0, 3, 1, 2);
        }
        INDArray c = x2.ordering() == 'c' && Shape.hasDefaultStridesForShape(x2) ? x2 : x2.dup('c');
        // element (b + B·t, hh·d + j) at ((t·B + b)·h + hh)·d + j
        return c.reshape('c', t, batch, h, d).permute(1, 2, 0, 3);
    }

    /**
     * Writes heads {@code [B, h, T, d]} into DL4J time-distributed rows {@code out [B·T, h·d]} (row
     * b + B·t), which must be a plain {@code 'c'} array; one copy.
     */
    public static void headsToTimeDistributed(INDArray heads, INDArray out) {
        long b = heads.size(0);
        long h = heads.size(1);
        long t = heads.size(2);
        long d = heads.size(3);
        out.reshape('c', t, b, h, d).permute(1, 2, 0, 3).assign(heads);
    }

    /**
     * Writes heads {@code [B, h, T, d]} into an NCW sequence {@code [B, h·d, T]} held in {@code 'f'}
     * order, and returns it: the order DL4J's {@code RnnToFeedForwardPreProcessor} reads without a
     * first copy. {@code out} must be a plain {@code 'f'} array.
     */
    public static INDArray headsToNcwF(INDArray heads, INDArray out) {
        long b = heads.size(0);
        long h = heads.size(1);
        long t = heads.size(2);
        long d = heads.size(3);
        // 'f' [B, h·d, T]: feature hh·d + j splits, fastest first, into (j, hh)
        out.reshape('f', b, d, h, t).permute(0, 2, 3, 1).assign(heads);
        return out;
    }

    /** NCW {@code [B, f, T]} → DL4J time-distributed rows {@code [B·T, f]} (row b + B·t), a copy. */
    public static INDArray timeDistributedFromNcw(INDArray x3) {
        long b = x3.size(0);
        long f = x3.size(1);
        long t = x3.size(2);
        return x3.permute(0, 2, 1).dup('f').reshape('f', b * t, f);
    }

    /** A sequence mask {@code [B, T]} → DL4J's per-row mask {@code [B·T, 1]} (row b + B·t); null stays null. */
    public static INDArray rowMask(INDArray mask) {
        return mask == null ? null : mask.dup('f').reshape('f', mask.length(), 1);
    }

    /** A DL4J per-row mask {@code [B·T, 1]} (row b + B·t) → {@code [B, T]}; a {@code [B, T]} mask unchanged. */
    public static INDArray sequenceMask(INDArray mask, long batch) {
        if (mask == null) {
            return null;
        }
        if (mask.rank() == 2 && mask.size(0) == batch && mask.size(1) != 1) {
            return mask;
        }
        if (mask.rank() == 2 && mask.size(1) == 1 && mask.size(0) % batch == 0) {
            return mask.dup('f').reshape('f', batch, mask.size(0) / batch);
        }
        if (mask.rank() == 2 && mask.size(0) == batch) {
            return mask;
        }
        throw new DL4JInvalidInputException("cannot read mask " + Arrays.toString(mask.shape())
                + " as a [batch, time] mask for a mini-batch of " + batch);
    }
}
