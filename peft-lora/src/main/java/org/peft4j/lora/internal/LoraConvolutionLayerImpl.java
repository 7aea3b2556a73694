package org.peft4j.lora.internal;

import java.util.Arrays;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.random.impl.BernoulliDistribution;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;
import org.peft4j.lora.LoraConvolutionLayer;

/**
 * Implementation of {@link LoraConvolutionLayer}; the formulas are in its javadoc. It works on the
 * im2col rows the frozen convolution hands its hooks, where LoRA's convolution {@code A} (the
 * layer's geometry) and 1×1 convolution {@code B} are two matrix products.
 *
 * <p>The dropout mask is drawn on the (padded) input {@code [batch, nIn, H, W]} and taken to the
 * rows by the same im2col as the input, so an input value is dropped in every window or in none;
 * it is kept (outside workspaces) for the backward pass, which recomputes the forward pass.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class LoraConvolutionLayerImpl extends FrozenConvolutionLayerImpl {
    private static final long serialVersionUID = 1L;

    private INDArray inputMask;
    private boolean maskPinned;
    private transient Dora dora;
    private INDArray doraDelta;

    public LoraConvolutionLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private LoraConvolutionLayer lora() {
        return (LoraConvolutionLayer) layerConf();
    }

    private Dora dora() {
        if (dora == null) {
            dora = new Dora();
        }
        return dora;
    }

    /**
     * The dropout mask of this pass as rows {@code [rows, nIn·kH·kW]}, or null without dropout. With
     * {@code fresh} (a training forward pass) a new input mask is drawn; otherwise the last one is reused.
     */
    private INDArray columnMask(boolean training, boolean fresh, ArrayType type, LayerWorkspaceMgr mgr) {
        double p = lora().loraDropout();
        if (!training || p == 0.0) {
            return null;
        }
        Geometry g = geometry();
        long[] shape = {g.batch(), g.channels(), g.inH(), g.inW()};
        if ((fresh && !maskPinned) || inputMask == null || !Arrays.equals(inputMask.shape(), shape)) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                INDArray m = Nd4j.createUninitialized(dataType, shape);
                Nd4j.getExecutioner().exec(new BernoulliDistribution(m, 1.0 - p));
                inputMask = m.muli(1.0 / (1.0 - p));
            }
        }
        return im2col(inputMask, g, type, mgr);
    }

    /** The frozen kernel as {@code [nOut, nIn·kH·kW]}. */
    private INDArray kernelRows() {
        INDArray w = lora().frozenWeight().castTo(dataType);
        return w.reshape('c', w.size(0), w.length() / w.size(0));
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        LoraConvolutionLayer c = lora();
        ArrayType type = forBackprop ? ArrayType.BP_WORKING_MEM : ArrayType.FF_WORKING_MEM;
        INDArray mask = columnMask(training, training && !forBackprop, type, mgr);
        INDArray xd = mask == null ? x : x.mul(mask);
        INDArray a = params.get(LoraConvolutionLayer.LORA_A);
        INDArray b = params.get(LoraConvolutionLayer.LORA_B);
        INDArray h = mgr.createUninitialized(type, dataType, x.size(0), c.rank());
        Nd4j.gemm(xd, a, h, false, true, 1.0, 0.0);
        if (!c.useDora()) {
            Nd4j.gemm(h, b, z, false, true, c.scaling(), 1.0);
            return;
        }
        dora().start(weightNorm(), params.get(LoraConvolutionLayer.LORA_M), dataType);
        INDArray u = mgr.createUninitialized(type, dataType, z.shape());
        Nd4j.gemm(h, b, u, false, true, c.scaling(), 0.0);
        if (mask == null) {
            INDArray bias = c.effectiveBias(params);
            dora().applyUndropped(z, bias == null ? null : bias.castTo(dataType).reshape(1, c.getNOut()), u, forBackprop,
                    mgr);
        } else {
            INDArray xdW = mgr.createUninitialized(type, dataType, z.shape());
            Nd4j.gemm(xd, kernelRows(), xdW, false, true, 1.0, 0.0);
            dora().applyDropped(z, xdW, u, forBackprop, mgr);
        }
    }

    /**
     * {@code ‖W + s·ΔW‖} per output feature at the current parameters, {@code [nOut]}: DoRA's norm
     * (the pinned value while pinned).
     */
    INDArray weightNorm() {
        if (dora().pinned() != null) {
            return dora().pinned();
        }
        LoraConvolutionLayer c = lora();
        INDArray a = params.get(LoraConvolutionLayer.LORA_A);
        INDArray w = kernelRows();
        INDArray p = Nd4j.create(dataType, c.rank(), c.getNOut());
        Nd4j.gemm(a, w, p, false, true, 1.0, 0.0);
        INDArray g = Nd4j.create(dataType, c.rank(), c.rank());
        Nd4j.gemm(a, a, g, false, true, 1.0, 0.0);
        return Dora.norm(dora().weightSquares(() -> kernelRows().transpose()), p, g,
                params.get(LoraConvolutionLayer.LORA_B).transpose(), c.scaling(), dataType);
    }

    /**
     * Test hook: pins DoRA's norm at its value for the current parameters (true), or lets every
     * pass compute it again (false). Finite differences of the factors would otherwise move the
     * norm, which the detached backward pass treats as a constant.
     */
    void pinWeightNorm(boolean pin) {
        dora().pin(null);
        if (pin) {
            dora().pin(weightNorm());
        }
    }

    /**
     * Test hook: keeps the LoRA dropout mask of the next training forward pass for every later one
     * (true), so that a training forward pass is a deterministic function of the parameters, or
     * draws a new mask per training forward pass again (false).
     */
    void pinDropoutMask(boolean pin) {
        maskPinned = pin;
        if (!pin) {
            inputMask = null;
        }
    }

    /** As {@link LoraDenseLayerImpl}: DoRA without dropout lets the frozen kernel's input gradient see {@code δ ⊙ c}. */
    @Override
    protected INDArray adapterDelta(INDArray x, INDArray delta, LayerWorkspaceMgr mgr) {
        if (!lora().useDora()) {
            return delta;
        }
        doraDelta = delta;
        return lora().loraDropout() > 0 ? delta : dora().scaled(delta);
    }

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut, LayerWorkspaceMgr mgr) {
        LoraConvolutionLayer c = lora();
        double s = c.scaling();
        long rows = x.size(0);
        boolean useDora = c.useDora();
        INDArray mask = columnMask(true, false, ArrayType.BP_WORKING_MEM, mgr);
        INDArray gz = !useDora ? delta : mask != null ? dora().scaled(doraDelta) : delta;
        INDArray xd = mask == null ? x : x.mul(mask);
        INDArray a = params.get(LoraConvolutionLayer.LORA_A);
        INDArray b = params.get(LoraConvolutionLayer.LORA_B);
        INDArray gA = gradientViews.get(LoraConvolutionLayer.LORA_A);
        INDArray gB = gradientViews.get(LoraConvolutionLayer.LORA_B);

        INDArray h = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, rows, c.rank());
        Nd4j.gemm(xd, a, h, false, true, 1.0, 0.0);
        Nd4j.gemm(gz, h, gB, true, false, s, 0.0);
        INDArray gh = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, rows, c.rank());
        Nd4j.gemm(gz, b, gh, false, false, s, 0.0);
        Nd4j.gemm(gh, xd, gA, true, false, 1.0, 0.0);
        g.gradientForVariable().put(LoraConvolutionLayer.LORA_A, gA);
        g.gradientForVariable().put(LoraConvolutionLayer.LORA_B, gB);
        if (useDora) {
            INDArray gM = gradientViews.get(LoraConvolutionLayer.LORA_M);
            dora().magnitudeGradient(doraDelta, gM);
            g.gradientForVariable().put(LoraConvolutionLayer.LORA_M, gM);
            if (mask == null && c.isTrainableBias()) {
                doraDelta.sum(gradientViews.get(FrozenBaseLayer.BIAS_KEY), 0);
            }
        }

        if (epsOut != null) {
            if (mask == null) {
                Nd4j.gemm(gh, a, epsOut, false, false, 1.0, 1.0);
            } else {
                INDArray t = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, epsOut.shape());
                if (useDora) {
                    // the dropped input also feeds (c − 1) ⊙ (d(X)·W2d)
                    Nd4j.gemm(dora().scaledMinusOne(doraDelta), kernelRows(), t, false, false, 1.0, 0.0);
                    Nd4j.gemm(gh, a, t, false, false, 1.0, 1.0);
                } else {
                    Nd4j.gemm(gh, a, t, false, false, 1.0, 0.0);
                }
                epsOut.addi(t.muli(mask));
            }
        }
    }

    @Override
    protected void afterBackward() {
        if (!maskPinned) {
            inputMask = null;
        }
        doraDelta = null;
        if (dora != null) {
            dora.clear();
        }
    }
}
