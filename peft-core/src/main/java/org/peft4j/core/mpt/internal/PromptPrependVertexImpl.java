package org.peft4j.core.mpt.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.BaseGraphVertex;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.blocks.internal.Layouts;
import org.peft4j.core.mpt.PromptPrependVertex;

/**
 * Implementation of {@link PromptPrependVertex} (formulas there). It reads its flags from the
 * configuration instance of the graph, so switching the adapter off takes effect at once.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J vertex.
 */
public final class PromptPrependVertexImpl extends BaseGraphVertex {
    private static final long serialVersionUID = 1L;

    private final PromptPrependVertex conf;

    public PromptPrependVertexImpl(ComputationGraph graph, String name, int idx, DataType dataType,
                                   PromptPrependVertex conf) {
        super(graph, name, idx, null, null, dataType);
        this.conf = conf;
    }

    @Override
    public boolean hasLayer() {
        return false;
    }

    @Override
    public Layer getLayer() {
        return null;
    }

    @Override
    public void setBackpropGradientsViewArray(INDArray view) {
        if (view != null) {
            throw new IllegalStateException("vertex \"" + vertexName + "\" has no parameters");
        }
    }

    private static INDArrayIndex[] time(long from, long to) {
        return new INDArrayIndex[] {NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(from, to)};
    }

    private INDArray sequence() {
        INDArray x = inputs[0].castTo(dataType);
        if (x.rank() != 3) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\" expects a sequence [batch, d, time] (NCW) "
                    + "as its first input, got " + Arrays.toString(x.shape()));
        }
        return x;
    }

    private INDArray prompts(INDArray x) {
        INDArray pr = inputs[1].castTo(dataType);
        int p = conf.numVirtualTokens();
        if (pr.rank() != 3 || pr.size(0) != x.size(0) || pr.size(1) != x.size(1) || pr.size(2) != p) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\": prompts must be [" + x.size(0) + ", "
                    + x.size(1) + ", " + p + "], got " + Arrays.toString(pr.shape()));
        }
        return pr;
    }

    @Override
    public INDArray doForward(boolean training, LayerWorkspaceMgr mgr) {
        if (!canDoForward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do forward pass, inputs not set");
        }
        INDArray x = sequence();
        if (!conf.isAdapterEnabled()) {
            return mgr.dup(ArrayType.ACTIVATIONS, x, 'c');
        }
        INDArray pr = prompts(x);
        long p = pr.size(2);
        long t = x.size(2);
        INDArray y = mgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, new long[] {x.size(0), x.size(1), p + t}, 'c');
        y.get(time(0, p)).assign(pr);
        y.get(time(p, p + t)).assign(x);
        return y;
    }

    @Override
    public Pair<Gradient, INDArray[]> doBackward(boolean tbptt, LayerWorkspaceMgr mgr) {
        if (!canDoBackward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do backward pass, inputs or epsilon "
                    + "not set");
        }
        INDArray eps = epsilon.castTo(dataType);
        INDArray x = sequence();
        INDArray[] out = new INDArray[2];
        INDArray dPrompts = mgr.create(ArrayType.ACTIVATION_GRAD, dataType, inputs[1].shape(), 'c');
        if (conf.isAdapterEnabled()) {
            long p = conf.numVirtualTokens();
            dPrompts.assign(eps.get(time(0, p)));
            if (conf.isInputGradient()) {
                out[0] = mgr.dup(ArrayType.ACTIVATION_GRAD, eps.get(time(p, p + x.size(2))), 'c');
            }
        } else if (conf.isInputGradient()) {
            out[0] = mgr.dup(ArrayType.ACTIVATION_GRAD, eps, 'c');
        }
        out[1] = dPrompts;
        return new Pair<>(null, out);
    }

    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArrays(INDArray[] maskArrays, MaskState currentMaskState,
                                                           int minibatchSize) {
        INDArray m = maskArrays == null ? null : Layouts.sequenceMask(maskArrays[0], minibatchSize);
        if (m == null || !conf.isAdapterEnabled()) {
            return new Pair<>(m, currentMaskState);
        }
        int p = conf.numVirtualTokens();
        INDArray out = Nd4j.ones(m.dataType(), m.size(0), p + m.size(1));
        out.get(NDArrayIndex.all(), NDArrayIndex.interval(p, p + m.size(1))).assign(m);
        return new Pair<>(out, currentMaskState);
    }

    @Override
    public String toString() {
        return "PromptPrependVertexImpl(name=" + vertexName + ", " + conf + ")";
    }
}
