package org.peft4j.lora;

import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
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
 * <p>With DoRA ({@link LoraConfig#useDora()}) a magnitude {@code m [nOut]} ({@code loraM}) rescales
 * each output column of {@code V = W + s·A·B}:
 * <pre>
 *   n_j = ‖V[:, j]‖ (over nIn; a constant in backward)   c = m / n
 *   z = b + c ⊙ (x·W + s·(x·A)·B)                           (the bias is not rescaled)
 *   with dropout (training):  z = b + x·W + (c − 1) ⊙ (d(x)·W) + c ⊙ s·(d(x)·A)·B
 *   dL/dm_j = Σ_batch delta_j · (d(x)·V)_j / n_j;  A, B: as above with delta ⊙ c;  eps_in = (delta ⊙ c)·Vᵀ
 * </pre>
 * {@code m} starts at the column norms of {@code W} (B = 0 then), so a fresh DoRA adapter changes
 * nothing. Merged: {@code W' = V ⊙ c} per column. File tensors as Hugging Face PEFT's:
 * {@code lora_A.weight [r, nIn]}, {@code lora_B.weight [nOut, r]}, {@code lora_magnitude_vector [nOut]}.
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class LoraDenseLayer extends FrozenDenseLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of {@code A [nIn, r]}. */
    public static final String LORA_A = "loraA";
    /** Parameter key of {@code B [r, nOut]}. */
    public static final String LORA_B = "loraB";
    /** Parameter key of DoRA's magnitude {@code m [nOut]}. */
    public static final String LORA_M = "loraM";
    /** File suffix of DoRA's magnitude, as Hugging Face PEFT saves it (no {@code .weight}). */
    static final String MAGNITUDE_SUFFIX = "lora_magnitude_vector";

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
    @JsonProperty("useDora")
    private boolean useDora;

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
        this.useDora = config.useDora();
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

    /** Whether this layer is DoRA (has the magnitude {@code loraM}). */
    @JsonIgnore
    public boolean useDora() {
        return useDora;
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
        if (useDora) {
            m.put(LORA_M, new long[] {nOut});
        }
        return m;
    }

    /** {@code loraA}, {@code loraB} and DoRA's {@code loraM} (Hugging Face's Trainer decays it too). */
    @Override
    public boolean isWeightParam(String key) {
        return LORA_A.equals(key) || LORA_B.equals(key) || (useDora && LORA_M.equals(key));
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (LORA_A.equals(key)) {
            init.initA(view, nIn, rank);
        } else if (LORA_B.equals(key)) {
            view.assign(0);
        } else if (useDora && LORA_M.equals(key)) {
            // m = ‖W + s·A·B‖ per column at the initial A, B; B = 0, so the norms of W
            view.assign(DoraWeights.columnNorms(frozenWeight()).reshape(view.shape()));
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public java.util.List<SavedTensor> savedTensors() {
        java.util.List<SavedTensor> l = super.savedTensors();
        l.add(new SavedTensor(LORA_A, "lora_A.weight", true));
        l.add(new SavedTensor(LORA_B, "lora_B.weight", true));
        if (useDora) {
            l.add(new SavedTensor(LORA_M, MAGNITUDE_SUFFIX, false));
        }
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
        this.useDora = c.useDora();
    }

    /** {@code W' = W + s · A·B [nIn, nOut]}; with DoRA {@code W' = V ⊙ (m / ‖V‖)} per column, {@code V = W + s·A·B}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        INDArray delta = params.get(LORA_A).mmul(params.get(LORA_B)).muli(scaling);
        INDArray v = base.add(delta.castTo(base.dataType()));
        return useDora ? DoraWeights.rescaleColumns(v, params.get(LORA_M)) : v;
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LoraDenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LoraDenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut=" + nOut
                + ", r=" + rank + ", alpha=" + loraAlpha + ", scaling=" + scaling + ", dropout=" + loraDropout
                + (useDora ? ", dora" : "")
                + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
