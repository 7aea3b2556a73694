package org.peft4j.core.prefix.internal;

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
import org.nd4j.linalg.ops.transforms.Transforms;
import org.peft4j.core.prefix.PrefixEncoderLayer;

/**
 * Implementation of {@link PrefixEncoderLayer}; the formulas are in its javadoc. Hand-written: no
 * DL4J layer emits a trainable, input-independent sequence.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J layer.
 */
public final class PrefixEncoderLayerImpl extends BaseLayer<PrefixEncoderLayer> {
    private static final long serialVersionUID = 1L;

    public PrefixEncoderLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** The MLP's hidden layer {@code H [p, e]} (a fresh array). */
    private INDArray hidden() {
        return hidden(params);
    }

    private static INDArray hidden(java.util.Map<String, INDArray> params) {
        INDArray h = Nd4j.gemm(params.get(PrefixEncoderLayer.PREFIX_EMB), params.get(PrefixEncoderLayer.PREFIX_W1),
                true, false);
        h.addiRowVector(params.get(PrefixEncoderLayer.PREFIX_B1));
        return Transforms.tanh(h, false);
    }

    /** The reparameterisation MLP's output {@code P [dk + dv, p]} for a parameter table (as forward computes it). */
    public static INDArray mlpPrefix(java.util.Map<String, INDArray> params) {
        INDArray y = hidden(params).mmul(params.get(PrefixEncoderLayer.PREFIX_W2));
        y.addiRowVector(params.get(PrefixEncoderLayer.PREFIX_B2));
        return y.transpose();
    }

    /** The prefix {@code P [dk + dv, p]}: folded, plain, or from the MLP. */
    public INDArray prefix() {
        PrefixEncoderLayer c = layerConf();
        if (c.foldedPrefix() != null) {
            return c.foldedPrefix().castTo(dataType);
        }
        if (c.encoderHiddenSize() == 0) {
            return Nd4j.concat(0, params.get(PrefixEncoderLayer.PREFIX_K), params.get(PrefixEncoderLayer.PREFIX_V));
        }
        return mlpPrefix(params);
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr mgr) {
        assertInputSet(false);
        PrefixEncoderLayer c = layerConf();
        long b = input.size(0);
        INDArray p = prefix();
        INDArray out = mgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                new long[] {b, c.keySize() + c.valueSize(), c.numVirtualTokens()}, 'c');
        for (long i = 0; i < b; i++) {
            out.slice(i).assign(p);
        }
        return out;
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr mgr) {
        PrefixEncoderLayer c = layerConf();
        if (c.foldedPrefix() != null) {
            throw new IllegalStateException("layer \"" + c.getLayerName() + "\" has its prefix MLP folded for "
                    + "inference; call PrefixConfig.unfoldReparameterization(model) before training");
        }
        INDArray g = epsilon.castTo(dataType).sum(0);   // [dk + dv, p]
        Gradient grad = new DefaultGradient();
        long dk = c.keySize();
        if (c.encoderHiddenSize() == 0) {
            gradientViews.get(PrefixEncoderLayer.PREFIX_K).assign(g.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, dk),
                    org.nd4j.linalg.indexing.NDArrayIndex.all()));
            gradientViews.get(PrefixEncoderLayer.PREFIX_V).assign(g.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(dk,
                    g.size(0)), org.nd4j.linalg.indexing.NDArrayIndex.all()));
        } else {
            INDArray h = hidden();
            INDArray dY = g.transpose().dup('f');                   // [p, dk + dv]
            Nd4j.gemm(h, dY, gradientViews.get(PrefixEncoderLayer.PREFIX_W2), true, false, 1.0, 0.0);
            dY.sum(gradientViews.get(PrefixEncoderLayer.PREFIX_B2), 0);
            INDArray dZ = Nd4j.gemm(dY, params.get(PrefixEncoderLayer.PREFIX_W2), false, true);
            dZ.muli(h.mul(h).rsubi(1.0));                           // [p, e]
            Nd4j.gemm(params.get(PrefixEncoderLayer.PREFIX_EMB), dZ, gradientViews.get(PrefixEncoderLayer.PREFIX_W1),
                    false, false, 1.0, 0.0);
            dZ.sum(gradientViews.get(PrefixEncoderLayer.PREFIX_B1), 0);
            Nd4j.gemm(params.get(PrefixEncoderLayer.PREFIX_W1), dZ, gradientViews.get(PrefixEncoderLayer.PREFIX_EMB),
                    false, true, 1.0, 0.0);
        }
        for (String k : c.paramShapes().keySet()) {
            grad.gradientForVariable().put(k, gradientViews.get(k));
        }
        return new Pair<>(grad, null);
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("a prefix encoder has no pre-output; call activate");
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
