package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;
import org.peft4j.core.blocks.Normalization;

/**
 * Implementation of {@link org.peft4j.core.blocks.LayerNorm} and {@link org.peft4j.core.blocks.RmsNorm}
 * (formulas there). Works on rows {@code [b·T, f]}; the forward pass is recomputed in backward.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public final class NormalizationImpl extends BlockLayerImpl<Normalization> {
    private static final long serialVersionUID = 1L;

    public NormalizationImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private void check(INDArray x) {
        long f = layerConf().getNOut();
        if ((x.rank() != 2 && x.rank() != 3) || x.size(1) != f) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\" expects input [batch, "
                    + f + ", time] or [batch, " + f + "], got " + Arrays.toString(x.shape()));
        }
    }

    /** x̂ rows and r (a column) for rows x. */
    private INDArray[] normalize(INDArray x2) {
        Normalization c = layerConf();
        INDArray xc = c.centered() ? x2.subColumnVector(x2.mean(1).reshape(x2.size(0), 1)) : x2.dup();
        INDArray var = xc.mul(xc).mean(1).reshape(x2.size(0), 1);
        INDArray r = Transforms.pow(var.addi(c.eps()), -0.5, false);
        return new INDArray[] {xc.muliColumnVector(r), r};
    }

    @Override
    protected INDArray forward(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr) {
        check(x);
        INDArray x2 = Layouts.rows(x);
        INDArray y = normalize(x2)[0];
        y.muliRowVector(getParam(Normalization.GAIN_KEY));
        if (layerConf().centered()) {
            y.addiRowVector(getParam(Normalization.BIAS_KEY));
        }
        return Layouts.unrows(y, x.shape());
    }

    @Override
    protected INDArray backward(INDArray x, INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        check(x);
        Normalization c = layerConf();
        INDArray x2 = Layouts.rows(x);
        INDArray dy = Layouts.rows(epsilon);
        INDArray[] n = normalize(x2);
        INDArray xhat = n[0];
        INDArray r = n[1];
        grad(Normalization.GAIN_KEY).assign(dy.mul(xhat).sum(0));
        if (c.centered()) {
            grad(Normalization.BIAS_KEY).assign(dy.sum(0));
        }
        INDArray gh = dy.mulRowVector(getParam(Normalization.GAIN_KEY));
        INDArray proj = gh.mul(xhat).mean(1).reshape(x2.size(0), 1);
        INDArray mean = c.centered() ? gh.mean(1).reshape(x2.size(0), 1) : null;
        INDArray dx = gh.subi(xhat.mulColumnVector(proj));
        if (mean != null) {
            dx.subiColumnVector(mean);
        }
        dx.muliColumnVector(r);
        return Layouts.unrows(dx, x.shape());
    }
}
