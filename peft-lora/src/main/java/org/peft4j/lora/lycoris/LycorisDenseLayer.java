package org.peft4j.lora.lycoris;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenDenseLayerImpl;

/**
 * A dense-type layer with a frozen base weight and a trainable LyCORIS-style update (LoHa, LoKr),
 * its factors and their math held by a {@link LycorisAdapter}:
 * <pre>
 *   z = x·W + b + x·ΔWᵀ       a = act(z)
 *   x [batch, nIn]   W [nIn, nOut] (frozen)   ΔW [nOut, nIn] (PEFT's orientation, from the factors)
 * </pre>
 * Backward, with {@code delta = dL/dz [batch, nOut]}: {@code dL/dΔW = deltaᵀ·x}, from which the
 * adapter computes its factors' gradients; {@code eps_in = delta·(Wᵀ + ΔW)}. The factors are DL4J
 * parameters with the shapes of PEFT's tensors; {@code b} is one too when the bias trains. Merging
 * gives {@code W + ΔWᵀ}.
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class LycorisDenseLayer extends FrozenDenseLayer implements LycorisLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("adapter")
    private LycorisAdapter adapter;

    /** For JSON deserialization. */
    protected LycorisDenseLayer() {
    }

    /** {@code target} (of kind DENSE) frozen, with {@code adapter} made for it. */
    public LycorisDenseLayer(Target target, LycorisAdapter adapter) {
        super(target);
        this.adapter = adapter;
    }

    @Override
    public LycorisAdapter adapter() {
        return adapter;
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.putAll(adapter.paramShapes());
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return adapter.paramShapes().containsKey(key);
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (adapter.paramShapes().containsKey(key)) {
            adapter.initParam(key, view);
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public List<SavedTensor> savedTensors() {
        List<SavedTensor> l = super.savedTensors();
        l.addAll(adapter.savedTensors());
        return l;
    }

    @Override
    public void adoptConfig(PeftConfig config) {
        this.adapter = adapter.adopt(config, baseLayerName());
    }

    /** {@code W' = W + ΔWᵀ [nIn, nOut]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        return base.add(adapter.deltaWeight(params).transpose().castTo(base.dataType()));
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LycorisDenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LycorisDenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut="
                + nOut + ", " + adapter + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
