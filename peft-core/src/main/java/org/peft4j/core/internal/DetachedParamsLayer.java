package org.peft4j.core.internal;

import java.util.Collections;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.wrapper.BaseWrapperLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Implementation of {@link org.peft4j.core.FrozenParamsLayer}: presents a layer whose parameters
 * are private (outside the graph's flat vector) as a layer with no parameters. Backward delegates
 * to the wrapped layer for the epsilon and discards its weight gradient (computed into a scratch
 * buffer allocated on first use; a wrapped {@link InputGradientOnly} layer is told to skip it).
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J layer.
 */
public final class DetachedParamsLayer extends BaseWrapperLayer {
    private static final long serialVersionUID = 1L;

    private NeuralNetConfiguration outerConf;
    private boolean scratchReady;

    public DetachedParamsLayer(Layer underlying, NeuralNetConfiguration outerConf) {
        super(underlying);
        this.outerConf = outerConf;
    }

    @Override
    public NeuralNetConfiguration conf() {
        return outerConf;
    }

    @Override
    public void setConf(NeuralNetConfiguration conf) {
        this.outerConf = conf;
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        if (!scratchReady) {
            long n = underlying.numParams();
            if (n > 0) {
                try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                    underlying.setBackpropGradientsViewArray(Nd4j.create(underlying.params().dataType(), 1, n));
                }
            }
            if (underlying instanceof InputGradientOnly) {
                ((InputGradientOnly) underlying).inputGradientOnly();
            }
            scratchReady = true;
        }
        INDArray eps = underlying.backpropGradient(epsilon, workspaceMgr).getSecond();
        return new Pair<>(new DefaultGradient(), eps);
    }

    @Override
    public double calcRegularizationScore(boolean backpropParamsOnly) {
        return 0.0;
    }

    @Override
    public INDArray params() {
        return null;
    }

    @Override
    public long numParams() {
        return 0;
    }

    @Override
    public long numParams(boolean backwards) {
        return 0;
    }

    @Override
    public void setParams(INDArray params) {
        // no trainable parameters
    }

    @Override
    public void setParamsViewArray(INDArray params) {
        // the wrapped layer keeps its private parameters
    }

    @Override
    public INDArray getGradientsViewArray() {
        return null;
    }

    @Override
    public void setBackpropGradientsViewArray(INDArray gradients) {
        // no trainable parameters: the wrapped layer gets a private scratch buffer on first backprop
    }

    @Override
    public Map<String, INDArray> paramTable() {
        return Collections.emptyMap();
    }

    @Override
    public Map<String, INDArray> paramTable(boolean backpropParamsOnly) {
        return Collections.emptyMap();
    }

    @Override
    public void setParamTable(Map<String, INDArray> paramTable) {
        // no trainable parameters
    }

    @Override
    public INDArray getParam(String param) {
        return null;
    }

    @Override
    public void update(Gradient gradient) {
        // frozen
    }

    @Override
    public void update(INDArray gradient, String paramType) {
        // frozen
    }

    @Override
    public void applyConstraints(int iteration, int epoch) {
        // frozen
    }

    @Override
    public Gradient gradient() {
        return new DefaultGradient();
    }
}
