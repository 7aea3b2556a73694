package org.peft4j.core.spi;

import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.internal.ParamLayout;
import org.peft4j.core.internal.ParamLayoutInitializer;

/**
 * Common base of the layer configurations that tuners insert into a graph
 * ({@code BottleneckAdapterLayer}, {@code PromptEmbeddingLayer}, {@code PromptTrimLayer},
 * {@code PrefixEncoderLayer}): the two {@link TunerLayer} flags, kept as the JSON properties
 * {@code inputGradient} and {@code adapterEnabled} (both true by default), the
 * {@link ParamLayoutInitializer}, no preprocessor in front of the layer, and no pretrain
 * parameters. Subclasses declare their parameters ({@link ParamLayout}), shapes and implementation.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public abstract class BaseTunerLayer extends FeedForwardLayer implements ParamLayout, TunerLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("inputGradient")
    private boolean inputGradient = true;
    @JsonProperty("adapterEnabled")
    private boolean adapterEnabled = true;

    /** For subclasses and JSON deserialization. */
    protected BaseTunerLayer() {
    }

    @Override
    public void setInputGradient(boolean inputGradient) {
        this.inputGradient = inputGradient;
    }

    @Override
    @JsonIgnore
    public boolean isInputGradient() {
        return inputGradient;
    }

    @Override
    @JsonIgnore
    public boolean isAdapterEnabled() {
        return adapterEnabled;
    }

    @Override
    public void setAdapterEnabled(boolean enabled) {
        this.adapterEnabled = enabled;
    }

    @Override
    public ParamInitializer initializer() {
        return ParamLayoutInitializer.INSTANCE;
    }

    /** Works on the input as it comes: no preprocessor. */
    @Override
    public InputPreProcessor getPreProcessorForInputType(InputType inputType) {
        return null;
    }

    @Override
    public boolean isPretrainParam(String paramName) {
        return false;
    }
}
