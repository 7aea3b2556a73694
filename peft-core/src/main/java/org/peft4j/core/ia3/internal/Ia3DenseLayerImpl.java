package org.peft4j.core.ia3.internal;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.ia3.Ia3DenseLayer;
import org.peft4j.core.spi.FrozenDenseLayerImpl;

/**
 * Implementation of {@link Ia3DenseLayer}; the formulas are in its javadoc. Hand-written on the
 * frozen dense layer's hooks: no DL4J layer scales a frozen weight's input or output by a trainable
 * vector.
 *
 * <p>For output scaling the backward pass needs {@code u = x·W + b} before scaling; the forward
 * pass that DL4J repeats inside backprop keeps a copy in the backprop working memory.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public final class Ia3DenseLayerImpl extends FrozenDenseLayerImpl {
    private static final long serialVersionUID = 1L;

    /** {@code x·W + b} of the current backward pass (output scaling only). */
    private INDArray unscaled;

    public Ia3DenseLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private boolean feedforward() {
        return ((Ia3DenseLayer) layerConf()).isFeedforward();
    }

    private INDArray scale() {
        return params.get(Ia3DenseLayer.IA3_KEY);
    }

    @Override
    protected boolean forwardReusable() {
        return false;
    }

    @Override
    protected INDArray adapterInput(INDArray x, boolean training, LayerWorkspaceMgr mgr) {
        if (!feedforward()) {
            return x;
        }
        INDArray xs = mgr.createUninitialized(ArrayType.FF_WORKING_MEM, dataType, x.shape());
        return xs.assign(x).muliRowVector(scale());
    }

    @Override
    protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                    LayerWorkspaceMgr mgr) {
        if (feedforward()) {
            return;
        }
        if (forBackprop) {
            unscaled = mgr.dup(ArrayType.BP_WORKING_MEM, z);
        }
        z.muliRowVector(scale());
    }

    @Override
    protected INDArray adapterDelta(INDArray x, INDArray delta, LayerWorkspaceMgr mgr) {
        if (feedforward()) {
            return delta;
        }
        INDArray gl = gradientViews.get(Ia3DenseLayer.IA3_KEY);
        unscaled.muli(delta).sum(gl, 0);
        return delta.muliRowVector(scale());
    }

    @Override
    protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut, LayerWorkspaceMgr mgr) {
        INDArray gl = gradientViews.get(Ia3DenseLayer.IA3_KEY);
        if (feedforward()) {
            INDArray gx = epsOut;
            if (gx == null) {
                INDArray w = layerConf().effectiveWeight().castTo(dataType);
                gx = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, new long[] {delta.size(0), w.size(0)}, 'f');
                Nd4j.gemm(delta, w, gx, false, true, 1.0, 0.0);
            }
            INDArray t = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, x.shape());
            x.mul(gx, t).sum(gl, 0);
            if (epsOut != null) {
                epsOut.muliRowVector(scale());
            }
        }
        g.gradientForVariable().put(Ia3DenseLayer.IA3_KEY, gl);
    }

    @Override
    protected void afterBackward() {
        unscaled = null;
    }
}
