package org.peft4j.core.prompt;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.internal.ParamLayoutInitializer;
import org.peft4j.core.prompt.internal.PromptLayerImpl;
import org.peft4j.core.spi.BaseTunerLayer;

/**
 * The other half of prompt tuning: inserted before the output layer, it drops the {@code p}
 * virtual-token positions that {@link PromptEmbeddingLayer} prepended, so outputs and labels keep
 * the caller's length {@code T}.
 *
 * <pre>
 *   x [batch, d, p + T] → x[:, :, p:] [batch, d, T]     mask [batch, p + T] → mask[:, p:]
 *   backward: dx = [0 ; dy]
 * </pre>
 * No parameters. With {@code p = 0}, or disabled, it passes its input and mask through.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public class PromptTrimLayer extends BaseTunerLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("numVirtualTokens")
    private int numVirtualTokens;

    /** For JSON deserialization. */
    protected PromptTrimLayer() {
    }

    /** Drops the first {@code numVirtualTokens} positions of {@code [batch, size, time]} sequences. */
    public PromptTrimLayer(long size, int numVirtualTokens) {
        if (numVirtualTokens < 0) {
            throw new IllegalArgumentException("numVirtualTokens must not be negative; got " + numVirtualTokens);
        }
        this.nIn = size;
        this.nOut = size;
        this.numVirtualTokens = numVirtualTokens;
    }

    @JsonIgnore
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        return new LinkedHashMap<>();
    }

    @Override
    public boolean isWeightParam(String key) {
        return false;
    }

    @Override
    public void initParam(String key, INDArray view) {
        throw new IllegalArgumentException("layer " + getLayerName() + " has no parameters; got key \"" + key + "\"");
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new PromptLayerImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (inputType instanceof InputType.InputTypeRecurrent) {
            long t = ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength();
            return InputType.recurrent(nOut, t > 0 ? t - numVirtualTokens : t);
        }
        return inputType;
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        // the width is fixed at wrap time
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        return ParamLayoutInitializer.memoryReport(this, inputType, getOutputType(-1, inputType), 0);
    }

    @Override
    public String toString() {
        return "PromptTrimLayer(name=" + getLayerName() + ", p=" + numVirtualTokens + ", enabled=" + isAdapterEnabled() + ")";
    }
}
