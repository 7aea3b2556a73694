package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.blocks.MultiHeadAttention;

/**
 * Implementation of {@link MultiHeadAttention} (formulas there). Projections run on rows
 * {@code [b·T, nIn]} as single GEMMs; attention runs in {@link AttentionKernel}.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public final class MultiHeadAttentionImpl extends BlockLayerImpl<MultiHeadAttention> {
    private static final long serialVersionUID = 1L;

    public MultiHeadAttentionImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** Everything the forward pass computes that the backward pass needs. */
    private record State(INDArray x2, INDArray q, INDArray k, INDArray v, AttentionKernel.Forward attn, INDArray a2,
                         long batch, long steps) {
    }

    private State run(INDArray x) {
        MultiHeadAttention c = layerConf();
        if (x.rank() != 3 || x.size(1) != c.getNIn()) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects input [batch, "
                    + c.getNIn() + ", time], got " + Arrays.toString(x.shape()));
        }
        long b = x.size(0);
        long t = x.size(2);
        int h = c.getHeads();
        INDArray x2 = Layouts.rows(x);
        INDArray q = Layouts.rowsToHeads(project(x2, MultiHeadAttention.WQ, MultiHeadAttention.BQ), b, h);
        INDArray k = Layouts.rowsToHeads(project(x2, MultiHeadAttention.WK, MultiHeadAttention.BK), b, h);
        INDArray v = Layouts.rowsToHeads(project(x2, MultiHeadAttention.WV, MultiHeadAttention.BV), b, h);
        INDArray keyMask = maskArray == null ? null : Layouts.sequenceMask(maskArray, b);
        INDArray allowed = AttentionKernel.allowedKeys(b, t, t, c.isCausal(), keyMask, dataType);
        AttentionKernel.Forward attn = AttentionKernel.forward(q, k, v, 1.0 / Math.sqrt(c.getHeadSize()), allowed);
        return new State(x2, q, k, v, attn, Layouts.headsToRows(attn.out()), b, t);
    }

    /** {@code x2 · W[h·d, nIn]ᵀ + b} as rows {@code [b·T, h·d]}. */
    private INDArray project(INDArray x2, String wKey, String bKey) {
        INDArray w = matrix(getParam(wKey));
        INDArray y = Nd4j.gemm(x2, w, false, true);
        if (layerConf().hasBias()) {
            y.addiRowVector(getParam(bKey));
        }
        return y;
    }

    private static INDArray matrix(INDArray w3) {
        return w3.reshape('c', w3.size(0) * w3.size(1), w3.size(2));
    }

    @Override
    protected INDArray forward(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr) {
        State s = run(x);
        // Nd4j.gemm, not mmul: mmul into a new 'c' array took 2.5-5x as long on nd4j-native 1.0.0-M2.1
        INDArray y = Nd4j.gemm(s.a2, getParam(MultiHeadAttention.WO), false, false);
        if (layerConf().hasBias()) {
            y.addiRowVector(getParam(MultiHeadAttention.BO));
        }
        return Layouts.unrows(y, new long[] {s.batch, 0, s.steps});
    }

    @Override
    protected INDArray backward(INDArray x, INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        MultiHeadAttention c = layerConf();
        State s = run(x);
        INDArray dy = Layouts.rows(epsilon);
        INDArray wo = getParam(MultiHeadAttention.WO);
        Nd4j.gemm(s.a2, dy, grad(MultiHeadAttention.WO), true, false, 1.0, 0.0);
        INDArray da2 = Nd4j.gemm(dy, wo, false, true);
        AttentionKernel.Backward bw = AttentionKernel.backward(s.q, s.k, s.v, s.attn.probs(),
                Layouts.rowsToHeads(da2, s.batch, c.getHeads()), 1.0 / Math.sqrt(c.getHeadSize()));
        INDArray dq = Layouts.headsToRows(bw.dq());
        INDArray dk = Layouts.headsToRows(bw.dk());
        INDArray dv = Layouts.headsToRows(bw.dv());
        Nd4j.gemm(dq, s.x2, matrix(grad(MultiHeadAttention.WQ)), true, false, 1.0, 0.0);
        Nd4j.gemm(dk, s.x2, matrix(grad(MultiHeadAttention.WK)), true, false, 1.0, 0.0);
        Nd4j.gemm(dv, s.x2, matrix(grad(MultiHeadAttention.WV)), true, false, 1.0, 0.0);
        if (c.hasBias()) {
            grad(MultiHeadAttention.BQ).assign(dq.sum(0));
            grad(MultiHeadAttention.BK).assign(dk.sum(0));
            grad(MultiHeadAttention.BV).assign(dv.sum(0));
            grad(MultiHeadAttention.BO).assign(dy.sum(0));
        }
        INDArray dx2 = Nd4j.gemm(dq, matrix(getParam(MultiHeadAttention.WQ)), false, false);
        Nd4j.gemm(dk, matrix(getParam(MultiHeadAttention.WK)), dx2, false, false, 1.0, 1.0);
        Nd4j.gemm(dv, matrix(getParam(MultiHeadAttention.WV)), dx2, false, false, 1.0, 1.0);
        return Layouts.unrows(dx2, x.shape());
    }
}
