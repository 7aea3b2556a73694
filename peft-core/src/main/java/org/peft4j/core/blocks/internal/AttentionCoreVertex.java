package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.BaseGraphVertex;
import org.deeplearning4j.nn.graph.vertex.VertexIndices;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Implementation of {@link org.peft4j.core.blocks.AttentionCore}: converts its inputs to heads,
 * runs {@link AttentionKernel} (or, while training with a group size, {@link ShiftedSparseAttention}),
 * and returns gradients in each input's own layout. The forward pass is recomputed in backward.
 *
 * <p>The key mask is taken from {@link #feedForwardMaskArrays}, and used only while the graph has
 * input masks set: DL4J's {@code clearLayerMaskArrays} clears layers, not vertices, so a mask kept
 * from an earlier masked call must not apply to a later unmasked one.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J vertex.
 */
public final class AttentionCoreVertex extends BaseGraphVertex {
    private static final long serialVersionUID = 1L;

    private final int heads;
    private final boolean causal;
    private final int groupSize;
    private INDArray keyMask;

    /** @param groupSize S²-Attn group size while training, 0 for full attention always */
    public AttentionCoreVertex(ComputationGraph graph, String name, int vertexIndex, DataType dataType, int heads,
                               boolean causal, int groupSize) {
        this(graph, name, vertexIndex, null, null, dataType, heads, causal, groupSize);
    }

    public AttentionCoreVertex(ComputationGraph graph, String name, int vertexIndex, VertexIndices[] inputVertices,
                               VertexIndices[] outputVertices, DataType dataType, int heads, boolean causal,
                               int groupSize) {
        super(graph, name, vertexIndex, inputVertices, outputVertices, dataType);
        this.heads = heads;
        this.causal = causal;
        this.groupSize = groupSize;
    }

    @Override
    public boolean hasLayer() {
        return false;
    }

    @Override
    public Layer getLayer() {
        return null;
    }

    private record State(long batch, INDArray q, INDArray k, INDArray v, AttentionKernel.Forward attn,
                         ShiftedSparseAttention.Forward sparse) {
    }

    private long batch() {
        for (INDArray in : inputs) {
            if (in.rank() == 3) {
                return in.size(0);
            }
        }
        return graph.batchSize();
    }

    private INDArray ncw(INDArray in, long batch) {
        return Layouts.ncwInput(in, batch, dataType, vertexName);
    }

    /** @param training whether S²-Attn applies (it does for sequences longer than one group) */
    private State run(boolean training) {
        long b = batch();
        INDArray q = ncw(inputs[0], b);
        INDArray k = ncw(inputs[1], b);
        INDArray v = ncw(inputs[2], b);
        if (q.size(1) != k.size(1) || q.size(1) % heads != 0 || v.size(1) % heads != 0 || k.size(2) != v.size(2)
                || q.size(0) != k.size(0) || k.size(0) != v.size(0)) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\": incompatible q " + Arrays.toString(q.shape())
                    + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()) + " for " + heads
                    + " heads");
        }
        INDArray mask = keyMask != null && graph.getInputMaskArrays() != null ? keyMask : null;
        if (training && groupSize > 0 && q.size(2) > groupSize) {
            ShiftedSparseAttention.Forward s = ShiftedSparseAttention.forward(Layouts.heads(q, heads),
                    Layouts.heads(k, heads), Layouts.heads(v, heads), 1.0 / Math.sqrt(q.size(1) / heads), causal, mask,
                    groupSize);
            return new State(b, s.q(), s.k(), s.v(), null, s);
        }
        INDArray allowed = AttentionKernel.allowedKeys(b, q.size(2), k.size(2), causal, mask, dataType);
        INDArray qh = Layouts.heads(q, heads);
        INDArray kh = Layouts.heads(k, heads);
        INDArray vh = Layouts.heads(v, heads);
        AttentionKernel.Forward f = AttentionKernel.forward(qh, kh, vh, 1.0 / Math.sqrt(q.size(1) / heads), allowed);
        return new State(b, qh, kh, vh, f, null);
    }

    @Override
    public INDArray doForward(boolean training, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoForward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do forward pass, inputs not set");
        }
        State s = run(training);
        INDArray o = s.sparse != null ? s.sparse.out() : s.attn.out();
        INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                new long[] {o.size(0), o.size(1) * o.size(3), o.size(2)}, 'c');
        Layouts.headsToNcw(o, out);
        return out;
    }

    @Override
    public Pair<Gradient, INDArray[]> doBackward(boolean tbptt, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoBackward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do backward pass, inputs or "
                    + "epsilon not set");
        }
        State s = run(true);
        INDArray dOut = Layouts.heads(epsilon.castTo(dataType), heads);
        AttentionKernel.Backward bw = s.sparse != null ? ShiftedSparseAttention.backward(s.sparse, dOut)
                : AttentionKernel.backward(s.q, s.k, s.v, s.attn.probs(), dOut, 1.0 / Math.sqrt(s.q.size(3)));
        INDArray[] grads = {bw.dq(), bw.dk(), bw.dv()};
        INDArray[] eps = new INDArray[3];
        for (int i = 0; i < 3; i++) {
            INDArray g = grads[i];
            long[] ncwShape = {g.size(0), g.size(1) * g.size(3), g.size(2)};
            INDArray ncwGrad = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, dataType, ncwShape, 'c');
            Layouts.headsToNcw(g, ncwGrad);
            if (inputs[i].rank() == 2) {
                eps[i] = workspaceMgr.leverageTo(ArrayType.ACTIVATION_GRAD, Layouts.timeDistributedFromNcw(ncwGrad));
            } else {
                eps[i] = ncwGrad;
            }
        }
        return new Pair<>(null, eps);
    }

    @Override
    public void setBackpropGradientsViewArray(INDArray backpropGradientsViewArray) {
        if (backpropGradientsViewArray != null) {
            throw new IllegalStateException("vertex \"" + vertexName + "\" has no parameters");
        }
    }

    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArrays(INDArray[] maskArrays, MaskState currentMaskState,
                                                           int minibatchSize) {
        INDArray m = maskArrays == null ? null : maskArrays[1];
        keyMask = m == null ? null : Layouts.sequenceMask(m, minibatchSize);
        return new Pair<>(keyMask, currentMaskState);
    }

    @Override
    public String toString() {
        return "AttentionCoreVertex(name=" + vertexName + ", heads=" + heads + ", causal=" + causal
                + (groupSize > 0 ? ", shiftedSparseGroupSize=" + groupSize : "") + ")";
    }
}
