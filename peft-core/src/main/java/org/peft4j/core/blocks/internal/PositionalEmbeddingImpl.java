package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastAddOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.blocks.PositionalEmbedding;

/**
 * Implementation of {@link PositionalEmbedding} (formulas there).
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public final class PositionalEmbeddingImpl extends BlockLayerImpl<PositionalEmbedding> {
    private static final long serialVersionUID = 1L;

    public PositionalEmbeddingImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private long steps(INDArray x) {
        PositionalEmbedding c = layerConf();
        if (x.rank() != 3 || x.size(1) != c.getNOut()) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects input [batch, "
                    + c.getNOut() + ", time], got " + Arrays.toString(x.shape()));
        }
        long t = x.size(2);
        if (t > c.maxLength()) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\": sequence length " + t
                    + " exceeds the positional embedding's maxLength " + c.maxLength()
                    + "; truncate the input or build the model with a larger maxLength");
        }
        return t;
    }

    @Override
    protected INDArray forward(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr) {
        long t = steps(x);
        INDArray rows = getParam(PositionalEmbedding.WEIGHT_KEY).get(NDArrayIndex.interval(0, t), NDArrayIndex.all());
        if (layerConf().isRowsOutput()) {
            // y [T·B, d] 'c' seen as [T, B, d]: y[t, b, :] = x[b, :, t] + W[t, :]
            long b = x.size(0);
            INDArray y = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, new long[] {t * b, x.size(1)},
                    'c');
            INDArray y3 = y.reshape('c', t, b, x.size(1));
            y3.assign(x.permute(2, 0, 1));
            Nd4j.getExecutioner().exec(new BroadcastAddOp(y3, rows.castTo(dataType), y3, 0, 2));
            return y;
        }
        INDArray table = rows.transpose().dup('c');
        INDArray y = x.dup('c');
        Nd4j.getExecutioner().exec(new BroadcastAddOp(y, table, y, 1, 2));
        return y;
    }

    @Override
    protected INDArray backward(INDArray x, INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        long t = steps(x);
        INDArray g = grad(PositionalEmbedding.WEIGHT_KEY);
        g.assign(0);
        INDArray used = g.get(NDArrayIndex.interval(0, t), NDArrayIndex.all());
        if (layerConf().isRowsOutput()) {
            long b = x.size(0);
            if (epsilon.rank() != 2 || epsilon.size(0) != t * b || epsilon.size(1) != x.size(1)) {
                throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\": gradient must be "
                        + "rows [" + t * b + ", " + x.size(1) + "], got " + Arrays.toString(epsilon.shape()));
            }
            INDArray e3 = epsilon.dup('c').reshape('c', t, b, x.size(1));
            used.assign(e3.sum(1));
            return e3.permute(1, 2, 0);
        }
        used.assign(epsilon.sum(0).transpose());
        return epsilon.dup();
    }

    /** With rows output, the sequence mask {@code [B, T]} goes on as the per-row mask {@code [B·T, 1]} (row b + B·t). */
    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArray(INDArray maskArray, MaskState currentMaskState,
                                                          int minibatchSize) {
        Pair<INDArray, MaskState> p = super.feedForwardMaskArray(maskArray, currentMaskState, minibatchSize);
        if (!layerConf().isRowsOutput() || p.getFirst() == null) {
            return p;
        }
        INDArray m = p.getFirst();
        if (m.rank() != 2 || m.size(0) != minibatchSize) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\" expects a feature mask "
                    + "[batch, time] = [" + minibatchSize + ", time], got " + Arrays.toString(m.shape()));
        }
        return new Pair<>(Layouts.rowMask(m), p.getSecond());
    }
}
