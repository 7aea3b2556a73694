package org.peft4j.lora.adalora.internal;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;
import org.peft4j.lora.adalora.AdaLoraConvolutionLayer;

/**
 * Implementation of {@link AdaLoraConvolutionLayer}: {@link SvdBranch} on the im2col rows the
 * frozen convolution hands its hooks, where the update {@code ΔW} applied with the layer's geometry
 * is one matrix product per factor.
 *
 * <p>The dropout mask is drawn on the (NCHW) input {@code [batch, nIn, H, W]} and taken to the rows
 * by the same im2col as the input, so an input value is dropped in every window or in none; it is
 * kept (outside workspaces) for the backward pass, which computes the forward pass again.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class AdaLoraConvolutionLayerImpl extends FrozenConvolutionLayerImpl implements GradientViews {
    private static final long serialVersionUID = 1L;

    /** Created on first use: {@link #afterBackward()} may run from the superclass constructor. */
    private BranchDropout dropout;

    public AdaLoraConvolutionLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private AdaLoraConvolutionLayer adaLora() {
        return (AdaLoraConvolutionLayer) layerConf();
    }

    /** The dropout mask of this pass as rows {@code [rows, nIn·kH·kW]}, or null without dropout. */
    private INDArray rowMask(boolean training, boolean fresh, ArrayType type, LayerWorkspaceMgr mgr) {
        if (dropout == null) {
            dropout = new BranchDropout();
        }
        Geometry g = geometry();
        INDArray m = dropout.mask(adaLora().loraDropout(), new long[] {g.batch(), g.channels(), g.inH(), g.inW()}, dataType,
                training, fresh);
        return m == null ? null : im2col(m, g, type, mgr);
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        AdaLoraConvolutionLayer c = adaLora();
        if (c.rank() == 0) {
            return;
        }
        ArrayType type = forBackprop ? ArrayType.BP_WORKING_MEM : ArrayType.FF_WORKING_MEM;
        INDArray mask = rowMask(training, training && !forBackprop, type, mgr);
        SvdBranch.forward(mask == null ? x : x.mul(mask), params, c.scaling(), z, dataType, type, mgr);
    }

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut, LayerWorkspaceMgr mgr) {
        AdaLoraConvolutionLayer c = adaLora();
        if (c.rank() == 0) {
            return;
        }
        INDArray mask = rowMask(true, false, ArrayType.BP_WORKING_MEM, mgr);
        SvdBranch.backward(mask == null ? x : x.mul(mask), delta, params, gradientViews, c.scaling(), mask, g, epsOut,
                dataType, mgr);
    }

    /** Test hook: keeps the dropout mask of the next training pass for every later one (true), or not (false). */
    void pinDropoutMask(boolean pin) {
        if (dropout == null) {
            dropout = new BranchDropout();
        }
        dropout.pin(pin);
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
