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
import org.peft4j.core.spi.HostBlas;

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
    /** The detached array the probabilities of training passes are computed in (see {@link #probsBuffer}). */
    private INDArray probsBuffer;

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

    /**
     * Full attention ({@code attn}) or S²-Attn ({@code sparse}, whose q, k, v are the grouped ones);
     * {@code outRows}: the output already written as the vertex's time-distributed rows, or null;
     * {@code rows}: the inputs when {@link HostAttention} ran on them (then q, k, v are null, heads
     * made only if the backward pass falls back to {@link AttentionKernel}).
     */
    private record State(long batch, INDArray q, INDArray k, INDArray v, AttentionKernel.Forward attn,
                         ShiftedSparseAttention.Forward sparse, INDArray outRows, INDArray[] rows) {
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
     * The three inputs as they are when {@link HostAttention} can read them in place (float32
     * time-distributed rows, plain {@code 'c'}; see {@link HostAttention#applies}), else null.
     */
    private INDArray[] hostRows(long batch) {
        if (dataType != DataType.FLOAT) {
            return null;
        }
        for (INDArray in : inputs) {
            if (in.rank() != 2 || in.dataType() != DataType.FLOAT) {
                return null;
            }
        }
        return HostAttention.applies(batch, heads, inputs) ? inputs.clone() : null;
    }

    /** The key mask in force: the one from {@link #feedForwardMaskArrays} while the graph has input masks. */
    private INDArray keyMask() {
        return keyMask != null && graph.getInputMaskArrays() != null ? keyMask : null;
    }

    /**
     * The probabilities' array of a training pass, {@code [b, h, Tq, Tk]}, detached (they are kept
     * for the backward pass): the one of the previous pass when the shape is the same, since that
     * pass's backward is done by then and a new array outside the workspaces is zero-filled first.
     */
    private INDArray probsBuffer(long[] shape) {
        if (probsBuffer == null || probsBuffer.dataType() != dataType || !Arrays.equals(probsBuffer.shape(), shape)) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                probsBuffer = Nd4j.createUninitialized(dataType, shape, 'c');
            }
        }
        return probsBuffer;
    }

    /**
     * The attention of the current inputs; with {@code probs} (kept from the forward pass) only the heads
     * are set up. With {@code workspaceMgr} (a forward pass) and time-distributed rows output, full
     * attention writes its output straight into the vertex's output rows ({@link State#outRows}).
     *
     * @param training whether S²-Attn applies (it does for sequences longer than one group), and
     *     whether the probabilities go to the detached buffer kept for the backward pass
     */
    private State run(boolean training, INDArray probs, LayerWorkspaceMgr workspaceMgr) {
        long b = batch();
        INDArray[] rows = hostRows(b);
        State host = rows == null ? null : runHost(rows, b, training, probs, workspaceMgr);
        if (host != null) {
            return host;
        }
        INDArray qh = heads(0, b);
        INDArray kh = heads(1, b);
        INDArray vh = heads(2, b);
        if (probs != null) {
            return new State(b, qh, kh, vh, new AttentionKernel.Forward(null, probs), null, null, null);
        }
        if (qh.size(3) != kh.size(3) || kh.size(2) != vh.size(2) || qh.size(0) != kh.size(0)
                || kh.size(0) != vh.size(0)) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\": incompatible q, k, v for " + heads
                    + " heads: as [batch, heads, time, headSize] they are " + Arrays.toString(qh.shape()) + ", "
                    + Arrays.toString(kh.shape()) + ", " + Arrays.toString(vh.shape()));
        }
        INDArray mask = keyMask();
        if (training && groupSize > 0 && qh.size(2) > groupSize) {
            // its grouped state is kept for the backward pass: outside the workspaces
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                ShiftedSparseAttention.Forward s = ShiftedSparseAttention.forward(qh, kh, vh,
                        1.0 / Math.sqrt(qh.size(3)), causal, mask, groupSize);
                return new State(b, s.q(), s.k(), s.v(), null, s, null, null);
            }
        }
        long[] scoreShape = {b, heads, qh.size(2), kh.size(2)};
        INDArray scores = training ? probsBuffer(scoreShape) : workspaceMgr == null ? null
                : workspaceMgr.createUninitialized(ArrayType.FF_WORKING_MEM, dataType, scoreShape, 'c');
        INDArray outRows = null;
        INDArray outHeads = null;
        if (workspaceMgr != null && rowsOutput) {
            outRows = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                    new long[] {b * qh.size(2), heads * vh.size(3)}, 'c');
            outHeads = Layouts.timeDistributedToHeads(outRows, b, heads, "vertex \"" + vertexName + "\"");
        }
        INDArray allowed = AttentionKernel.allowedKeys(b, qh.size(2), kh.size(2), causal, mask, dataType);
        AttentionKernel.Forward f = AttentionKernel.forward(qh, kh, vh, 1.0 / Math.sqrt(qh.size(3)), allowed, scores,
                outHeads);
        return new State(b, qh, kh, vh, f, null, outRows, null);
    }

    /**
     * {@link #run} with {@link HostAttention} on the input rows, or null when it does not apply here
     * (S²-Attn while training, q/k/v widths or lengths that do not match, arrays it cannot write in
     * place): then {@link #run} takes the {@link AttentionKernel} path, which also reports bad shapes.
     */
    private State runHost(INDArray[] rows, long b, boolean training, INDArray probs, LayerWorkspaceMgr workspaceMgr) {
        long tq = rows[0].size(0) / b;
        long tk = rows[1].size(0) / b;
        long dv = rows[2].size(1) / heads;
        if (rows[1].size(1) != rows[0].size(1) || rows[2].size(0) != rows[1].size(0)
                || (training && groupSize > 0 && tq > groupSize)) {
            return null;
        }
        if (probs != null) {
            return new State(b, null, null, null, new AttentionKernel.Forward(null, probs), null, null, rows);
        }
        long[] scoreShape = {b, heads, tq, tk};
        INDArray scores = training ? probsBuffer(scoreShape) : workspaceMgr == null
                ? Nd4j.createUninitialized(dataType, scoreShape, 'c')
                : workspaceMgr.createUninitialized(ArrayType.FF_WORKING_MEM, dataType, scoreShape, 'c');
        boolean intoOutput = workspaceMgr != null && rowsOutput;
        long[] outShape = {b * tq, heads * dv};
        INDArray out = intoOutput ? workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, outShape, 'c')
                : Nd4j.createUninitialized(dataType, outShape, 'c');
        if (!HostAttention.applies(b, heads, scores, out)) {
            return null;
        }
        HostAttention.forward(rows[0], rows[1], rows[2], (int) b, heads,
                (float) (1.0 / Math.sqrt(rows[0].size(1) / heads)), causal,
                HostAttention.keep(keyMask(), (int) b, (int) tk), scores, out);
        INDArray outHeads = intoOutput ? null : Layouts.timeDistributedToHeads(out, b, heads, "vertex \"" + vertexName + "\"");
        return new State(b, null, null, null, new AttentionKernel.Forward(outHeads, scores), null,
                intoOutput ? out : null, rows);
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
        State s = run(training, null, workspaceMgr);
        if (training) {
            cachedProbs = s.sparse == null ? s.attn.probs() : null;
            cachedSparse = s.sparse;
            cachedInputs = inputs.clone();
        }
        if (s.outRows != null) {
            return s.outRows;
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
                ? new State(batch(), cachedSparse.q(), cachedSparse.k(), cachedSparse.v(), null, cachedSparse, null, null)
                : run(true, cached ? cachedProbs : null, null);
        cachedProbs = null;
        cachedSparse = null;
        cachedInputs = null;
        INDArray e = epsilon.castTo(dataType);
        INDArray[] eps = new INDArray[3];
        if (s.rows != null) {
            // HostAttention's rows: the gradients are rows of the same shapes, and one score tile
            // serves every head
            INDArray probs = s.attn.probs();
            for (int i = 0; i < 3; i++) {
                eps[i] = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, dataType, s.rows[i].shape(), 'c');
            }
            if (HostAttention.applies(s.batch, heads, e, probs, eps[0], eps[1], eps[2])) {
                INDArray tile = workspaceMgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType,
                        new long[] {probs.size(2), probs.size(3)}, 'c');
                if (HostBlas.isPlain(tile, 2)) {
                    long tk = s.rows[1].size(0) / s.batch;
                    HostAttention.backward(s.rows[0], s.rows[1], s.rows[2], probs, e, (int) s.batch, heads,
                            (float) (1.0 / Math.sqrt(s.rows[0].size(1) / heads)),
                            HostAttention.keep(keyMask(), (int) s.batch, (int) tk), eps[0], eps[1], eps[2], tile);
                    return new Pair<>(null, eps);
                }
            }
            eps = new INDArray[3];
            s = new State(s.batch, heads(0, s.batch), heads(1, s.batch), heads(2, s.batch), s.attn, null, null, null);
        }
        INDArray dOut = e.rank() == 2 ? Layouts.timeDistributedToHeads(e, s.batch, heads, "vertex \"" + vertexName + "\"")
                : Layouts.heads(e, heads);
        AttentionKernel.Backward bw;
        if (s.sparse != null) {
            bw = ShiftedSparseAttention.backward(s.sparse, dOut);
        } else {
            // the gradients of time-distributed rows inputs are written straight into their rows
            INDArray[] heads3 = {s.q, s.k, s.v};
            INDArray[] targets = new INDArray[3];
            for (int i = 0; i < 3; i++) {
                if (inputs[i].rank() == 2) {
                    INDArray h = heads3[i];
                    eps[i] = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, dataType,
                            new long[] {h.size(0) * h.size(2), h.size(1) * h.size(3)}, 'c');
                    targets[i] = Layouts.timeDistributedToHeads(eps[i], s.batch, heads, "vertex \"" + vertexName + "\"");
                }
            }
            INDArray probs = s.attn.probs();
            INDArray scratch = workspaceMgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, probs.shape(), 'c');
            bw = AttentionKernel.backward(s.q, s.k, s.v, probs, dOut, 1.0 / Math.sqrt(s.q.size(3)), targets[0],
                    targets[1], targets[2], scratch);
        }
        INDArray[] grads = {bw.dq(), bw.dk(), bw.dv()};
        for (int i = 0; i < 3; i++) {
            if (eps[i] != null) {
                continue;
            }
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
