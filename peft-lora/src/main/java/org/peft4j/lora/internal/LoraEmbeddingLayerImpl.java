package org.peft4j.lora.internal;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.spi.FrozenEmbeddingLayerImpl;
import org.peft4j.lora.LoraEmbeddingLayer;

/**
 * Implementation of {@link LoraEmbeddingLayer}; the formulas are in its javadoc. Rows of {@code A}
 * are gathered by token index like the frozen table's, and the gradient of {@code A} is a
 * scatter-add over the tokens, summed on the heap in double precision (in token order, so repeated
 * tokens add up deterministically; the array is {@code [vocab, r]}, small next to the table).
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public class LoraEmbeddingLayerImpl extends FrozenEmbeddingLayerImpl {
    private static final long serialVersionUID = 1L;

    private transient Dora dora;

    public LoraEmbeddingLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private LoraEmbeddingLayer lora() {
        return (LoraEmbeddingLayer) layerConf();
    }

    private Dora dora() {
        if (dora == null) {
            dora = new Dora();
        }
        return dora;
    }

    /** {@code H = A[i] [rows, r]}: the rows of {@code A} of this pass's tokens. */
    private INDArray gathered(ArrayType type, LayerWorkspaceMgr mgr) {
        int[] ids = indices();
        INDArray h = mgr.createUninitialized(type, dataType, new long[] {ids.length, lora().rank()}, 'c');
        Nd4j.pullRows(params.get(LoraEmbeddingLayer.LORA_A).castTo(dataType), h, 1, ids);
        return h;
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        LoraEmbeddingLayer c = lora();
        ArrayType type = forBackprop ? ArrayType.BP_WORKING_MEM : ArrayType.FF_WORKING_MEM;
        INDArray h = gathered(type, mgr);
        INDArray b = params.get(LoraEmbeddingLayer.LORA_B);
        if (!c.useDora()) {
            Nd4j.gemm(h, b, z, false, false, c.scaling(), 1.0);
            return;
        }
        dora().start(weightNorm(), params.get(LoraEmbeddingLayer.LORA_M), dataType);
        INDArray u = mgr.createUninitialized(type, dataType, z.shape());
        Nd4j.gemm(h, b, u, false, false, c.scaling(), 0.0);
        INDArray bias = c.effectiveBias(params);
        dora().applyUndropped(z, bias == null ? null : bias.castTo(dataType).reshape(1, c.getNOut()), u, forBackprop,
                mgr);
    }

    /**
     * {@code ‖W + s·ΔW‖} per output feature at the current parameters, {@code [nOut]}: DoRA's norm
     * (the pinned value while pinned).
     */
    INDArray weightNorm() {
        if (dora().pinned() != null) {
            return dora().pinned();
        }
        LoraEmbeddingLayer c = lora();
        INDArray a = params.get(LoraEmbeddingLayer.LORA_A);
        INDArray w = c.frozenWeight().castTo(dataType);
        INDArray p = Nd4j.create(dataType, c.rank(), c.getNOut());
        Nd4j.gemm(a, w, p, true, false, 1.0, 0.0);
        INDArray g = Nd4j.create(dataType, c.rank(), c.rank());
        Nd4j.gemm(a, a, g, true, false, 1.0, 0.0);
        return Dora.norm(dora().weightSquares(c::frozenWeight), p, g, params.get(LoraEmbeddingLayer.LORA_B),
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

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut, LayerWorkspaceMgr mgr) {
        LoraEmbeddingLayer c = lora();
        double s = c.scaling();
        int[] ids = indices();
        INDArray gz = c.useDora() ? dora().scaled(delta) : delta;
        INDArray h = gathered(ArrayType.BP_WORKING_MEM, mgr);
        INDArray gB = gradientViews.get(LoraEmbeddingLayer.LORA_B);
        Nd4j.gemm(h, gz, gB, true, false, s, 0.0);
        INDArray gh = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, new long[] {ids.length, c.rank()}, 'c');
        Nd4j.gemm(gz, params.get(LoraEmbeddingLayer.LORA_B), gh, false, true, s, 0.0);
        int r = c.rank();
        double[] rows = gh.castTo(DataType.DOUBLE).dup('c').data().asDouble();
        double[] acc = new double[Math.toIntExact(c.vocabularySize() * r)];
        for (int t = 0; t < ids.length; t++) {
            int to = ids[t] * r;
            int from = t * r;
            for (int k = 0; k < r; k++) {
                acc[to + k] += rows[from + k];
            }
        }
        INDArray gA = gradientViews.get(LoraEmbeddingLayer.LORA_A);
        gA.assign(Nd4j.create(acc, new long[] {c.vocabularySize(), r}, 'c'));
        g.gradientForVariable().put(LoraEmbeddingLayer.LORA_A, gA);
        g.gradientForVariable().put(LoraEmbeddingLayer.LORA_B, gB);
        if (c.useDora()) {
            INDArray gM = gradientViews.get(LoraEmbeddingLayer.LORA_M);
            dora().magnitudeGradient(delta, gM);
            g.gradientForVariable().put(LoraEmbeddingLayer.LORA_M, gM);
        }
    }

    @Override
    protected void afterBackward() {
        if (dora != null) {
            dora.clear();
        }
    }
}
