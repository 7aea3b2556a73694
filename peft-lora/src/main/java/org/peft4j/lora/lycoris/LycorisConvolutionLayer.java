package org.peft4j.lora.lycoris;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenConvolutionLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;

/**
 * A convolution (2D, or 1D) with a frozen kernel and a trainable LyCORIS-style update (LoHa, LoKr),
 * its factors and their math held by a {@link LycorisAdapter}. The update is a kernel of the base
 * layer's shape, applied with the base layer's geometry (stride, padding, dilation, mode), as
 * Hugging Face PEFT applies it:
 * <pre>
 *   z = conv(x, W) + b + conv(x, ΔW)      W, ΔW [nOut, nIn, kH, kW]  (1D: [nOut, nIn, k, 1])
 * </pre>
 * In the row form of the frozen convolution (im2col columns {@code X [rows, nIn·kH·kW]}) this is
 * {@code z = X·(W2d + P'ᵀ) + b} with {@code P = ΔW} as {@code [nOut, nIn·kH·kW]}; backward
 * {@code dL/dP = deltaᵀ·X}, {@code eps_X = delta·(W2dᵀ + P)}. Merging gives the kernel {@code W + ΔW}.
 *
 * <p>Thread-safety: see {@link FrozenConvolutionLayer}.
 */
public class LycorisConvolutionLayer extends FrozenConvolutionLayer implements LycorisLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("adapter")
    private LycorisAdapter adapter;

    /** For JSON deserialization. */
    protected LycorisConvolutionLayer() {
    }

    /** {@code target} (of kind CONVOLUTION) frozen, with {@code adapter} made for it. */
    public LycorisConvolutionLayer(Target target, LycorisAdapter adapter) {
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

    /** The kernel {@code W + ΔW}, in the shape of {@code base} ({@code [nOut, nIn, kH, kW]}). */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        return base.add(adapter.deltaWeight(params).reshape('c', base.shape()).castTo(base.dataType()));
    }

    @Override
    protected FrozenConvolutionLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LycorisConvolutionLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LycorisConvolutionLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn
                + ", nOut=" + nOut + ", " + adapter + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
