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
import org.nd4j.linalg.activations.impl.ActivationIdentity;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.blocks.internal.OmpThreads;

/**
 * Implementation of {@link FrozenDenseLayer}: forward {@code z = x'·W + b (+ adapter)} with
 * {@code x' = }{@link #adapterInput}{@code (x)} (just {@code x} unless a tuner scales the input),
 * backward {@code eps_in = delta·Wᵀ (+ adapter)} with no weight gradient for {@code W}. Tuners
 * extend it through four hooks, called only while the adapter is active (present, enabled, not
 * merged): {@link #adapterInput} (what {@code W} sees), {@link #addAdapterOutput} (changes
 * {@code z} in place), {@link #adapterDelta} (maps {@code dL/dz} to the gradient at {@code x'·W + b})
 * and {@link #adapterBackward} (parameter gradients, adapter part of the input gradient).
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

    /**
     * The input the frozen weight multiplies, {@code x' [batch, nIn]}; default {@code x} itself.
     * IA3 on a feedforward target returns {@code x ⊙ l}. An override must not write into {@code x}.
     */
    protected INDArray adapterInput(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr) {
        return x;
    }

    /**
     * Changes {@code z [batch, nOut]} in place, which holds {@code x'·W + b} on entry: LoRA adds its
     * branch, IA3 on a non-feedforward target multiplies by its scale; {@code x [batch, nIn]}.
     * Called with {@code forBackprop} true when the backward pass recomputes the forward pass, so an
     * implementation may keep what {@link #adapterDelta} needs (in a {@code BP_WORKING_MEM} array).
     */
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr workspaceMgr) {
    }

    /**
     * Maps {@code delta = dL/dz [batch, nOut]} to the gradient at {@code x'·W + b}, from which the
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
     * {@code epsOut} holds {@code delta·Wᵀ} on entry, the gradient with respect to {@code x'}.
     *
     * @param x the layer input {@code [batch, nIn]} (after the layer's own input dropout)
     * @param delta the result of {@link #adapterDelta}, {@code [batch, nOut]}
     */
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut,
                                   LayerWorkspaceMgr workspaceMgr) {
    }

    /**
     * {@code z = x·W} for the frozen weight (overwriting {@code z [batch, nOut]}). Overridden by
     * layers that hold {@code W} in another form, e.g. 4-bit blocks. Calls {@code Nd4j.gemm}
     * directly: {@code x.mmuli(W, z)} into this 'c'-order {@code z} took 10–15× as long at
     * {@code [2048, 64] · [64, 64…256]} (measured on nd4j-native 1.0.0-M2.1).
     */
    protected void baseForward(INDArray x, INDArray z) {
        Nd4j.gemm(x, layerConf().effectiveWeight().castTo(dataType), z, false, false, 1.0, 0.0);
    }

    /** {@code eps = delta·Wᵀ} for the frozen weight (overwriting {@code eps [batch, nIn]}). */
    protected void baseInputGradient(INDArray delta, INDArray eps) {
        Nd4j.gemm(delta, layerConf().effectiveWeight().castTo(delta.dataType()), eps, false, true, 1.0, 0.0);
    }

    /** Called after each backward pass: drop per-iteration state such as dropout masks. */
    protected void afterBackward() {
    }

    /**
     * Whether the backward pass may reuse the pre-activation {@code z} of the training forward pass
     * instead of recomputing it (DL4J's dense layer recomputes it, one more {@code x·W} per step).
     * Implementations whose {@link #addAdapterOutput} must run again with {@code forBackprop} (IA3
     * keeps what its backward needs there) return false.
     */
    protected boolean forwardReusable() {
        return true;
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        return preOutput(training, false, workspaceMgr);
    }

    /**
     * {@code z} of the last training forward pass (detached; null for an identity activation, whose
     * backward does not need it), and the input it was computed from.
     */
    private INDArray cachedZ;
    private INDArray cachedInput;

    private INDArray preOutput(boolean training, boolean forBackprop, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(forBackprop);
        OmpThreads.apply();
        applyDropOutIfNecessary(training, workspaceMgr);
        FrozenDenseLayer c = layerConf();
        INDArray x = input.castTo(dataType);
        if (x.rank() != 2 || x.size(1) != c.getNIn()) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects input [batch, "
                    + c.getNIn() + "], got " + Arrays.toString(x.shape())
                    + (x.rank() != 2 ? " (rank " + x.rank() + "; a missing preprocessor?)" : ""));
        }
        boolean active = adapterActive();
        INDArray z = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, x.size(0), c.getNOut());
        baseForward(active ? adapterInput(x, training, workspaceMgr) : x, z);
        INDArray b = c.isMerged() && c.mergedBias() != null ? c.mergedBias()
                : c.isTrainableBias() ? params.get(FrozenDenseLayer.BIAS_KEY) : c.frozenBias();
        if (b != null) {
            z.addiRowVector(b.castTo(dataType));
        }
        if (active) {
            addAdapterOutput(x, z, training, forBackprop, workspaceMgr);
        }
        if (maskArray != null && !c.isOutputProjection()) {
            applyMask(z);
        }
        if (training && !forBackprop && forwardReusable()) {
            // an identity activation's backward does not read z: keep only which input it was for
            if (!(c.getActivationFn() instanceof ActivationIdentity)) {
                try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                    cachedZ = z.dup();
                }
            }
            cachedInput = input;
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
            boolean reuse = cachedInput != null && cachedInput == input && forwardReusable();
            INDArray delta;
            if (reuse && cachedZ == null && c.getActivationFn() instanceof ActivationIdentity) {
                delta = epsilon;
            } else {
                INDArray z = reuse && cachedZ != null
                        ? workspaceMgr.dup(ArrayType.BP_WORKING_MEM, cachedZ) : preOutput(true, true, workspaceMgr);
                delta = c.getActivationFn().backprop(z, epsilon).getFirst();
            }
            if (maskArray != null) {
                applyMask(delta);
            }
            INDArray x = input.castTo(dataType);
            boolean active = adapterActive();
            if (active) {
                delta = adapterDelta(x, delta, workspaceMgr);
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
            if (active) {
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
            cachedZ = null;
            cachedInput = null;
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
        cachedZ = null;
        cachedInput = null;
        afterBackward();
    }
}
