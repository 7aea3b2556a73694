package org.peft4j.core.prefix.internal;

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
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.blocks.internal.AttentionKernel;
import org.peft4j.core.blocks.internal.Layouts;
import org.peft4j.core.prefix.PrefixAttentionCore;

/**
 * Implementation of {@link PrefixAttentionCore}; the formulas are in its javadoc. It runs the
 * blocks' {@link AttentionKernel} on keys and values extended by the prefix input, with an
 * allowed-key mask whose first {@code p} columns are ones. Its output (and so the gradient it
 * receives) is NCW or time-distributed rows, as the core it replaced.
 *
 * <p>The key mask is used only while the graph has input masks set, as in the base core: DL4J
 * clears the masks of layers, not of vertices.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J vertex.
 */
public final class PrefixAttentionCoreVertex extends BaseGraphVertex {
    private static final long serialVersionUID = 1L;

    private final PrefixAttentionCore conf;
    private INDArray keyMask;

    public PrefixAttentionCoreVertex(ComputationGraph graph, String name, int idx, DataType dataType,
                                     PrefixAttentionCore conf) {
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

    /** Whether the prefix takes part now. */
    private boolean active() {
        return conf.isAdapterEnabled() && conf.numVirtualTokens() > 0;
    }

    /** The mini-batch size: from a sequence input (the prefix is one), else the graph's. */
    private long batch() {
        for (int i = inputs.length - 1; i >= 0; i--) {
            if (inputs[i].rank() == 3) {
                return inputs[i].size(0);
            }
        }
        return graph.batchSize();
    }

    private INDArray ncw(INDArray in, long batch) {
        return Layouts.ncwInput(in, batch, dataType, vertexName);
    }

    /** {@code [prefix ; x]} along time, 'c' order: {@code [b, f, p + T]}. */
    private static INDArray withPrefix(INDArray prefix, INDArray x) {
        long p = prefix.size(2);
        long t = x.size(2);
        INDArray out = Nd4j.createUninitialized(x.dataType(), new long[] {x.size(0), x.size(1), p + t}, 'c');
        out.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, p)).assign(prefix);
        out.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(p, p + t)).assign(x);
        return out;
    }

    private record State(long batch, INDArray q, INDArray k, INDArray v, AttentionKernel.Forward attn) {
    }

    private State run() {
        long b = batch();
        INDArray q = ncw(inputs[0], b);
        INDArray k = ncw(inputs[1], b);
        INDArray v = ncw(inputs[2], b);
        int heads = conf.getHeads();
        if (q.size(1) != k.size(1) || q.size(1) % heads != 0 || v.size(1) % heads != 0 || k.size(2) != v.size(2)
                || q.size(0) != k.size(0) || k.size(0) != v.size(0)) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\": incompatible q " + Arrays.toString(q.shape())
                    + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()) + " for " + heads + " heads");
        }
        INDArray mask = keyMask != null && graph.getInputMaskArrays() != null ? keyMask : null;
        long tq = q.size(2);
        long tk = k.size(2);
        INDArray allowed = AttentionKernel.allowedKeys(b, tq, tk, conf.isCausal(), mask, dataType);
        if (active()) {
            INDArray pre = inputs[3].castTo(dataType);
            long p = conf.numVirtualTokens();
            long dk = k.size(1);
            if (pre.rank() != 3 || pre.size(0) != b || pre.size(1) != dk + v.size(1) || pre.size(2) != p) {
                throw new DL4JInvalidInputException("vertex \"" + vertexName + "\": prefix input must be [" + b + ", "
                        + (dk + v.size(1)) + ", " + p + "], got " + Arrays.toString(pre.shape()));
            }
            k = withPrefix(pre.get(NDArrayIndex.all(), NDArrayIndex.interval(0, dk), NDArrayIndex.all()), k);
            v = withPrefix(pre.get(NDArrayIndex.all(), NDArrayIndex.interval(dk, pre.size(1)), NDArrayIndex.all()), v);
            if (allowed != null) {
                INDArray full = Nd4j.ones(dataType, b, tq, p + tk);
                full.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(p, p + tk)).assign(allowed);
                allowed = full;
            }
        }
        INDArray qh = Layouts.heads(q, heads);
        INDArray kh = Layouts.heads(k, heads);
        INDArray vh = Layouts.heads(v, heads);
        AttentionKernel.Forward f = AttentionKernel.forward(qh, kh, vh, 1.0 / Math.sqrt(q.size(1) / heads), allowed);
        return new State(b, qh, kh, vh, f);
    }

    @Override
    public INDArray doForward(boolean training, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoForward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do forward pass, inputs not set");
        }
        INDArray o = run().attn().out();
        if (conf.isRowsOutput()) {
            INDArray out = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                    new long[] {o.size(0) * o.size(2), o.size(1) * o.size(3)}, 'c');
            Layouts.headsToTimeDistributed(o, out);
            return out;
        }
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
        State s = run();
        INDArray dy = epsilon.castTo(dataType);
        INDArray dOut = dy.rank() == 2
                ? Layouts.timeDistributedToHeads(dy, s.batch(), conf.getHeads(), "vertex \"" + vertexName + "\"")
                : Layouts.heads(dy, conf.getHeads());
        AttentionKernel.Backward bw = AttentionKernel.backward(s.q(), s.k(), s.v(), s.attn().probs(), dOut,
                1.0 / Math.sqrt(s.q().size(3)));
        INDArray[] g = {bw.dq(), bw.dk(), bw.dv()};
        INDArray[] ncwGrad = new INDArray[3];
        for (int i = 0; i < 3; i++) {
            ncwGrad[i] = Nd4j.createUninitialized(dataType, new long[] {g[i].size(0), g[i].size(1) * g[i].size(3),
                g[i].size(2)}, 'c');
            Layouts.headsToNcw(g[i], ncwGrad[i]);
        }
        INDArray[] eps = new INDArray[inputs.length];
        long p = conf.numVirtualTokens();
        if (inputs.length == 4) {
            INDArray pre = inputs[3];
            INDArray dPre = workspaceMgr.create(ArrayType.ACTIVATION_GRAD, dataType, pre.shape(), 'c');
            if (active()) {
                long dk = ncwGrad[1].size(1);
                long tk = ncwGrad[1].size(2);
                dPre.get(NDArrayIndex.all(), NDArrayIndex.interval(0, dk), NDArrayIndex.all())
                        .assign(ncwGrad[1].get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, p)));
                dPre.get(NDArrayIndex.all(), NDArrayIndex.interval(dk, pre.size(1)), NDArrayIndex.all())
                        .assign(ncwGrad[2].get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, p)));
                ncwGrad[1] = ncwGrad[1].get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(p, tk));
                ncwGrad[2] = ncwGrad[2].get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(p, tk));
            }
            eps[3] = dPre;
        }
        if (conf.isInputGradient()) {
            for (int i = 0; i < 3; i++) {
                boolean rows = inputs[i].rank() == 2;
                INDArray e = rows ? Layouts.timeDistributedFromNcw(ncwGrad[i]) : ncwGrad[i];
                eps[i] = workspaceMgr.dup(ArrayType.ACTIVATION_GRAD, e, rows ? 'f' : 'c');
            }
        }
        return new Pair<>(null, eps);
    }

    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArrays(INDArray[] maskArrays, MaskState currentMaskState,
                                                           int minibatchSize) {
        INDArray m = maskArrays == null ? null : maskArrays[1];
        keyMask = m == null ? null : Layouts.sequenceMask(m, minibatchSize);
        // the output mask matches the output: per-row [b·T, 1] for rows, [b, T] for a sequence
        return new Pair<>(conf.isRowsOutput() ? Layouts.rowMask(keyMask) : keyMask, currentMaskState);
    }

    @Override
    public String toString() {
        return "PrefixAttentionCoreVertex(name=" + vertexName + ", " + conf + ")";
    }
}
