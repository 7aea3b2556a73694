package org.peft4j.core;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.spi.FrozenDenseLayerImpl;

/**
 * A dense-type layer ({@link TargetKind#DENSE}) whose base weights are frozen outside DL4J's
 * flat parameter vector: {@code z = x·W + b}, {@code a = act(z)}, with {@code x [batch, nIn]},
 * {@code W [nIn, nOut]}, {@code b [nOut]}. See {@link FrozenBaseLayer} for what is frozen, the
 * trainable bias and how tuners extend it (LoRA adds {@code loraA}, {@code loraB}).
 *
 * <p>Backward: {@code delta = act'(z) ⊙ eps}; {@code eps_in = delta·Wᵀ}, computed only when
 * something upstream trains ({@link #isInputGradient()}); {@code db = Σ_batch delta} when the bias
 * trains. No weight gradient is ever computed for {@code W}.
 *
 * <p>An output layer of the base model is split when wrapped: this layer is its dense
 * projection ({@link #isOutputProjection()}) and a parameter-free loss layer follows it.
 *
 * <p>Thread-safety: see {@link FrozenBaseLayer}.
 */
public class FrozenDenseLayer extends FrozenBaseLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("outputProjection")
    private boolean outputProjection;

    /** For JSON deserialization. */
    protected FrozenDenseLayer() {
    }

    /** A frozen copy of {@code target} with no adapter. */
    public FrozenDenseLayer(Target target) {
        this(target, true);
    }

    /** See {@link FrozenBaseLayer#FrozenBaseLayer(Target, boolean)}. */
    protected FrozenDenseLayer(Target target, boolean keepFloatWeight) {
        super(target, keepFloatWeight);
    }

    @Override
    public TargetKind kind() {
        return TargetKind.DENSE;
    }

    /** True for the projection half of a decomposed output layer (the loss layer masks instead). */
    @JsonIgnore
    public boolean isOutputProjection() {
        return outputProjection;
    }

    public void setOutputProjection(boolean outputProjection) {
        this.outputProjection = outputProjection;
    }

    /** Creates the layer implementation; tuners return their own subclass. */
    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new FrozenDenseLayerImpl(conf, dataType);
    }
}
