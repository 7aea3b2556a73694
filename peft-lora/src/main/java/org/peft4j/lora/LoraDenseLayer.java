package org.peft4j.lora;

import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.internal.LoraDenseLayerImpl;

/**
 * A dense-type layer with a frozen base weight and a trainable low-rank update (LoRA,
 * arXiv 2106.09685):
 *
 * <pre>
 *   z = x·W + b + s · (d(x)·A)·B        a = act(z)
 *   x [batch, nIn]   W [nIn, nOut] (frozen)   A [nIn, r]   B [r, nOut]
 *   s = alpha / r   (rsLoRA: alpha / √r)     d = inverted dropout on the LoRA branch only
 * </pre>
 *
 * Backward, with {@code delta = dL/dz [batch, nOut]} and {@code h = d(x)·A [batch, r]}:
 * <pre>
 *   dL/dB = s · hᵀ·delta          gh = s · delta·Bᵀ  [batch, r]
 *   dL/dA = d(x)ᵀ·gh              eps_in = delta·Wᵀ + d'(gh·Aᵀ)
 * </pre>
 * No gradient is computed for {@code W}; {@code eps_in} only when something upstream trains.
 * Parameters {@code loraA}, {@code loraB} (and {@code b} when the bias trains) live in DL4J's
 * flat vector; {@code W} lives in this configuration.
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class LoraDenseLayer extends FrozenDenseLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of {@code A [nIn, r]}. */
    public static final String LORA_A = "loraA";
    /** Parameter key of {@code B [r, nOut]}. */
    public static final String LORA_B = "loraB";

    @JsonProperty("rank")
    private int rank;
    @JsonProperty("loraAlpha")
    private double loraAlpha;
    @JsonProperty("scaling")
    private double scaling;
    @JsonProperty("loraDropout")
    private double loraDropout;
    @JsonProperty("init")
    private LoraInit init = LoraInit.KAIMING_UNIFORM;

    /** For JSON deserialization. */
    protected LoraDenseLayer() {
    }

    LoraDenseLayer(Target target, LoraConfig config) {
        this(target, config, true);
    }

    /** For subclasses that hold the frozen weight in another form (QLoRA); see {@link FrozenDenseLayer}. */
    protected LoraDenseLayer(Target target, LoraConfig config, boolean keepFloatWeight) {
        super(target, keepFloatWeight);
        this.rank = config.rankFor(target.layerName());
        this.loraAlpha = config.alphaFor(target.layerName());
        this.scaling = config.scalingFor(target.layerName());
        this.loraDropout = config.dropout();
        this.init = config.initLoraWeights();
    }

    @JsonIgnore
    public int rank() {
        return rank;
    }

    @JsonIgnore
    public double loraAlpha() {
        return loraAlpha;
    }

    /** The factor {@code s} applied to {@code A·B}. */
    @JsonIgnore
    public double scaling() {
        return scaling;
    }

    @JsonIgnore
    public double loraDropout() {
        return loraDropout;
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.put(LORA_A, new long[] {nIn, rank});
        m.put(LORA_B, new long[] {rank, nOut});
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return LORA_A.equals(key) || LORA_B.equals(key);
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (LORA_A.equals(key)) {
            if (init == LoraInit.GAUSSIAN) {
                view.assign(Nd4j.randn(view.dataType(), view.shape()).muli(1.0 / rank));
            } else {
                double bound = 1.0 / Math.sqrt(nIn);
                view.assign(Nd4j.rand(view.dataType(), view.shape()).muli(2 * bound).subi(bound));
            }
        } else if (LORA_B.equals(key)) {
            view.assign(0);
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public java.util.List<SavedTensor> savedTensors() {
        java.util.List<SavedTensor> l = super.savedTensors();
        l.add(new SavedTensor(LORA_A, "lora_A.weight", true));
        l.add(new SavedTensor(LORA_B, "lora_B.weight", true));
        return l;
    }

    @Override
    public void adoptConfig(org.peft4j.core.PeftConfig config) {
        LoraConfig c = config instanceof LoraBased ? ((LoraBased) config).lora() : (LoraConfig) config;
        if (c.rankFor(baseLayerName()) != rank) {
            throw new IllegalArgumentException("layer " + getLayerName() + " has rank " + rank + ", adapter has rank "
                    + c.rankFor(baseLayerName()));
        }
        this.loraAlpha = c.alphaFor(baseLayerName());
        this.scaling = c.scalingFor(baseLayerName());
        this.loraDropout = c.dropout();
        this.init = c.initLoraWeights();
    }

    /** {@code W' = W + s · A·B [nIn, nOut]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        INDArray delta = params.get(LORA_A).mmul(params.get(LORA_B)).muli(scaling);
        return base.add(delta.castTo(base.dataType()));
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LoraDenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LoraDenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut=" + nOut
                + ", r=" + rank + ", alpha=" + loraAlpha + ", scaling=" + scaling + ", dropout=" + loraDropout
                + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
