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
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Implementation of {@link org.peft4j.core.blocks.AttentionCore}: converts its inputs to heads,
 * runs {@link AttentionKernel} (or, while training with a group size, {@link ShiftedSparseAttention}),
 * and returns gradients in each input's own layout. A training forward pass keeps the attention
 * probabilities (outside workspaces, {@code [b, h, T, T]}; with S²-Attn the grouped state, whose
 * probabilities are {@code [b, h, T/G, G, G]}) for the backward pass on the same inputs, which
 * otherwise recomputes them: the scores, the masked softmax and its half a dozen passes were a third
 * of the attention's cost.
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
    private final boolean rowsOutput;
    private final int groupSize;
    private INDArray keyMask;
    /** Probabilities of the last training forward pass (detached) and the inputs they were computed from. */
    private INDArray cachedProbs;
    /** The S²-Attn state of the last training forward pass instead, when it took that path. */
    private ShiftedSparseAttention.Forward cachedSparse;
    private INDArray[] cachedInputs;

    /**
     * @param rowsOutput whether the output is time-distributed rows (else an NCW sequence)
     * @param groupSize S²-Attn group size while training, 0 for full attention always
     */
    public AttentionCoreVertex(ComputationGraph graph, String name, int vertexIndex, DataType dataType, int heads,
                               boolean causal, boolean rowsOutput, int groupSize) {
        this(graph, name, vertexIndex, null, null, dataType, heads, causal, rowsOutput, groupSize);
    }

    public AttentionCoreVertex(ComputationGraph graph, String name, int vertexIndex, VertexIndices[] inputVertices,
                               VertexIndices[] outputVertices, DataType dataType, int heads, boolean causal,
                               boolean rowsOutput, int groupSize) {
        super(graph, name, vertexIndex, inputVertices, outputVertices, dataType);
        this.heads = heads;
        this.causal = causal;
        this.rowsOutput = rowsOutput;
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

    /** Full attention ({@code attn}) or S²-Attn ({@code sparse}, whose q, k, v are the grouped ones). */
    private record State(long batch, INDArray q, INDArray k, INDArray v, AttentionKernel.Forward attn,
                         ShiftedSparseAttention.Forward sparse) {
        INDArray out() {
            return sparse != null ? sparse.out() : attn.out();
        }
    }

    private long batch() {
        for (INDArray in : inputs) {
            if (in.rank() == 3) {
                return in.size(0);
            }
        }
        return graph.batchSize();
    }

    /**
     * Input {@code i} as heads {@code [B, h, T, d]}: time-distributed rows are viewed in place,
     * NCW sequences reshaped (see {@link Layouts}).
     */
    private INDArray heads(int i, long batch) {
        INDArray x = inputs[i].castTo(dataType);
        if (x.rank() == 2) {
            return Layouts.timeDistributedToHeads(x, batch, heads, "vertex \"" + vertexName + "\"");
        }
        return Layouts.heads(Layouts.ncwInput(x, batch, dataType, vertexName), heads);
    }

    /**
     * The attention of the current inputs; with {@code probs} (kept from the forward pass) only the heads
     * are set up.
     *
     * @param training whether S²-Attn applies (it does for sequences longer than one group)
     */
    private State run(boolean training, INDArray probs) {
        long b = batch();
        INDArray qh = heads(0, b);
        INDArray kh = heads(1, b);
        INDArray vh = heads(2, b);
        if (probs != null) {
            return new State(b, qh, kh, vh, new AttentionKernel.Forward(null, probs), null);
        }
        if (qh.size(3) != kh.size(3) || kh.size(2) != vh.size(2) || qh.size(0) != kh.size(0)
                || kh.size(0) != vh.size(0)) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\": incompatible q, k, v for " + heads
                    + " heads: as [batch, heads, time, headSize] they are " + Arrays.toString(qh.shape()) + ", "
                    + Arrays.toString(kh.shape()) + ", " + Arrays.toString(vh.shape()));
        }
        INDArray mask = keyMask != null && graph.getInputMaskArrays() != null ? keyMask : null;
        if (training && groupSize > 0 && qh.size(2) > groupSize) {
            ShiftedSparseAttention.Forward s = ShiftedSparseAttention.forward(qh, kh, vh, 1.0 / Math.sqrt(qh.size(3)),
                    causal, mask, groupSize);
            return new State(b, s.q(), s.k(), s.v(), null, s);
        }
        INDArray allowed = AttentionKernel.allowedKeys(b, qh.size(2), kh.size(2), causal, mask, dataType);
        AttentionKernel.Forward f = AttentionKernel.forward(qh, kh, vh, 1.0 / Math.sqrt(qh.size(3)), allowed);
        return new State(b, qh, kh, vh, f, null);
    }

    /**
     * The output is time-distributed rows in {@code 'c'} order when the core is built for rows, else
     * an NCW sequence held in {@code 'f'} order, which the per-time-step dense layer after the core
     * ({@code attn.o}, through {@code RnnToFeedForwardPreProcessor}) reads with one copy instead of two.
     */
    @Override
    public INDArray doForward(boolean training, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoForward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do forward pass, inputs not set");
        }
        OmpThreads.apply();
        State s;
        if (training) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                s = run(true, null);
            }
            cachedProbs = s.sparse == null ? s.attn.probs() : null;
            cachedSparse = s.sparse;
            cachedInputs = inputs.clone();
        } else {
            s = run(false, null);
        }
        INDArray o = s.out();
        if (rowsOutput) {
            INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                    new long[] {o.size(0) * o.size(2), o.size(1) * o.size(3)}, 'c');
            Layouts.headsToTimeDistributed(o, out);
            return out;
        }
        INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                new long[] {o.size(0), o.size(1) * o.size(3), o.size(2)}, 'f');
        return Layouts.headsToNcwF(o, out);
    }

    /** The input gradients come back in each input's layout, written once from the heads. */
    @Override
    public Pair<Gradient, INDArray[]> doBackward(boolean tbptt, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoBackward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do backward pass, inputs or "
                    + "epsilon not set");
        }
        OmpThreads.apply();
        boolean cached = cachedProbs != null && cachedInputs != null && cachedInputs.length == inputs.length;
        for (int i = 0; cached && i < inputs.length; i++) {
            cached = cachedInputs[i] == inputs[i];
        }
        State s = cached && cachedSparse != null
                ? new State(batch(), cachedSparse.q(), cachedSparse.k(), cachedSparse.v(), null, cachedSparse)
                : run(true, cached ? cachedProbs : null);
        cachedProbs = null;
        cachedSparse = null;
        cachedInputs = null;
        INDArray e = epsilon.castTo(dataType);
        INDArray dOut = e.rank() == 2 ? Layouts.timeDistributedToHeads(e, s.batch, heads, "vertex \"" + vertexName + "\"")
                : Layouts.heads(e, heads);
        AttentionKernel.Backward bw = s.sparse != null ? ShiftedSparseAttention.backward(s.sparse, dOut)
                : AttentionKernel.backward(s.q, s.k, s.v, s.attn.probs(), dOut, 1.0 / Math.sqrt(s.q.size(3)));
        INDArray[] grads = {bw.dq(), bw.dk(), bw.dv()};
        INDArray[] eps = new INDArray[3];
        for (int i = 0; i < 3; i++) {
            INDArray g = grads[i];
            long f = g.size(1) * g.size(3);
            if (inputs[i].rank() == 2) {
                eps[i] = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, dataType,
                        new long[] {g.size(0) * g.size(2), f}, 'c');
                Layouts.headsToTimeDistributed(g, eps[i]);
            } else {
                eps[i] = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, dataType,
                        new long[] {g.size(0), f, g.size(2)}, 'c');
                Layouts.headsToNcw(g, eps[i]);
            }
        }
        return new Pair<>(null, eps);
    }

    @Override
    public void clear() {
        super.clear();
        cachedProbs = null;
        cachedSparse = null;
        cachedInputs = null;
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
        // the output mask matches the output: per-row [b·T, 1] for rows, [b, T] for a sequence
        return new Pair<>(rowsOutput ? Layouts.rowMask(keyMask) : keyMask, currentMaskState);
    }

    @Override
    public String toString() {
        return "AttentionCoreVertex(name=" + vertexName + ", heads=" + heads + ", causal=" + causal
                + (groupSize > 0 ? ", shiftedSparseGroupSize=" + groupSize : "") + ")";
    }
}
