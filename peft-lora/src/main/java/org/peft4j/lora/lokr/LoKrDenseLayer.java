package org.peft4j.lora.lokr;

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
 * A dense-type layer with a frozen base weight and a trainable LoKr update:
 * <pre>
 *   z = x·W + b + x·ΔWᵀ       a = act(z)
 *   x [batch, nIn]   W [nIn, nOut] (frozen)   ΔW = s·w1 ⊗ w2  [nOut, nIn] (PEFT's orientation)
 * </pre>
 * Backward, with {@code delta = dL/dz [batch, nOut]}: {@code dL/dΔW = deltaᵀ·x}, from which the
 * factors' gradients follow ({@link KroneckerProduct}); {@code eps_in = delta·(Wᵀ + ΔW)}. Parameters
 * {@code lokrW1 [outL, inM]} (or {@code lokrW1a}, {@code lokrW1b}), {@code lokrW2 [outK, inN]} (or
 * {@code lokrW2a [outK, r]}, {@code lokrW2b [r, inN]}), and {@code b} when the bias trains, have the
 * shapes of PEFT's tensors {@code lokr_w1}, ...
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class LoKrDenseLayer extends FrozenDenseLayer implements LycorisLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("lokr")
    private KroneckerProduct lokr;

    /** For JSON deserialization. */
    protected LoKrDenseLayer() {
    }

    LoKrDenseLayer(DenseTarget target, LoKrConfig config) {
        super(target);
        this.lokr = new KroneckerProduct(config, config.rank(), config.alpha(), target.nOut(), target.nIn(), new int[0]);
    }

    @Override
    public LycorisAdapter adapter() {
        return lokr;
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.putAll(lokr.paramShapes());
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return lokr.paramShapes().containsKey(key);
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (lokr.paramShapes().containsKey(key)) {
            lokr.initParam(key, view);
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public List<SavedTensor> savedTensors() {
        List<SavedTensor> l = super.savedTensors();
        l.addAll(lokr.savedTensors());
        return l;
    }

    @Override
    public void adoptConfig(PeftConfig config) {
        LoKrConfig c = (LoKrConfig) config;
        if (c.rank() != lokr.rank()) {
            throw new IllegalArgumentException("layer " + getLayerName() + " has rank " + lokr.rank() + ", adapter has rank "
                    + c.rank());
        }
        this.lokr = (KroneckerProduct) lokr.withSettings(c.alpha(), c.rankDropout(), c.rankDropoutScale(), c.moduleDropout());
    }

    /** {@code W' = W + ΔWᵀ [nIn, nOut]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        return base.add(lokr.deltaWeight(params).transpose().castTo(base.dataType()));
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LycorisDenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LoKrDenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut=" + nOut
                + ", " + lokr + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
