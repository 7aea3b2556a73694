package org.peft4j.core.internal;

import java.util.Arrays;
import java.util.Map;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.BaseLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenDenseLayer;

/**
 * Implementation of {@link FrozenDenseLayer}: forward {@code z = x·W + b (+ adapter)},
 * backward {@code eps_in = delta·Wᵀ (+ adapter)} with no weight gradient for {@code W}. Tuners
 * extend it through {@link #addAdapterOutput} and {@link #adapterBackward}.
 *
 * <p>Written by hand because DL4J's dense layer always computes the weight gradient, and its
 * parameters must be in the flat vector; here the frozen weight is a configuration field.
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 */
public class FrozenDenseLayerImpl extends BaseLayer<FrozenDenseLayer> {

    public FrozenDenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** Whether the adapter branch takes part in forward and backward now. */
    protected boolean adapterActive() {
        FrozenDenseLayer c = layerConf();
        return c.hasAdapter() && c.isAdapterEnabled() && !c.isMerged();
    }

    /** Adds the adapter's contribution to {@code z [batch, nOut]} in place; {@code x [batch, nIn]}. */
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, LayerWorkspaceMgr workspaceMgr) {
    }

    /**
     * Writes the adapter's parameter gradients into their gradient views (and into {@code g}) and,
     * when {@code epsOut} is not null, adds the adapter's part of the input gradient to it.
     *
     * @param x the layer input {@code [batch, nIn]} (after the layer's own input dropout)
     * @param delta {@code dL/dz [batch, nOut]}
     */
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut,
                                   LayerWorkspaceMgr workspaceMgr) {
    }

    /**
     * {@code z = x·W} for the frozen weight (overwriting {@code z [batch, nOut]}). Overridden by
     * layers that hold {@code W} in another form, e.g. 4-bit blocks.
     */
    protected void baseForward(INDArray x, INDArray z) {
        x.mmuli(layerConf().effectiveWeight().castTo(dataType), z);
    }

    /** {@code eps = delta·Wᵀ} for the frozen weight (overwriting {@code eps [batch, nIn]}). */
    protected void baseInputGradient(INDArray delta, INDArray eps) {
        Nd4j.gemm(delta, layerConf().effectiveWeight().castTo(delta.dataType()), eps, false, true, 1.0, 0.0);
    }

    /** Called after each backward pass: drop per-iteration state such as dropout masks. */
    protected void afterBackward() {
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        return preOutput(training, false, workspaceMgr);
    }

    private INDArray preOutput(boolean training, boolean forBackprop, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(forBackprop);
        applyDropOutIfNecessary(training, workspaceMgr);
        FrozenDenseLayer c = layerConf();
        INDArray x = input.castTo(dataType);
        if (x.rank() != 2 || x.size(1) != c.getNIn()) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects input [batch, "
                    + c.getNIn() + "], got " + Arrays.toString(x.shape())
                    + (x.rank() != 2 ? " (rank " + x.rank() + "; a missing preprocessor?)" : ""));
        }
        INDArray z = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, x.size(0), c.getNOut());
        baseForward(x, z);
        INDArray b = c.isTrainableBias() ? params.get(FrozenDenseLayer.BIAS_KEY) : c.frozenBias();
        if (b != null) {
            z.addiRowVector(b.castTo(dataType));
        }
        if (adapterActive()) {
            addAdapterOutput(x, z, training, workspaceMgr);
        }
        if (maskArray != null && !c.isOutputProjection()) {
            applyMask(z);
        }
        return z;
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        FrozenDenseLayer c = layerConf();
        if (c.isMerged()) {
            throw new IllegalStateException("layer \"" + c.getLayerName() + "\" has its adapter merged into the "
                    + "base weight; call unmerge() before training");
        }
        try {
            INDArray z = preOutput(true, true, workspaceMgr);
            INDArray delta = c.getActivationFn().backprop(z, epsilon).getFirst();
            if (maskArray != null) {
                applyMask(delta);
            }
            Gradient g = new DefaultGradient();
            if (c.isTrainableBias()) {
                INDArray biasGrad = gradientViews.get(FrozenDenseLayer.BIAS_KEY);
                delta.sum(biasGrad, 0);
                g.gradientForVariable().put(FrozenDenseLayer.BIAS_KEY, biasGrad);
            }
            INDArray epsNext = null;
            if (c.isInputGradient()) {
                epsNext = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, delta.dataType(),
                        new long[] {delta.size(0), c.getNIn()}, 'f');
                baseInputGradient(delta, epsNext);
            }
            INDArray x = input.castTo(dataType);
            if (adapterActive()) {
                adapterBackward(x, delta, g, epsNext, workspaceMgr);
            } else if (gradientViews != null) {
                for (Map.Entry<String, INDArray> e : gradientViews.entrySet()) {
                    if (!g.gradientForVariable().containsKey(e.getKey())) {
                        e.getValue().assign(0);
                        g.gradientForVariable().put(e.getKey(), e.getValue());
                    }
                }
            }
            if (epsNext != null) {
                epsNext = backpropDropOutIfPresent(epsNext);
            }
            return new Pair<>(g, epsNext);
        } finally {
            afterBackward();
        }
    }

    @Override
    public boolean hasBias() {
        return layerConf().isTrainableBias();
    }

    @Override
    public boolean isPretrainLayer() {
        return false;
    }

    @Override
    public void fit(INDArray input, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("layer-wise fit is not supported; fit the ComputationGraph");
    }

    @Override
    public void clear() {
        super.clear();
        afterBackward();
    }
}
