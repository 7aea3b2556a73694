package org.peft4j.lora.adalora.internal;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.adalora.AdaLoraDenseLayer;

/**
 * Implementation of {@link AdaLoraDenseLayer}; the formulas are in its javadoc and in
 * {@link SvdBranch}. Hand-written because DL4J has no layer whose weight is frozen outside the
 * parameter vector, and SameDiff layers return doubled gradients in 1.0.0-M2.1.
 *
 * <p>Every training forward pass draws a new dropout mask and keeps it (outside workspaces) for the
 * matching backward pass.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class AdaLoraDenseLayerImpl extends FrozenDenseLayerImpl implements GradientViews {
    private static final long serialVersionUID = 1L;

    /** Created on first use: {@link #afterBackward()} may run from the superclass constructor. */
    private BranchDropout dropout;

    public AdaLoraDenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private AdaLoraDenseLayer adaLora() {
        return (AdaLoraDenseLayer) layerConf();
    }

    private BranchDropout dropout() {
        if (dropout == null) {
            dropout = new BranchDropout();
        }
        return dropout;
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        AdaLoraDenseLayer c = adaLora();
        if (c.rank() == 0) {
            return;
        }
        INDArray mask = dropout().mask(c.loraDropout(), x.shape(), dataType, training, training && !forBackprop);
        SvdBranch.forward(mask == null ? x : x.mul(mask), params, c.scaling(), z, dataType,
                forBackprop ? ArrayType.BP_WORKING_MEM : ArrayType.FF_WORKING_MEM, mgr);
    }

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut, LayerWorkspaceMgr mgr) {
        AdaLoraDenseLayer c = adaLora();
        if (c.rank() == 0) {
            return;
        }
        INDArray mask = dropout().mask(c.loraDropout(), x.shape(), dataType, true, false);
        SvdBranch.backward(mask == null ? x : x.mul(mask), delta, params, gradientViews, c.scaling(), mask, g, epsOut,
                dataType, mgr);
    }

    /** Test hook: keeps the dropout mask of the next training pass for every later one (true), or not (false). */
    void pinDropoutMask(boolean pin) {
        dropout().pin(pin);
    }

    @Override
    public INDArray gradientView(String key) {
        return gradientViews == null ? null : gradientViews.get(key);
    }

    @Override
    protected void afterBackward() {
        if (dropout != null) {
            dropout.release();
        }
    }
}
