package org.peft4j.lora.adalora;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.adalora.internal.AdaLoraDenseLayerImpl;
import org.peft4j.lora.adalora.internal.SvdUpdate;

/**
 * A dense-type layer with a frozen base weight and a trainable AdaLoRA update in SVD form (arXiv
 * 2303.10512; Hugging Face PEFT's {@code SVDLinear}):
 * <pre>
 *   z = x·W + b + κ · ((d(x)·Aᵀ) ⊙ E)·Bᵀ        a = act(z)
 *   x [batch, nIn]   W [nIn, nOut] (frozen)   A [r, nIn]   E [r]   B [nOut, r]
 *   κ = lora_alpha / (init_r + 1e-5)          d = inverted dropout on the branch only
 * </pre>
 * Backward, with {@code delta = dL/dz [batch, nOut]}, {@code h = d(x)·Aᵀ} and {@code u = h ⊙ E}:
 * <pre>
 *   δu = κ·delta·B      dL/dB = κ·deltaᵀ·u      dL/dE = Σ_batch h ⊙ δu
 *   δh = δu ⊙ E         dL/dA = δhᵀ·d(x)        eps_in = delta·Wᵀ + d'(δh·A)
 * </pre>
 * plus, once an {@link AdaLoraAllocator} runs, the orthogonal regularizer on {@code A} and
 * {@code B} (applied by DL4J's updater as a regularization of those parameters). {@code E} starts
 * at 0, so a new adapter changes nothing; {@code A} and {@code B} start {@code ~ N(0, 0.02²)} (PEFT's
 * init). Merged: {@code W' = W + (κ·B·diag(E)·A)ᵀ}. File tensors as PEFT's (no {@code .weight}):
 * {@code lora_A [r, nIn]}, {@code lora_E [r, 1]}, {@code lora_B [nOut, r]}; PEFT's {@code ranknum}
 * is not in files (it is {@code init_r}).
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}; an {@link AdaLoraAllocator} also replaces this
 * configuration's settings (rank pattern, regularizer) between training steps.
 */
public class AdaLoraDenseLayer extends FrozenDenseLayer implements AdaLoraLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("svd")
    private SvdUpdate svd;

    /** For JSON deserialization. */
    protected AdaLoraDenseLayer() {
    }

    AdaLoraDenseLayer(Target target, AdaLoraConfig config) {
        super(target);
        this.svd = config.updateFor(target.layerName(), target.nOut(), target.nIn());
    }

    SvdUpdate svd() {
        return svd;
    }

    void setSvd(SvdUpdate svd) {
        this.svd = svd;
    }

    @JsonIgnore
    @Override
    public int rank() {
        return svd.rank();
    }

    @JsonIgnore
    @Override
    public int initRank() {
        return svd.initRank();
    }

    @JsonIgnore
    @Override
    public double scaling() {
        return svd.scaling();
    }

    /** Dropout probability on the branch's input. */
    @JsonIgnore
    public double loraDropout() {
        return svd.dropout();
    }

    @JsonIgnore
    @Override
    public List<Boolean> rankPattern() {
        return AdaLoraConfig.toList(svd.rankPattern());
    }

    @Override
    public INDArray deltaWeight(Map<String, INDArray> params) {
        return svd.deltaRows(params);
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.putAll(svd.paramShapes());
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return svd.isParam(key);
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (svd.isParam(key)) {
            svd.initParam(key, view);
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public List<SavedTensor> savedTensors() {
        List<SavedTensor> l = super.savedTensors();
        l.addAll(svd.savedTensors());
        return l;
    }

    @Override
    public List<SharedBlock> sharedBlocks() {
        return svd.sharedBlocks(baseLayerName());
    }

    @Override
    public INDArray sharedBlockValue(SharedBlock block, Map<String, INDArray> params) {
        return svd.sharedBlockValue(block, params);
    }

    /** The base layer's regularization of the parameter, plus the orthogonal regularizer on {@code A} and {@code B}. */
    @Override
    public List<Regularization> getRegularizationByParam(String paramName) {
        return AdaLoraConfig.withOrthogonal(super.getRegularizationByParam(paramName),
                svd.orthogonalRegularization(paramName));
    }

    @Override
    public void adoptConfig(PeftConfig config) {
        this.svd = svd.adopt(((AdaLoraConfig) config).updateFor(baseLayerName(), svd.outFeatures(), svd.columns()));
    }

    /** {@code W' = W + ΔWᵀ [nIn, nOut]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        return base.add(svd.deltaRows(params).transpose().castTo(base.dataType()));
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new AdaLoraDenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "AdaLoraDenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut="
                + nOut + ", " + svd + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
