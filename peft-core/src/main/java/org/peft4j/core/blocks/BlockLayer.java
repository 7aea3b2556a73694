package org.peft4j.core.blocks;

import java.util.Map;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.internal.ParamLayout;
import org.peft4j.core.internal.ParamLayoutInitializer;

/**
 * Common base of the transformer block layers of this package: a layer over sequences in DL4J's
 * recurrent layout {@code [batch, features, time]} (NCW) or over rows {@code [batch, features]},
 * whose output has the same kind (and, except for {@link MultiHeadAttention}, the same shape) as its
 * input. No preprocessor is inserted in front of it.
 *
 * <p>The parameters are listed by {@link #paramShapes()}; each one is a {@code 'c'}-ordered view of
 * consecutive elements of the layer's slice of the flat parameter vector, and the gradient views
 * mirror them. Keys never contain {@code _}.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public abstract class BlockLayer extends FeedForwardLayer implements ParamLayout {
    private static final long serialVersionUID = 1L;

    /** For subclasses and JSON deserialization. */
    protected BlockLayer() {
    }

    /** The parameters in flat-vector order, key to shape. */
    @Override
    public abstract Map<String, long[]> paramShapes();

    /** Writes the initial value of parameter {@code key} into {@code view} (same shape as declared). */
    @Override
    public abstract void initParam(String key, INDArray view);

    /** Whether {@code key} is a weight (gets weight regularization) rather than a bias or gain. */
    @Override
    public abstract boolean isWeightParam(String key);

    /** Every parameter that is not a weight (biases, gains) gets bias regularization. */
    @Override
    public boolean isBiasParam(String key) {
        return paramShapes().containsKey(key) && !isWeightParam(key);
    }

    /** Block parameters are {@code 'c'}-ordered views. */
    @Override
    public char paramOrder() {
        return 'c';
    }

    @Override
    public ParamInitializer initializer() {
        return ParamLayoutInitializer.INSTANCE;
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (inputType == null || (inputType.getType() != InputType.Type.RNN && inputType.getType() != InputType.Type.FF)) {
            throw new IllegalStateException("layer \"" + getLayerName() + "\" (" + getClass().getSimpleName()
                    + ") expects recurrent [batch, features, time] or feed-forward input, got " + inputType);
        }
        if (inputType.getType() == InputType.Type.RNN) {
            return InputType.recurrent(nOut, ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength());
        }
        return InputType.feedForward(nOut);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        if (nIn > 0 && !override) {
            return;
        }
        if (inputType instanceof InputType.InputTypeRecurrent) {
            nIn = ((InputType.InputTypeRecurrent) inputType).getSize();
        } else if (inputType instanceof InputType.InputTypeFeedForward) {
            nIn = ((InputType.InputTypeFeedForward) inputType).getSize();
        } else {
            throw new IllegalStateException("layer \"" + getLayerName() + "\" (" + getClass().getSimpleName()
                    + ") expects recurrent or feed-forward input, got " + inputType);
        }
    }

    @Override
    public InputPreProcessor getPreProcessorForInputType(InputType inputType) {
        return null;
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        InputType outputType = getOutputType(-1, inputType);
        return ParamLayoutInitializer.memoryReport(this, inputType, outputType, outputType.arrayElementsPerExample());
    }

    @Override
    public boolean isPretrainParam(String paramName) {
        return false;
    }
}
