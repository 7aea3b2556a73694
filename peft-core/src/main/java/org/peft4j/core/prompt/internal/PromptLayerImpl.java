package org.peft4j.core.prompt.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.MaskState;
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
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.blocks.internal.Layouts;
import org.peft4j.core.prompt.PromptEmbeddingLayer;
import org.peft4j.core.prompt.PromptTrimLayer;

/**
 * Implementation of {@link PromptEmbeddingLayer} (prepend) and {@link PromptTrimLayer} (drop):
 * the formulas are in their javadoc. Hand-written: DL4J has no layer that changes a sequence's
 * length and its mask together.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J layer.
 */
public final class PromptLayerImpl extends BaseLayer<org.deeplearning4j.nn.conf.layers.FeedForwardLayer> {
    private static final long serialVersionUID = 1L;

    public PromptLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private boolean prepends() {
        return layerConf() instanceof PromptEmbeddingLayer;
    }

    /** {@code p} when the layer acts now, else 0. */
    private int p() {
        if (prepends()) {
            PromptEmbeddingLayer c = (PromptEmbeddingLayer) layerConf();
            return c.isAdapterEnabled() ? c.numVirtualTokens() : 0;
        }
        PromptTrimLayer c = (PromptTrimLayer) layerConf();
        return c.isAdapterEnabled() ? c.numVirtualTokens() : 0;
    }

    private boolean inputGradient() {
        return prepends() ? ((PromptEmbeddingLayer) layerConf()).isInputGradient()
                : ((PromptTrimLayer) layerConf()).isInputGradient();
    }

    private static INDArrayIndex[] time(long from, long to) {
        return new INDArrayIndex[] {NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(from, to)};
    }

    private INDArray sequence(INDArray a) {
        if (a.rank() != 3 || a.size(1) != layerConf().getNIn()) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\" expects [batch, "
                    + layerConf().getNIn() + ", time] (NCW), got " + Arrays.toString(a.shape()));
        }
        return a.castTo(dataType);
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr mgr) {
        assertInputSet(false);
        INDArray x = sequence(input);
        int p = p();
        if (p == 0) {
            return mgr.dup(ArrayType.ACTIVATIONS, x);
        }
        long b = x.size(0);
        long t = x.size(2);
        if (prepends()) {
            INDArray y = mgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, new long[] {b, x.size(1), p + t}, 'c');
            INDArray prompt = params.get(PromptEmbeddingLayer.PROMPT_KEY);
            for (long i = 0; i < b; i++) {
                y.slice(i).get(NDArrayIndex.all(), NDArrayIndex.interval(0, p)).assign(prompt);
            }
            y.get(time(p, p + t)).assign(x);
            return y;
        }
        if (t < p) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\": sequence of length " + t
                    + " is shorter than the " + p + " virtual tokens it should drop");
        }
        return mgr.dup(ArrayType.ACTIVATIONS, x.get(time(p, t)), 'c');
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr mgr) {
        assertInputSet(true);
        INDArray eps = sequence(epsilon);
        int p = p();
        Gradient grad = new DefaultGradient();
        if (prepends()) {
            INDArray gView = gradientViews.get(PromptEmbeddingLayer.PROMPT_KEY);
            if (gView != null) {
                if (p == 0) {
                    gView.assign(0);
                } else {
                    gView.assign(eps.get(time(0, p)).sum(0));
                }
                grad.gradientForVariable().put(PromptEmbeddingLayer.PROMPT_KEY, gView);
            }
            if (!inputGradient()) {
                return new Pair<>(grad, null);
            }
            return new Pair<>(grad, mgr.dup(ArrayType.ACTIVATION_GRAD, eps.get(time(p, eps.size(2))), 'c'));
        }
        if (!inputGradient()) {
            return new Pair<>(grad, null);
        }
        long t = eps.size(2);
        INDArray dx = mgr.create(ArrayType.ACTIVATION_GRAD, dataType, new long[] {eps.size(0), eps.size(1), p + t}, 'c');
        dx.get(time(p, p + t)).assign(eps);
        return new Pair<>(grad, dx);
    }

    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArray(INDArray maskArray, MaskState currentMaskState, int minibatchSize) {
        this.maskArray = maskArray;
        this.maskState = currentMaskState;
        int p = p();
        if (maskArray == null || p == 0) {
            return new Pair<>(maskArray, currentMaskState);
        }
        INDArray m = Layouts.sequenceMask(maskArray, minibatchSize);
        INDArray out;
        if (prepends()) {
            out = Nd4j.ones(m.dataType(), m.size(0), p + m.size(1));
            out.get(NDArrayIndex.all(), NDArrayIndex.interval(p, p + m.size(1))).assign(m);
        } else {
            out = m.get(NDArrayIndex.all(), NDArrayIndex.interval(p, m.size(1))).dup();
        }
        return new Pair<>(out, currentMaskState);
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("no pre-output; call activate");
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
