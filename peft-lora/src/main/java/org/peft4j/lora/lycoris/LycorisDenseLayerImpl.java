package org.peft4j.lora.lycoris;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.spi.FrozenDenseLayerImpl;

/**
 * Implementation of {@link LycorisDenseLayer}: the frozen dense layer plus the update
 * {@code z += x·ΔWᵀ} of the layer's {@link LycorisAdapter}, with its backward pass and dropout
 * ({@link LycorisBranch}). Hand-written because DL4J has no layer with a frozen weight outside the
 * parameter vector, and SameDiff layers return doubled gradients in 1.0.0-M2.1.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class LycorisDenseLayerImpl extends FrozenDenseLayerImpl {
    private static final long serialVersionUID = 1L;

    /** Created on first use: {@link #afterBackward()} may run from the superclass constructor. */
    private LycorisBranch branch;

    public LycorisDenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private LycorisBranch branch() {
        if (branch == null) {
            branch = new LycorisBranch();
        }
        return branch;
    }

    private LycorisAdapter adapter() {
        return ((LycorisLayer) layerConf()).adapter();
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr workspaceMgr) {
        branch().forward(adapter(), params, x, z, training, training && !forBackprop);
    }

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut,
                                   LayerWorkspaceMgr workspaceMgr) {
        branch().backward(adapter(), params, gradientViews, x, delta, g, epsOut);
    }

    @Override
    protected void afterBackward() {
        if (branch != null) {
            branch.reset();
        }
    }
}
