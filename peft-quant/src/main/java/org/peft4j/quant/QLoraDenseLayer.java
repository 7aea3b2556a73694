package org.peft4j.quant;

import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.LoraDenseLayer;
import org.peft4j.lora.internal.LoraDenseLayerImpl;
import org.peft4j.quant.internal.QuantizedProducts;
import org.peft4j.quant.internal.QuantizedTensorJson;

/**
 * QLoRA (arXiv 2305.14314): the LoRA layer of {@link LoraDenseLayer} with its frozen base weight
 * held as a 4-bit {@link QuantizedTensor} instead of floats:
 * <pre>
 *   z = x·dequant(Wq) + b + s · (d(x)·A)·B
 *   eps_in = delta·dequant(Wq)ᵀ + d'(gh·Aᵀ)
 * </pre>
 * Forward and the input gradient use the fused dequantize-multiply kernels and never
 * materialise the float weight; no gradient is ever computed for {@code Wq}.
 * {@link #frozenWeight()} dequantizes on demand (merging, unloading).
 *
 * <p>Thread-safety: see {@link org.peft4j.core.FrozenDenseLayer}.
 */
public class QLoraDenseLayer extends LoraDenseLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("quantizedWeight")
    @JsonSerialize(using = QuantizedTensorJson.Serializer.class)
    @JsonDeserialize(using = QuantizedTensorJson.Deserializer.class)
    private QuantizedTensor quantizedWeight;

    /** For JSON deserialization. */
    protected QLoraDenseLayer() {
    }

    QLoraDenseLayer(Target target, LoraConfig config, QuantSpec spec) {
        super(target, config, false);
        this.quantizedWeight = QLora.quantizedBase(target, spec);
    }

    /** The frozen base weight in 4 bits, {@code [nIn, nOut]}. */
    @JsonIgnore
    public QuantizedTensor quantizedWeight() {
        return quantizedWeight;
    }

    /** The dequantized base weight (a new float array each call). */
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
    public QLoraDenseLayer withoutFrozenState() {
        QLoraDenseLayer c = (QLoraDenseLayer) super.withoutFrozenState();
        c.quantizedWeight = null;
        return c;
    }

    /** Also takes the 4-bit weight (see {@link org.peft4j.core.DetachableFrozenState}). */
    @Override
    public void attachFrozenState(org.deeplearning4j.nn.conf.layers.Layer source) {
        super.attachFrozenState(source);
        quantizedWeight = ((QLoraDenseLayer) source).quantizedWeight;
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new Impl(conf, dataType);
    }

    /** The implementation: LoRA's, with the base products done on the 4-bit weight. */
    static final class Impl extends LoraDenseLayerImpl {
        private static final long serialVersionUID = 1L;

        Impl(NeuralNetConfiguration conf, DataType dataType) {
            super(conf, dataType);
        }

        private QLoraDenseLayer q() {
            return (QLoraDenseLayer) layerConf();
        }

        @Override
        protected void baseForward(INDArray x, INDArray z) {
            if (q().isMerged()) {
                super.baseForward(x, z);
            } else {
                QuantizedMatmul.layerForward(q().quantizedWeight, x, z, this::biasInto);
            }
        }

        @Override
        protected void baseInputGradient(INDArray delta, INDArray eps) {
            QuantizedProducts.inputGradient(q().quantizedWeight, delta, eps);
        }
    }
}
