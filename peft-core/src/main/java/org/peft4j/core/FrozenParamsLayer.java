package org.peft4j.core;

import java.util.Collection;
import java.util.List;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.wrapper.BaseWrapperLayer;
import org.deeplearning4j.nn.params.EmptyParamInitializer;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.nd4j.serde.jackson.shaded.NDArrayDeSerializer;
import org.nd4j.serde.jackson.shaded.NDArraySerializer;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.internal.DetachedParamsLayer;

/**
 * Any DL4J layer frozen with its parameters held outside the flat parameter vector: the wrapped
 * layer runs unchanged on a private copy of its parameters ({@link #frozenParams()}, in the
 * wrapped layer's own flat layout), and the graph sees a layer with no parameters, so the frozen
 * weights get no gradient slot, no optimizer state and no weight decay.
 *
 * <p>With {@code backprop = false} (nothing upstream trains) the layer is skipped in the backward
 * pass altogether, like DL4J's {@code FrozenLayer}, and runs in inference mode. With
 * {@code backprop = true} it passes the epsilon down; the wrapped layer then computes its weight
 * gradient into a private scratch buffer that is discarded (DL4J layers offer no way to ask for
 * the input gradient alone), so prefer the dense-specific {@link FrozenDenseLayer} where it applies.
 *
 * <p>Thread-safety: the configuration is not mutated after a graph is built from it.
 */
public class FrozenParamsLayer extends BaseWrapperLayer implements DetachableFrozenState {
    private static final long serialVersionUID = 1L;

    @JsonProperty("frozenParams")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray frozenParams;
    @JsonProperty("backprop")
    private boolean backprop;

    /** For JSON deserialization. */
    protected FrozenParamsLayer() {
    }

    /**
     * @param underlying the layer configuration to freeze
     * @param frozenParams its parameters as DL4J lays them out for it (may be null when it has none)
     * @param backprop whether to pass an epsilon to the layers below
     */
    public FrozenParamsLayer(Layer underlying, INDArray frozenParams, boolean backprop) {
        super(underlying);
        this.frozenParams = frozenParams;
        this.backprop = backprop;
        setLayerName(underlying.getLayerName());
    }

    /** The wrapped layer's parameters (a flat row in its own layout), or null if it has none. */
    @JsonIgnore
    public INDArray frozenParams() {
        return frozenParams;
    }

    @JsonIgnore
    public boolean isBackprop() {
        return backprop;
    }

    /** A copy without the frozen parameters (see {@link DetachableFrozenState}). */
    @Override
    public FrozenParamsLayer withoutFrozenState() {
        FrozenParamsLayer c = (FrozenParamsLayer) clone();
        c.frozenParams = null;
        return c;
    }

    /** Takes the frozen parameters of {@code source} (see {@link DetachableFrozenState}). */
    @Override
    public void attachFrozenState(Layer source) {
        if (!(source instanceof FrozenParamsLayer)) {
            throw new IllegalArgumentException("frozen state of layer " + getLayerName()
                    + " (FrozenParamsLayer) must come from a FrozenParamsLayer; got "
                    + (source == null ? "null" : source.getClass().getSimpleName()));
        }
        frozenParams = ((FrozenParamsLayer) source).frozenParams;
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        NeuralNetConfiguration inner = conf.clone();
        inner.setLayer(underlying);
        INDArray p = frozenParams == null ? null : frozenParams.castTo(networkDataType).reshape(1, frozenParams.length());
        org.deeplearning4j.nn.api.Layer u = underlying.instantiate(inner, listeners, layerIndex, p, false, networkDataType);
        DetachedParamsLayer detached = new DetachedParamsLayer(u, conf);
        return backprop ? detached : new org.deeplearning4j.nn.layers.FrozenLayer(detached);
    }

    @Override
    public ParamInitializer initializer() {
        return EmptyParamInitializer.getInstance();
    }

    @Override
    public List<Regularization> getRegularizationByParam(String paramName) {
        return null;
    }

    @Override
    public IUpdater getUpdaterByParam(String paramName) {
        return null;
    }

    @Override
    public boolean isPretrainParam(String paramName) {
        return false;
    }

    @Override
    public Layer clone() {
        FrozenParamsLayer l = (FrozenParamsLayer) super.clone();
        l.underlying = underlying.clone();
        return l;
    }

    @Override
    public String toString() {
        return "FrozenParamsLayer(name=" + getLayerName() + ", underlying=" + underlying.getClass().getSimpleName()
                + ", params=" + (frozenParams == null ? 0 : frozenParams.length()) + ", backprop=" + backprop + ")";
    }
}
