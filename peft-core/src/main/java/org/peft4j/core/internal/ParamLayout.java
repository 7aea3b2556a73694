package org.peft4j.core.internal;

import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A layer configuration that declares its trainable parameters itself, for
 * {@link ParamLayoutInitializer}: {@link org.peft4j.core.FrozenDenseLayer} and its tuner
 * subclasses, and the layers tuners insert into a graph.
 *
 * <p>Thread-safety: implementations are layer configurations, not mutated after a graph is built.
 */
public interface ParamLayout {

    /**
     * The trainable parameters in flat-vector order, key to shape. Every parameter is a view of
     * consecutive elements of the layer's slice of the flat vector, in {@link #paramOrder()}.
     */
    Map<String, long[]> paramShapes();

    /** Whether {@code key} is a weight (gets weight regularization). */
    boolean isWeightParam(String key);

    /** Whether {@code key} is a bias (gets bias regularization); default none. */
    default boolean isBiasParam(String key) {
        return false;
    }

    /** Writes the initial value of parameter {@code key} into {@code view}. */
    void initParam(String key, INDArray view);

    /** Order of the parameter views over the flat vector: {@code 'f'} (default) or {@code 'c'}. */
    default char paramOrder() {
        return 'f';
    }
}
