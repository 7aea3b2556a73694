package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
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
        INDArray table = getParam(PositionalEmbedding.WEIGHT_KEY)
                .get(NDArrayIndex.interval(0, t), NDArrayIndex.all()).transpose().dup('c');
        INDArray y = x.dup('c');
        Nd4j.getExecutioner().exec(new BroadcastAddOp(y, table, y, 1, 2));
        return y;
    }

    @Override
    protected INDArray backward(INDArray x, INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        long t = steps(x);
        INDArray g = grad(PositionalEmbedding.WEIGHT_KEY);
        g.assign(0);
        g.get(NDArrayIndex.interval(0, t), NDArrayIndex.all()).assign(epsilon.sum(0).transpose());
        return epsilon.dup();
    }
}
