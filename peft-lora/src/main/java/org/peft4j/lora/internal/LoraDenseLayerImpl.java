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
import org.peft4j.core.spi.AdapterGemm;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.LoraDenseLayer;

/**
 * Implementation of {@link LoraDenseLayer}; the formulas are in its javadoc. Hand-written because
 * DL4J has no layer whose weight is frozen outside the parameter vector with a trainable low-rank
 * branch, and SameDiff layers return doubled gradients in 1.0.0-M2.1.
 *
 * <p>The LoRA branch's own products go through {@link AdapterGemm} (direct BLAS calls for float32).
 * Every training forward pass draws a new LoRA dropout mask and keeps it (outside workspaces)
 * for the matching backward pass, which may recompute the forward pass and must see the same mask.
 * The base products of DoRA ({@code x·W}, {@code δ·Wᵀ}, {@code Aᵀ·W}) go through
 * {@link #baseForward} and {@link #baseInputGradient}, so a base held in another form (QLoRA's 4-bit
 * blocks) serves DoRA unchanged.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class LoraDenseLayerImpl extends FrozenDenseLayerImpl {
    private static final long serialVersionUID = 1L;

    private INDArray dropoutMask;
    private boolean maskPinned;
    private transient Dora dora;
    /** dL/dz of the current DoRA backward pass (before the scale), between adapterDelta and adapterBackward. */
    private INDArray doraDelta;
    /**
     * {@code h = d(x)·A} of the last training forward pass (detached, in {@link #branchBuffer}) and the
     * input it was computed from: the backward pass reuses it instead of computing the product
     * again while {@link #input} is still that array. Null when the forward pass did not keep it.
     */
    private INDArray cachedBranch;
    private INDArray cachedBranchInput;
    /** The detached array {@link #cachedBranch} was last written into, reused by the next training pass. */
    private INDArray branchBuffer;

    public LoraDenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private LoraDenseLayer lora() {
        return (LoraDenseLayer) layerConf();
    }

    private Dora dora() {
        if (dora == null) {
            dora = new Dora();
        }
        return dora;
    }

    /**
     * The dropped-out input of the LoRA branch: {@code x ⊙ mask} in training with dropout, else
     * {@code x}. With {@code fresh} (a training forward pass) a new mask is drawn; otherwise (the
     * backward pass, or its recomputed forward) the last one is reused.
     */
    private INDArray branchInput(INDArray x, boolean training, boolean fresh, ArrayType type, LayerWorkspaceMgr mgr) {
        double p = lora().loraDropout();
        if (!training || p == 0.0) {
            return x;
        }
        if ((fresh && !maskPinned) || dropoutMask == null || !Arrays.equals(dropoutMask.shape(), x.shape())) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                INDArray m = Nd4j.createUninitialized(x.dataType(), x.shape());
                Nd4j.getExecutioner().exec(new BernoulliDistribution(m, 1.0 - p));
                dropoutMask = m.muli(1.0 / (1.0 - p));
            }
        }
        INDArray xd = mgr.createUninitialized(type, x.dataType(), x.shape());
        return x.mul(dropoutMask, xd);
    }

    /**
     * A detached {@code [rows, rank]} array for {@link #cachedBranch}: the one of the previous step
     * when it fits (its backward pass is done), else a new one outside every workspace, so that it
     * outlives the forward pass's working memory until the backward pass.
     */
    private INDArray branchArray(long rows, long rank) {
        INDArray h = branchBuffer;
        if (h == null || h.dataType() != dataType || h.size(0) != rows || h.size(1) != rank) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                h = Nd4j.createUninitialized(dataType, new long[] {rows, rank}, 'c');
            }
            branchBuffer = h;
        }
        return h;
    }

    /** The backward pass recomputes forward for DoRA, which keeps {@code x·V} there for {@code dL/dm}. */
    @Override
    protected boolean forwardReusable() {
        return !lora().useDora();
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        LoraDenseLayer c = lora();
        ArrayType type = forBackprop ? ArrayType.BP_WORKING_MEM : ArrayType.FF_WORKING_MEM;
        INDArray xd = branchInput(x, training, training && !forBackprop, type, mgr);
        INDArray a = params.get(LoraDenseLayer.LORA_A);
        INDArray b = params.get(LoraDenseLayer.LORA_B);
        if (!c.useDora()) {
            if (SmallBatchBranch.applies(xd, a, b, z)) {
                SmallBatchBranch.addInto(xd, a, b, c.scaling(), z);
                return;
            }
            boolean keep = training && !forBackprop;
            INDArray h = keep ? branchArray(x.size(0), c.rank())
                    : mgr.createUninitialized(type, dataType, x.size(0), c.rank());
            AdapterGemm.gemm(xd, a, h, false, false, 1.0, 0.0);
            AdapterGemm.gemm(h, b, z, false, false, c.scaling(), 1.0);
            if (keep) {
                cachedBranch = h;
                cachedBranchInput = input;
            }
            return;
        }
        dora().start(weightNorm(), params.get(LoraDenseLayer.LORA_M), dataType);
        INDArray h = mgr.createUninitialized(type, dataType, x.size(0), c.rank());
        Nd4j.gemm(xd, a, h, false, false, 1.0, 0.0);
        INDArray u = mgr.createUninitialized(type, dataType, z.shape());
        Nd4j.gemm(h, b, u, false, false, c.scaling(), 0.0);
        if (xd == x) {
            INDArray bias = c.effectiveBias(params);
            dora().applyUndropped(z, bias == null ? null : bias.castTo(dataType).reshape(1, c.getNOut()), u, forBackprop,
                    mgr);
        } else {
            INDArray xdW = mgr.createUninitialized(type, dataType, z.shape());
            baseForward(xd, xdW);
            dora().applyDropped(z, xdW, u, forBackprop, mgr);
        }
    }

    /**
     * {@code n_j = ‖(W + s·A·B)[:, j]‖} at the current parameters (the pinned norm while pinned),
     * {@code [nOut]}.
     */
    /**
     * {@code ‖W + s·ΔW‖} per output feature at the current parameters, {@code [nOut]}: DoRA's norm
     * (the pinned value while pinned).
     */
    INDArray weightNorm() {
        if (dora().pinned() != null) {
            return dora().pinned();
        }
        LoraDenseLayer c = lora();
        INDArray a = params.get(LoraDenseLayer.LORA_A);
        INDArray at = a.transpose().dup('c');
        INDArray p = Nd4j.create(dataType, c.rank(), c.getNOut());
        baseForward(at, p);
        return Dora.norm(dora().weightSquares(c::frozenWeight), p, at.mmul(a), params.get(LoraDenseLayer.LORA_B),
                c.scaling(), dataType);
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
            dropoutMask = null;
        }
    }

    /**
     * DoRA without dropout: the frozen weight's part of the input gradient and the bias gradient
     * are taken from {@code δ ⊙ c} (the bias gradient is corrected in {@link #adapterBackward});
     * with dropout from {@code δ}, as the base term {@code x·W} is not rescaled there.
     */
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
        LoraDenseLayer c = lora();
        double s = c.scaling();
        long batch = x.size(0);
        boolean useDora = c.useDora();
        boolean dropped = c.loraDropout() > 0;
        INDArray a = params.get(LoraDenseLayer.LORA_A);
        INDArray b = params.get(LoraDenseLayer.LORA_B);
        INDArray gA = gradientViews.get(LoraDenseLayer.LORA_A);
        INDArray gB = gradientViews.get(LoraDenseLayer.LORA_B);
        // the delta the LoRA factors see: delta, or for DoRA delta ⊙ c
        INDArray gz = !useDora ? delta : dropped ? dora().scaled(doraDelta) : delta;

        INDArray xd = branchInput(x, true, false, ArrayType.BP_WORKING_MEM, mgr);
        INDArray h;
        if (!useDora && cachedBranch != null && cachedBranchInput == input) {
            // d(x)·A of this step's forward pass: same input, same parameters, same dropout mask
            h = cachedBranch;
        } else {
            h = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, batch, c.rank());
            AdapterGemm.gemm(xd, a, h, false, false, 1.0, 0.0);
        }
        AdapterGemm.gemm(h, gz, gB, true, false, s, 0.0);
        INDArray gh = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, batch, c.rank());
        AdapterGemm.gemm(gz, b, gh, false, true, s, 0.0);
        AdapterGemm.gemm(xd, gh, gA, true, false, 1.0, 0.0);
        g.gradientForVariable().put(LoraDenseLayer.LORA_A, gA);
        g.gradientForVariable().put(LoraDenseLayer.LORA_B, gB);
        if (useDora) {
            INDArray gM = gradientViews.get(LoraDenseLayer.LORA_M);
            dora().magnitudeGradient(doraDelta, gM);
            g.gradientForVariable().put(LoraDenseLayer.LORA_M, gM);
            if (!dropped && c.isTrainableBias()) {
                doraDelta.sum(gradientViews.get(FrozenBaseLayer.BIAS_KEY), 0);
            }
        }

        if (epsOut != null) {
            if (dropoutMask == null) {
                AdapterGemm.gemm(gh, a, epsOut, false, true, 1.0, 1.0);
            } else {
                INDArray t = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, batch, c.getNIn());
                if (useDora) {
                    // the dropped input also feeds (c − 1) ⊙ (d(x)·W)
                    baseInputGradient(dora().scaledMinusOne(doraDelta), t);
                    AdapterGemm.gemm(gh, a, t, false, true, 1.0, 1.0);
                } else {
                    AdapterGemm.gemm(gh, a, t, false, true, 1.0, 0.0);
                }
                epsOut.addi(t.muli(dropoutMask));
            }
        }
    }

    @Override
    protected void afterBackward() {
        if (!maskPinned) {
            dropoutMask = null;
        }
        doraDelta = null;
        cachedBranch = null;
        cachedBranchInput = null;
        dora().clear();
    }
}
