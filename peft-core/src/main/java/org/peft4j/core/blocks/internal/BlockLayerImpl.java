package org.peft4j.core.blocks.internal;

import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.BaseLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.blocks.BlockLayer;

/**
 * Shared frame of the block layer implementations: input dropout, the workspace contract (the
 * output is returned in {@link ArrayType#ACTIVATIONS}, the epsilon in
 * {@link ArrayType#ACTIVATION_GRAD}), and gradients written in place into the gradient views in
 * parameter order. Subclasses supply {@link #forward} and {@link #backward}.
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 */
public abstract class BlockLayerImpl<C extends BlockLayer> extends BaseLayer<C> {
    private static final long serialVersionUID = 1L;

    protected BlockLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** The output for input {@code x} (any workspace; the frame moves it to ACTIVATIONS). */
    protected abstract INDArray forward(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr);

    /**
     * Writes every parameter gradient into {@code gradientViews} and returns {@code ∂L/∂x}
     * (any workspace; the frame moves it to ACTIVATION_GRAD).
     */
    protected abstract INDArray backward(INDArray x, INDArray epsilon, LayerWorkspaceMgr workspaceMgr);

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(false);
        OmpThreads.apply();
        applyDropOutIfNecessary(training, workspaceMgr);
        INDArray out = forward(input.castTo(dataType), training, workspaceMgr);
        return workspaceMgr.leverageTo(ArrayType.ACTIVATIONS, out);
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        OmpThreads.apply();
        applyDropOutIfNecessary(true, workspaceMgr);
        INDArray eps = backward(input.castTo(dataType), epsilon.castTo(dataType), workspaceMgr);
        Gradient g = new DefaultGradient();
        if (gradientViews != null) {
            for (String key : layerConf().paramShapes().keySet()) {
                g.gradientForVariable().put(key, gradientViews.get(key));
            }
        }
        eps = workspaceMgr.leverageTo(ArrayType.ACTIVATION_GRAD, eps);
        eps = backpropDropOutIfPresent(eps);
        return new Pair<>(g, eps);
    }

    /** The gradient view of {@code key}. */
    protected INDArray grad(String key) {
        Map<String, INDArray> gv = gradientViews;
        INDArray g = gv == null ? null : gv.get(key);
        if (g == null) {
            throw new IllegalStateException("layer \"" + layerConf().getLayerName() + "\" has no gradient view for "
                    + key + "; was the graph initialized?");
        }
        return g;
    }

    @Override
    public boolean hasBias() {
        return false;
    }

    @Override
    public boolean isPretrainLayer() {
        return false;
    }

    @Override
    public void fit(INDArray input, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("layer-wise fit is not supported; fit the ComputationGraph");
    }
}
