package org.peft4j.core.spi;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.activations.impl.ActivationIdentity;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.blocks.internal.DirectGemm;
import org.peft4j.core.blocks.internal.GeluKernel;
import org.peft4j.core.blocks.internal.OmpThreads;
import org.peft4j.core.blocks.internal.RowKernels;

/**
 * Implementation of {@link FrozenDenseLayer}: forward {@code z = x'·W + b (+ adapter)} with
 * {@code x' = }{@link #adapterInput}{@code (x)} (just {@code x} unless a tuner scales the input),
 * backward {@code eps_in = delta·Wᵀ (+ adapter)} with no weight gradient for {@code W}. Tuners
 * extend it through the hooks of {@link FrozenLayerImpl}; the row form is the layer's own
 * {@code x [batch, nIn]}, {@code z [batch, nOut]}. Layers that hold {@code W} in another form
 * (4-bit blocks) override {@link #baseForward} and {@link #baseInputGradient}. This class's own
 * {@code baseForward} writes the bias into {@code z} and lets the product accumulate onto it (one
 * pass over {@code z} fewer); after an override the bias is added to the product.
 *
 * <p>Written by hand because DL4J's dense layer always computes the weight gradient, and its
 * parameters must be in the flat vector; here the frozen weight is a configuration field.
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 */
public class FrozenDenseLayerImpl extends FrozenLayerImpl<FrozenDenseLayer> {

    public FrozenDenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /**
     * The bias {@link #preOutput} hands to this class's own {@link #baseForward} while it calls it
     * (null at any other time): that implementation writes it into {@code z} and clears this field,
     * so that {@code preOutput} adds the bias itself only after an overriding implementation.
     */
    private INDArray biasForBase;

    /**
     * {@code z = x·W} for the frozen weight (overwriting {@code z [batch, nOut]}). Overridden by
     * layers that hold {@code W} in another form, e.g. 4-bit blocks. The product is one
     * {@link DirectGemm} call ({@code cblas_sgemm} on the arrays in place for float32 on the CPU
     * backend, {@code Nd4j.gemm} otherwise), not {@code x.mmuli(W, z)}, which into this 'c'-order
     * {@code z} took 10–15× as long at {@code [2048, 64] · [64, 64…256]} (nd4j-native 1.0.0-M2.1).
     * Why not {@code Nd4j.gemm}: in the MiniLM-sized LoRA q,v training step (8 × 64 tokens, one
     * thread) each frozen {@code [512, 384]·[384, 384]} product took 1.14 ms through
     * {@code cblas_sgemm} against 1.24 ms through {@code Nd4j.gemm}, timed per call in one JVM with
     * the two paths alternating (about 4 ms of a 260 ms step over its 71 frozen products).
     *
     * <p>Called from the forward pass, this implementation also writes the bias ({@code z = x·W + b})
     * and the forward pass then does not add it again; an override that calls
     * {@code super.baseForward} must therefore not treat {@code z} as {@code x·W} afterwards.
     * An override that does not call it gets the bias added after it returns.
     */
    protected void baseForward(INDArray x, INDArray z) {
        // the product accumulates onto the bias rows: no separate pass adding the bias
        double beta = biasInto(z) ? 1.0 : 0.0;
        DirectGemm.gemm(x, layerConf().effectiveWeight().castTo(dataType), z, false, false, 1.0, beta);
    }

    /**
     * For a {@link #baseForward} whose product can accumulate ({@code z += x·W}): writes the
     * forward pass's bias into every row of {@code z} and returns true, after which the pass does
     * not add the bias again and the caller must add its product onto {@code z}. Returns false,
     * leaving {@code z} untouched, outside the forward pass, when the layer has no bias, or when
     * {@code z} is not a contiguous host array; the bias is then added after {@code baseForward}.
     * One write of {@code z} instead of the product's zeroing or overwriting of {@code z} plus a
     * read-and-write pass adding the bias.
     */
    protected final boolean biasInto(INDArray z) {
        if (biasForBase != null && RowKernels.fillRows(z, biasForBase)) {
            biasForBase = null;
            return true;
        }
        return false;
    }

    /**
     * {@code eps = delta·Wᵀ} for the frozen weight (overwriting {@code eps [batch, nIn]}), through
     * {@link DirectGemm} as {@link #baseForward}.
     */
    protected void baseInputGradient(INDArray delta, INDArray eps) {
        DirectGemm.gemm(delta, layerConf().effectiveWeight().castTo(delta.dataType()), eps, false, true, 1.0, 0.0);
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

    /**
     * Final: tuners extend this layer through {@link #baseForward}, {@link #baseInputGradient},
     * {@link #addAdapterOutput} and {@link #forwardReusable}; {@link #activate} does not call this
     * method, so an override would be skipped on the forward pass.
     */
    @Override
    protected final INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        return preOutput(training, false, workspaceMgr);
    }

    /**
     * {@code z} of the last training forward pass (detached; null for an identity activation, whose
     * backward does not need it, and for the erf GELU, whose derivative is kept instead), and the
     * input it was computed from.
     */
    private INDArray cachedZ;
    private INDArray cachedInput;
    /** {@code act'(z)} of the last training forward pass (detached), for the erf GELU on float rows. */
    private INDArray cachedDerivative;
    /** The array {@link #cachedDerivative} was last written into, reused by the next training pass. */
    private INDArray derivativeBuffer;

    /**
     * DL4J's {@code activate} ({@code y = act(preOutput)}, mask applied), except that a training pass
     * with the erf GELU computes the activation and its derivative in one pass and keeps the
     * derivative for the backward pass ({@link GeluKernel#forward(INDArray, INDArray)}).
     */
    @Override
    public final INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        INDArray z = preOutput(training, false, true, workspaceMgr);
        IActivation act = layerConf().getActivationFn();
        INDArray y;
        if (training && forwardReusable() && cachedInput == input && cachedZ == null && GeluKernel.fusable(act, z)) {
            INDArray d = GeluKernel.derivativeArray(z, derivativeBuffer);
            derivativeBuffer = d;
            GeluKernel.forward(z, d);
            cachedDerivative = d;
            y = z;
        } else {
            y = act.getActivation(z, training);
        }
        if (maskArray != null) {
            applyMask(y);
        }
        return y;
    }

    private INDArray preOutput(boolean training, boolean forBackprop, LayerWorkspaceMgr workspaceMgr) {
        return preOutput(training, forBackprop, false, workspaceMgr);
    }

    /** @param fromActivate whether {@link #activate} applies the activation next (and may keep its derivative) */
    private INDArray preOutput(boolean training, boolean forBackprop, boolean fromActivate,
                               LayerWorkspaceMgr workspaceMgr) {
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
        INDArray b = c.effectiveBias(params);
        INDArray xw = active ? adapterInput(x, training, workspaceMgr) : x;
        biasForBase = b == null ? null : b.castTo(dataType);
        INDArray biasLeft;
        try {
            baseForward(xw, z);
        } finally {
            biasLeft = biasForBase;
            biasForBase = null;
        }
        if (biasLeft != null) {
            z.addiRowVector(biasLeft);
        }
        if (active) {
            addAdapterOutput(x, z, training, forBackprop, workspaceMgr);
        }
        if (maskArray != null && !c.isOutputProjection()) {
            applyMask(z);
        }
        if (training && !forBackprop) {
            cachedZ = null;
            cachedDerivative = null;
        }
        if (training && !forBackprop && forwardReusable()) {
            // an identity activation's backward does not read z, and activate keeps the GELU's
            // derivative instead: keep only which input it was for
            if (!(c.getActivationFn() instanceof ActivationIdentity)
                    && !(fromActivate && GeluKernel.fusable(c.getActivationFn(), z))) {
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
            if (reuse && cachedDerivative != null) {
                // the cached derivative is dropped after this pass, so it may hold the product
                delta = cachedDerivative.muli(epsilon.castTo(cachedDerivative.dataType()));
            } else if (reuse && cachedZ == null && c.getActivationFn() instanceof ActivationIdentity) {
                delta = epsilon;
            } else {
                // the cached z is dropped after this pass, so the activation may overwrite it in place
                INDArray z = reuse && cachedZ != null ? cachedZ : preOutput(true, true, workspaceMgr);
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
            biasGradient(delta, g);
            INDArray epsNext = null;
            if (c.isInputGradient()) {
                // in the input's order: 'f' after DL4J's RnnToFeedForwardPreProcessor (whose backward
                // then needs one copy fewer), 'c' after a layer that writes 'c' rows, so that
                // element-wise work on it (the activation's backward below) meets one order
                epsNext = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, delta.dataType(),
                        new long[] {delta.size(0), c.getNIn()}, x.ordering() == 'c' ? 'c' : 'f');
                baseInputGradient(delta, epsNext);
            }
            if (active) {
                adapterBackward(x, delta, g, epsNext, workspaceMgr);
            } else {
                zeroOtherGradients(g);
            }
            if (epsNext != null) {
                epsNext = backpropDropOutIfPresent(epsNext);
            }
            return new Pair<>(g, epsNext);
        } finally {
            cachedZ = null;
            cachedInput = null;
            cachedDerivative = null;
            afterBackward();
        }
    }

    @Override
    public void clear() {
        super.clear();
        cachedZ = null;
        cachedInput = null;
        cachedDerivative = null;
    }
}
