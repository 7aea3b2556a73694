package org.peft4j.quant;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.quant.internal.QuantizedProducts;
import org.peft4j.quant.internal.QuantizedTensorJson;

/**
 * A frozen dense layer held in 4 bits with no adapter ({@code z = x·dequant(Wq) + b}): what
 * QLoRA makes of the dense layers it does not target when asked to quantize them too.
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class QuantizedDenseLayer extends FrozenDenseLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("quantizedWeight")
    @JsonSerialize(using = QuantizedTensorJson.Serializer.class)
    @JsonDeserialize(using = QuantizedTensorJson.Deserializer.class)
    private QuantizedTensor quantizedWeight;

    /** For JSON deserialization. */
    protected QuantizedDenseLayer() {
    }

    QuantizedDenseLayer(Target target, QuantSpec spec) {
        super(target, false);
        this.quantizedWeight = QLora.quantizedBase(target, spec);
    }

    @JsonIgnore
    public QuantizedTensor quantizedWeight() {
        return quantizedWeight;
    }

    @Override
    public INDArray frozenWeight() {
        return quantizedWeight.toINDArray();
    }

    @Override
    public long frozenBytes() {
        return quantizedWeight.memoryBytes() + frozenBiasBytes();
    }

    /** Also leaves out the 4-bit weight (see {@link org.peft4j.core.DetachableFrozenState}). */
    @Override
    public QuantizedDenseLayer withoutFrozenState() {
        QuantizedDenseLayer c = (QuantizedDenseLayer) super.withoutFrozenState();
        c.quantizedWeight = null;
        return c;
    }

    /** Also takes the 4-bit weight (see {@link org.peft4j.core.DetachableFrozenState}). */
    @Override
    public void attachFrozenState(org.deeplearning4j.nn.conf.layers.Layer source) {
        super.attachFrozenState(source);
        quantizedWeight = ((QuantizedDenseLayer) source).quantizedWeight;
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new Impl(conf, dataType);
    }

    /** The implementation: a frozen dense layer whose products run on the 4-bit weight. */
    static final class Impl extends FrozenDenseLayerImpl {
        private static final long serialVersionUID = 1L;

        Impl(NeuralNetConfiguration conf, DataType dataType) {
            super(conf, dataType);
        }

        @Override
        protected void baseForward(INDArray x, INDArray z) {
            QuantizedMatmul.layerForward(((QuantizedDenseLayer) layerConf()).quantizedWeight, x, z,
                    this::biasInto);
        }

        @Override
        protected void baseInputGradient(INDArray delta, INDArray eps) {
            QuantizedProducts.inputGradient(((QuantizedDenseLayer) layerConf()).quantizedWeight, delta, eps);
        }
    }
}
