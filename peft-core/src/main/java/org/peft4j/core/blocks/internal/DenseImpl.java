package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.BaseLayer;
import org.deeplearning4j.nn.params.DefaultParamInitializer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.activations.impl.ActivationIdentity;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Implementation of {@link org.peft4j.core.blocks.Dense}:
 * <pre>
 *   forward   z = x·W + b   y = act(z)          (mask applied to y)
 *   backward  δ = act'(z) ⊙ dy (mask applied)   dW = xᵀ·δ   db = Σ_rows δ   dx = δ·Wᵀ
 * </pre>
 * {@code x [rows, nIn]}, {@code W [nIn, nOut]}. The products are written straight into their
 * outputs ({@code y} in {@code 'c'} order, {@code dx} in the order of {@code x}, {@code dW} into
 * its gradient view); the bias is written into the rows of {@code z} first and the product
 * accumulated onto it ({@link RowKernels#fillRows}). A training forward pass keeps {@code z}
 * (detached) when the activation's backward needs it, so the backward pass on the same input does
 * not multiply again; with the erf GELU on float rows it keeps {@code act'(z)} instead, computed in
 * the same pass as the activation ({@link GeluKernel#forward(INDArray, INDArray)}).
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 */
public final class DenseImpl extends BaseLayer<DenseLayer> {
    private static final long serialVersionUID = 1L;

    /**
     * {@code z} of the last training forward pass (detached; null for an identity activation and for
     * the erf GELU, whose derivative {@code act'(z)} is kept instead) and its input.
     */
    private INDArray cachedZ;
    private INDArray cachedDerivative;
    /** The array {@link #cachedDerivative} was last written into, reused by the next training pass. */
    private INDArray derivativeBuffer;
    private INDArray cachedInput;

    public DenseImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private boolean identity() {
        return layerConf().getActivationFn() instanceof ActivationIdentity;
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        return preOutput(training, false, workspaceMgr);
    }

    private INDArray preOutput(boolean training, boolean forBackprop, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(forBackprop);
        OmpThreads.apply();
        applyDropOutIfNecessary(training, workspaceMgr);
        DenseLayer c = layerConf();
        INDArray x = input.castTo(dataType);
        if (x.rank() != 2 || x.size(1) != c.getNIn()) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects input [rows, " + c.getNIn()
                    + "], got " + Arrays.toString(x.shape())
                    + (x.rank() != 2 ? " (rank " + x.rank() + "; a missing preprocessor?)" : ""));
        }
        INDArray w = getParamWithNoise(DefaultParamInitializer.WEIGHT_KEY, training, workspaceMgr);
        INDArray z = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, new long[] {x.size(0), c.getNOut()},
                'c');
        INDArray b = c.hasBias() ? getParamWithNoise(DefaultParamInitializer.BIAS_KEY, training, workspaceMgr)
                .castTo(dataType) : null;
        // with the bias written into z first, the product accumulates onto it (beta 1): no pass adding it
        boolean biasFilled = b != null && RowKernels.fillRows(z, b);
        DirectGemm.gemm(x, w.castTo(dataType), z, false, false, 1.0, biasFilled ? 1.0 : 0.0);
        if (b != null && !biasFilled) {
            z.addiRowVector(b);
        }
        return z;
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        INDArray z = preOutput(training, false, workspaceMgr);
        IActivation act = layerConf().getActivationFn();
        cachedZ = null;
        cachedDerivative = null;
        cachedInput = null;
        INDArray y;
        if (training && GeluKernel.fusable(act, z)) {
            // the erf GELU and its derivative in one pass; the backward pass multiplies by the derivative
            cachedDerivative = GeluKernel.derivativeArray(z, derivativeBuffer);
            derivativeBuffer = cachedDerivative;
            GeluKernel.forward(z, cachedDerivative);
            y = z;
        } else {
            if (training && !identity()) {
                try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                    cachedZ = z.dup();
                }
            }
            y = act.getActivation(z, training);
        }
        if (training) {
            cachedInput = input;
        }
        if (maskArray != null) {
            applyMask(y);
        }
        return workspaceMgr.leverageTo(ArrayType.ACTIVATIONS, y);
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(true);
        OmpThreads.apply();
        try {
            boolean reuse = cachedInput != null && cachedInput == input;
            INDArray delta;
            if (reuse && cachedDerivative != null) {
                // the cached derivative is dropped after this pass, so it may hold the product
                delta = cachedDerivative.muli(epsilon.castTo(dataType));
            } else if (reuse && identity()) {
                delta = epsilon.castTo(dataType);
            } else {
                // the cached z is dropped after this pass, so the activation may overwrite it in place
                INDArray z = reuse ? cachedZ : preOutput(true, true, workspaceMgr);
                delta = layerConf().getActivationFn().backprop(z, epsilon.castTo(dataType)).getFirst();
            }
            if (maskArray != null) {
                applyMask(delta);
            }
            INDArray x = input.castTo(dataType);
            Gradient g = new DefaultGradient();
            INDArray gw = gradientViews.get(DefaultParamInitializer.WEIGHT_KEY);
            DirectGemm.gemm(x, delta, gw, true, false, 1.0, 0.0);
            g.gradientForVariable().put(DefaultParamInitializer.WEIGHT_KEY, gw);
            if (layerConf().hasBias()) {
                INDArray gb = gradientViews.get(DefaultParamInitializer.BIAS_KEY);
                if (!RowKernels.columnSums(delta, gb)) {
                    delta.sum(gb, 0);
                }
                g.gradientForVariable().put(DefaultParamInitializer.BIAS_KEY, gb);
            }
            INDArray w = getParamWithNoise(DefaultParamInitializer.WEIGHT_KEY, true, workspaceMgr).castTo(dataType);
            INDArray eps = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, dataType,
                    new long[] {delta.size(0), layerConf().getNIn()}, x.ordering() == 'c' ? 'c' : 'f');
            DirectGemm.gemm(delta, w, eps, false, true, 1.0, 0.0);
            weightNoiseParams.clear();
            return new Pair<>(g, backpropDropOutIfPresent(eps));
        } finally {
            cachedZ = null;
            cachedDerivative = null;
            cachedInput = null;
        }
    }

    /** DL4J's mask; a per-row mask of zeros and ones on {@code 'c'} rows zeroes the masked rows ({@link RowKernels}). */
    @Override
    protected void applyMask(INDArray to) {
        if (!RowKernels.zeroMaskedRows(to, maskArray)) {
            super.applyMask(to);
        }
    }

    @Override
    public boolean isPretrainLayer() {
        return false;
    }

    @Override
    public void clear() {
        super.clear();
        cachedZ = null;
        cachedDerivative = null;
        cachedInput = null;
    }
}
