package org.peft4j.lora.loha;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.DenseTarget;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.spi.FrozenDenseLayerImpl;
import org.peft4j.lora.lycoris.LycorisAdapter;
import org.peft4j.lora.lycoris.LycorisDenseLayerImpl;
import org.peft4j.lora.lycoris.LycorisLayer;

/**
 * A dense-type layer with a frozen base weight and a trainable LoHa update:
 * <pre>
 *   z = x·W + b + x·ΔWᵀ       a = act(z)
 *   x [batch, nIn]   W [nIn, nOut] (frozen)   ΔW = s·(w1a·w1b) ⊙ (w2a·w2b)  [nOut, nIn] (PEFT's orientation)
 * </pre>
 * Backward, with {@code delta = dL/dz [batch, nOut]}: {@code dL/dΔW = deltaᵀ·x}, from which the
 * factors' gradients follow ({@link HadamardProduct}); {@code eps_in = delta·(Wᵀ + ΔW)}. Parameters
 * {@code hadaW1a [nOut, r]}, {@code hadaW1b [r, nIn]}, {@code hadaW2a}, {@code hadaW2b} (and
 * {@code b} when the bias trains) have the shapes of PEFT's tensors {@code hada_w1_a}, ...
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class LoHaDenseLayer extends FrozenDenseLayer implements LycorisLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("loha")
    private HadamardProduct loha;

    /** For JSON deserialization. */
    protected LoHaDenseLayer() {
    }

    LoHaDenseLayer(DenseTarget target, LoHaConfig config) {
        super(target);
        this.loha = new HadamardProduct(config, config.rank(), config.alpha(), target.nOut(), target.nIn(), new int[0]);
    }

    @Override
    public LycorisAdapter adapter() {
        return loha;
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.putAll(loha.paramShapes());
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return loha.paramShapes().containsKey(key);
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (loha.paramShapes().containsKey(key)) {
            loha.initParam(key, view);
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public List<SavedTensor> savedTensors() {
        List<SavedTensor> l = super.savedTensors();
        l.addAll(loha.savedTensors());
        return l;
    }

    @Override
    public void adoptConfig(PeftConfig config) {
        LoHaConfig c = (LoHaConfig) config;
        if (c.rank() != loha.rank()) {
            throw new IllegalArgumentException("layer " + getLayerName() + " has rank " + loha.rank() + ", adapter has rank "
                    + c.rank());
        }
        this.loha = (HadamardProduct) loha.withSettings(c.alpha(), c.rankDropout(), true, c.moduleDropout());
    }

    /** {@code W' = W + ΔWᵀ [nIn, nOut]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        return base.add(loha.deltaWeight(params).transpose().castTo(base.dataType()));
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LycorisDenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LoHaDenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut=" + nOut
                + ", " + loha + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
