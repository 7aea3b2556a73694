package org.peft4j.core.adapter.internal;

import java.util.Arrays;
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
import org.peft4j.core.adapter.BottleneckAdapterLayer;

/**
 * Implementation of {@link BottleneckAdapterLayer}; the formulas are in its javadoc. Hand-written
 * because DL4J has no residual bottleneck layer, and its SameDiff layers return doubled gradients
 * in 1.0.0-M2.1. Sequence input {@code [batch, d, time]} is processed as rows
 * {@code [batch·time, d]} (row {@code i·time + t}), the layout of a {@code [batch, time]} mask
 * flattened in C order.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J layer.
 */
public final class BottleneckAdapterLayerImpl extends BaseLayer<BottleneckAdapterLayer> {
    private static final long serialVersionUID = 1L;

    public BottleneckAdapterLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** {@code a} as rows {@code [N, d]} (a copy in {@code type} memory for sequences). */
    private INDArray rows(INDArray a, ArrayType type, LayerWorkspaceMgr mgr) {
        BottleneckAdapterLayer c = layerConf();
        boolean ok = (a.rank() == 2 || a.rank() == 3) && a.size(1) == c.getNIn();
        if (!ok) {
            throw new DL4JInvalidInputException("adapter \"" + c.getLayerName() + "\" expects [batch, " + c.getNIn()
                    + "] or [batch, " + c.getNIn() + ", time], got " + Arrays.toString(a.shape()));
        }
        if (a.rank() == 2) {
            return a;
        }
        INDArray r = mgr.createUninitialized(type, a.dataType(), new long[] {a.size(0), a.size(2), a.size(1)}, 'c');
        r.assign(a.permute(0, 2, 1));
        return r.reshape('c', a.size(0) * a.size(2), a.size(1));
    }

    /** Rows {@code [N, d]} back into the shape of {@code like}, in {@code type} memory. */
    private static INDArray unrows(INDArray r, INDArray like, ArrayType type, LayerWorkspaceMgr mgr) {
        if (like.rank() == 2) {
            return r;
        }
        INDArray out = mgr.createUninitialized(type, r.dataType(), like.shape(), 'f');
        out.assign(r.reshape('c', like.size(0), like.size(2), like.size(1)).permute(0, 2, 1));
        return out;
    }

    /** The feature mask as a column {@code [N, 1]}, or null. */
    private INDArray rowMask(INDArray x) {
        if (maskArray == null) {
            return null;
        }
        INDArray m = maskArray.castTo(dataType);
        if (x.rank() == 3) {
            return m.reshape('c', m.length(), 1);
        }
        return m.length() == x.size(0) ? m.reshape(m.length(), 1) : null;
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr mgr) {
        assertInputSet(false);
        INDArray x = input.castTo(dataType);
        BottleneckAdapterLayer c = layerConf();
        if (!c.isAdapterEnabled()) {
            return mgr.dup(ArrayType.ACTIVATIONS, x);
        }
        INDArray x2 = rows(x, ArrayType.FF_WORKING_MEM, mgr);
        long n = x2.size(0);
        INDArray h = mgr.createUninitialized(ArrayType.FF_WORKING_MEM, dataType, new long[] {n, c.bottleneckSize()}, 'f');
        Nd4j.gemm(x2, params.get(BottleneckAdapterLayer.DOWN_W), h, false, false, 1.0, 0.0);
        h.addiRowVector(params.get(BottleneckAdapterLayer.DOWN_B));
        INDArray a = c.getActivationFn().getActivation(h, training);
        ArrayType outType = x.rank() == 2 ? ArrayType.ACTIVATIONS : ArrayType.FF_WORKING_MEM;
        INDArray y2 = mgr.createUninitialized(outType, dataType, new long[] {n, c.getNOut()}, 'f');
        y2.assign(x2);
        Nd4j.gemm(a, params.get(BottleneckAdapterLayer.UP_W), y2, false, false, 1.0, 1.0);
        y2.addiRowVector(params.get(BottleneckAdapterLayer.UP_B));
        INDArray m = rowMask(x);
        if (m != null) {
            y2.muliColumnVector(m);
        }
        return unrows(y2, x, ArrayType.ACTIVATIONS, mgr);
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr mgr) {
        assertInputSet(true);
        BottleneckAdapterLayer c = layerConf();
        INDArray x = input.castTo(dataType);
        Gradient grad = new DefaultGradient();
        if (!c.isAdapterEnabled()) {
            for (String k : c.paramShapes().keySet()) {
                grad.gradientForVariable().put(k, gradientViews.get(k).assign(0));
            }
            return new Pair<>(grad, c.isInputGradient() ? mgr.dup(ArrayType.ACTIVATION_GRAD, epsilon) : null);
        }
        INDArray x2 = rows(x, ArrayType.BP_WORKING_MEM, mgr);
        INDArray g = rows(epsilon.castTo(dataType), ArrayType.BP_WORKING_MEM, mgr);
        INDArray m = rowMask(x);
        if (m != null) {
            g = g.mulColumnVector(m);
        }
        long n = x2.size(0);
        INDArray wd = params.get(BottleneckAdapterLayer.DOWN_W);
        INDArray wu = params.get(BottleneckAdapterLayer.UP_W);
        INDArray h = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, new long[] {n, c.bottleneckSize()}, 'f');
        Nd4j.gemm(x2, wd, h, false, false, 1.0, 0.0);
        h.addiRowVector(params.get(BottleneckAdapterLayer.DOWN_B));
        INDArray a = c.getActivationFn().getActivation(mgr.dup(ArrayType.BP_WORKING_MEM, h, 'f'), true);

        INDArray gWd = gradientViews.get(BottleneckAdapterLayer.DOWN_W);
        INDArray gBd = gradientViews.get(BottleneckAdapterLayer.DOWN_B);
        INDArray gWu = gradientViews.get(BottleneckAdapterLayer.UP_W);
        INDArray gBu = gradientViews.get(BottleneckAdapterLayer.UP_B);
        Nd4j.gemm(a, g, gWu, true, false, 1.0, 0.0);
        g.sum(gBu, 0);
        INDArray ga = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType, new long[] {n, c.bottleneckSize()}, 'f');
        Nd4j.gemm(g, wu, ga, false, true, 1.0, 0.0);
        INDArray gh = c.getActivationFn().backprop(h, ga).getFirst();
        Nd4j.gemm(x2, gh, gWd, true, false, 1.0, 0.0);
        gh.sum(gBd, 0);
        grad.gradientForVariable().put(BottleneckAdapterLayer.DOWN_W, gWd);
        grad.gradientForVariable().put(BottleneckAdapterLayer.DOWN_B, gBd);
        grad.gradientForVariable().put(BottleneckAdapterLayer.UP_W, gWu);
        grad.gradientForVariable().put(BottleneckAdapterLayer.UP_B, gBu);

        INDArray eps = null;
        if (c.isInputGradient()) {
            ArrayType t = x.rank() == 2 ? ArrayType.ACTIVATION_GRAD : ArrayType.BP_WORKING_MEM;
            INDArray e2 = mgr.createUninitialized(t, dataType, new long[] {n, c.getNIn()}, 'f');
            e2.assign(g);
            Nd4j.gemm(gh, wd, e2, false, true, 1.0, 1.0);
            eps = unrows(e2, x, ArrayType.ACTIVATION_GRAD, mgr);
        }
        return new Pair<>(grad, eps);
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("a bottleneck adapter has no pre-output; call activate");
    }

    @Override
    public boolean isPretrainLayer() {
        return false;
    }

    @Override
    public void fit(INDArray input, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("layer-wise fit is not supported; fit the ComputationGraph");
    }
}
