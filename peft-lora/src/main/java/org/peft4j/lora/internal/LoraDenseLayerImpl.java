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
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.LoraDenseLayer;

/**
 * Implementation of {@link LoraDenseLayer}; the formulas are in its javadoc. Hand-written because
 * DL4J has no layer whose weight is frozen outside the parameter vector with a trainable low-rank
 * branch, and SameDiff layers return doubled gradients in 1.0.0-M2.1.
 *
 * <p>Every training forward pass draws a new LoRA dropout mask and keeps it (outside workspaces)
 * for the matching backward pass, which may recompute the forward pass and must see the same mask.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class LoraDenseLayerImpl extends FrozenDenseLayerImpl {
    private static final long serialVersionUID = 1L;

    private INDArray dropoutMask;

    public LoraDenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private LoraDenseLayer lora() {
        return (LoraDenseLayer) layerConf();
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
        if (fresh || dropoutMask == null || !Arrays.equals(dropoutMask.shape(), x.shape())) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                INDArray m = Nd4j.createUninitialized(x.dataType(), x.shape());
                Nd4j.getExecutioner().exec(new BernoulliDistribution(m, 1.0 - p));
                dropoutMask = m.muli(1.0 / (1.0 - p));
            }
        }
        INDArray xd = mgr.createUninitialized(type, x.dataType(), x.shape());
        return x.mul(dropoutMask, xd);
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        LoraDenseLayer c = lora();
        INDArray xd = branchInput(x, training, training && !forBackprop, ArrayType.FF_WORKING_MEM, mgr);
        INDArray a = params.get(LoraDenseLayer.LORA_A);
        INDArray b = params.get(LoraDenseLayer.LORA_B);
        if (SmallBatchBranch.applies(xd, a, b, z)) {
            SmallBatchBranch.addInto(xd, a, b, c.scaling(), z);
            return;
        }
        INDArray h = mgr.createUninitialized(ArrayType.FF_WORKING_MEM, dataType, x.size(0), c.rank());
        Nd4j.gemm(xd, a, h, false, false, 1.0, 0.0);
        Nd4j.gemm(h, b, z, false, false, c.scaling(), 1.0);
    }

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut, LayerWorkspaceMgr mgr) {
        LoraDenseLayer c = lora();
        double s = c.scaling();
        long batch = x.size(0);
        INDArray a = params.get(LoraDenseLayer.LORA_A);
        INDArray b = params.get(LoraDenseLayer.LORA_B);
        INDArray gA = gradientViews.get(LoraDenseLayer.LORA_A);
        INDArray gB = gradientViews.get(LoraDenseLayer.LORA_B);

        INDArray xd = branchInput(x, true, false, ArrayType.BP_WORKING_MEM, mgr);
        INDArray h = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, batch, c.rank());
        Nd4j.gemm(xd, a, h, false, false, 1.0, 0.0);
        Nd4j.gemm(h, delta, gB, true, false, s, 0.0);
        INDArray gh = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, batch, c.rank());
        Nd4j.gemm(delta, b, gh, false, true, s, 0.0);
        Nd4j.gemm(xd, gh, gA, true, false, 1.0, 0.0);
        g.gradientForVariable().put(LoraDenseLayer.LORA_A, gA);
        g.gradientForVariable().put(LoraDenseLayer.LORA_B, gB);

        if (epsOut != null) {
            if (dropoutMask == null) {
                Nd4j.gemm(gh, a, epsOut, false, true, 1.0, 1.0);
            } else {
                INDArray t = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, batch, c.getNIn());
                Nd4j.gemm(gh, a, t, false, true, 1.0, 0.0);
                epsOut.addi(t.muli(dropoutMask));
            }
        }
    }

    @Override
    protected void afterBackward() {
        dropoutMask = null;
    }
}
