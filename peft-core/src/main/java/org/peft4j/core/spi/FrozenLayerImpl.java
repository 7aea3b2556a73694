package org.peft4j.core.spi;

import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.BaseLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.blocks.internal.RowKernels;

/**
 * The implementation every frozen base layer shares, and the hooks a tuner overrides. Each kind's
 * implementation ({@link FrozenDenseLayerImpl}, {@link FrozenEmbeddingLayerImpl},
 * {@link FrozenConvolutionLayerImpl}) computes the stock layer's forward pass and input gradient
 * with the frozen weight, in a <em>row form</em> the hooks see:
 * <ul>
 *   <li>{@code x}: the input as rows, {@code [rows, k]}: a dense layer's input {@code [batch, nIn]};
 *       a convolution's im2col columns {@code [batch·outH·outW, nIn·kH·kW]} (so that the frozen
 *       convolution is {@code z = x·W2d} with {@code W2d [nIn·kH·kW, nOut]}); for an embedding the
 *       token indices {@code [rows]} (one row per token, see {@link FrozenEmbeddingLayerImpl#indices()});</li>
 *   <li>{@code z}, {@code delta}: the pre-activation and its gradient as rows {@code [rows, nOut]};</li>
 *   <li>{@code epsOut}: the gradient with respect to {@code x} in the same row form, or null when
 *       nothing upstream trains (the implementation turns it into the stock layer's epsilon).</li>
 * </ul>
 * The hooks are called only while the adapter is active (present, enabled, not merged):
 * {@link #adapterInput} (what {@code W} sees), {@link #addAdapterOutput} (changes {@code z} in
 * place), {@link #adapterDelta} (maps {@code dL/dz} to the gradient at {@code x'·W + b}) and
 * {@link #adapterBackward} (parameter gradients, adapter part of the input gradient). While the
 * adapter is inactive the adapter's parameters get zero gradients.
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 *
 * @param <C> the layer configuration
 */
public abstract class FrozenLayerImpl<C extends FrozenBaseLayer> extends BaseLayer<C> {

    protected FrozenLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** Whether the adapter branch takes part in forward and backward now. */
    protected boolean adapterActive() {
        C c = layerConf();
        return c.hasAdapter() && c.isAdapterEnabled() && !c.isMerged();
    }

    /**
     * The input the frozen weight multiplies, {@code x' [rows, k]}; default {@code x} itself.
     * IA3 on a feedforward target returns {@code x ⊙ l}. An override must not write into {@code x}.
     */
    protected INDArray adapterInput(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr) {
        return x;
    }

    /**
     * Changes {@code z [rows, nOut]} in place, which holds {@code x'·W + b} on entry: LoRA adds its
     * branch, IA3 on a non-feedforward target multiplies by its scale. Called with
     * {@code forBackprop} true when the backward pass recomputes the forward pass, so an
     * implementation may keep what {@link #adapterDelta} needs (in a {@code BP_WORKING_MEM} array).
     */
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr workspaceMgr) {
    }

    /**
     * Maps {@code delta = dL/dz [rows, nOut]} to the gradient at {@code x'·W + b}, from which the
     * bias gradient and the base part of the input gradient are computed; default {@code delta}.
     * An implementation may write into {@code delta} and may compute parameter gradients here (it
     * reports them to the {@link Gradient} in {@link #adapterBackward}, after the bias).
     */
    protected INDArray adapterDelta(INDArray x, INDArray delta, LayerWorkspaceMgr workspaceMgr) {
        return delta;
    }

    /**
     * Writes the adapter's parameter gradients into their gradient views (and into {@code g}) and,
     * when {@code epsOut} is not null, adds the adapter's part of the input gradient to it.
     * {@code epsOut} holds the frozen weight's part of the gradient with respect to {@code x'} on entry.
     *
     * @param x the layer input in row form (after the layer's own input dropout)
     * @param delta the result of {@link #adapterDelta}, {@code [rows, nOut]}
     */
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut,
                                   LayerWorkspaceMgr workspaceMgr) {
    }

    /** Called after each backward pass: drop per-iteration state such as dropout masks. */
    protected void afterBackward() {
    }

    /**
     * Writes {@code Σ_rows delta} into the bias gradient when the bias trains ({@code delta [rows, nOut]}).
     */
    protected final void biasGradient(INDArray delta, Gradient g) {
        if (layerConf().isTrainableBias()) {
            INDArray biasGrad = gradientViews.get(FrozenBaseLayer.BIAS_KEY);
            if (!RowKernels.columnSums(delta, biasGrad)) {
                delta.sum(biasGrad, 0);
            }
            g.gradientForVariable().put(FrozenBaseLayer.BIAS_KEY, biasGrad);
        }
    }

    /** Gives every parameter without a gradient in {@code g} a zero one (the adapter's, while it is inactive). */
    protected final void zeroOtherGradients(Gradient g) {
        if (gradientViews == null) {
            return;
        }
        for (Map.Entry<String, INDArray> e : gradientViews.entrySet()) {
            if (!g.gradientForVariable().containsKey(e.getKey())) {
                e.getValue().assign(0);
                g.gradientForVariable().put(e.getKey(), e.getValue());
            }
        }
    }

    /**
     * DL4J's mask, {@code to ⊙ mask}; a per-row mask of zeros and ones on {@code 'c'} rows is
     * applied by zeroing the masked rows ({@link RowKernels#zeroMaskedRows}).
     */
    @Override
    protected void applyMask(INDArray to) {
        if (!RowKernels.zeroMaskedRows(to, maskArray)) {
            super.applyMask(to);
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
