package org.peft4j.core.blocks;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.blocks.internal.NormalizationImpl;
import org.peft4j.core.internal.ParamLayoutInitializer;

/**
 * Base of {@link LayerNorm} and {@link RmsNorm}: a normalization over the feature dimension of
 * {@code [batch, f, time]} or {@code [batch, f]}, independently at every batch element and time
 * step, with a gain {@code g [f]} (key {@code g}) and, for LayerNorm, a bias {@code b [f]}
 * (key {@code b}). Gains start at 1, biases at 0.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public abstract class Normalization extends BlockLayer {
    private static final long serialVersionUID = 1L;

    public static final String GAIN_KEY = "g";
    public static final String BIAS_KEY = "b";

    @JsonProperty("eps")
    private double eps;

    /** For JSON deserialization. */
    protected Normalization() {
    }

    protected Normalization(long size, double eps) {
        if (size <= 0) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": size must be positive, got " + size);
        }
        if (!(eps > 0) || Double.isInfinite(eps)) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": eps must be a positive finite number, got "
                    + eps);
        }
        this.nIn = size;
        this.nOut = size;
        this.eps = eps;
    }

    /** The constant added to the variance (or mean square) before the square root. */
    public double eps() {
        return eps;
    }

    /** Whether the mean is subtracted and a bias added (LayerNorm) or not (RMSNorm). */
    public abstract boolean centered();

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put(GAIN_KEY, new long[] {nOut});
        if (centered()) {
            m.put(BIAS_KEY, new long[] {nOut});
        }
        return m;
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (GAIN_KEY.equals(key)) {
            view.assign(1.0);
        } else if (BIAS_KEY.equals(key) && centered()) {
            view.assign(0.0);
        } else {
            throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer " + getLayerName());
        }
    }

    @Override
    public boolean isWeightParam(String key) {
        return false;
    }

    @Override
    public void setNIn(org.deeplearning4j.nn.conf.inputs.InputType inputType, boolean override) {
        super.setNIn(inputType, override);
        nOut = nIn;
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new NormalizationImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof Normalization) || !super.equals(o)) {
            return false;
        }
        Normalization other = (Normalization) o;
        return Double.compare(eps, other.eps) == 0 && centered() == other.centered();
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(super.hashCode(), eps, centered());
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(name=" + getLayerName() + ", size=" + nOut + ", eps=" + eps + ")";
    }
}
