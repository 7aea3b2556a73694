package org.peft4j.lora.adalora;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenConvolutionLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;
import org.peft4j.lora.adalora.internal.AdaLoraConvolutionLayerImpl;
import org.peft4j.lora.adalora.internal.SvdUpdate;

/**
 * A 2D convolution ({@code ConvolutionLayer}) with a frozen kernel and a trainable AdaLoRA update
 * in Hugging Face PEFT's {@code SVDConv2d} layout: {@code ΔW = κ·B·diag(E)·A} reshaped to the
 * kernel and applied with the layer's own stride, padding, dilation and mode:
 * <pre>
 *   z = conv(x, W) + b + conv(d(x), ΔW)        a = act(z)
 *   W [nOut, nIn, kH, kW] (frozen)   A [r, nIn·kH·kW]   E [r]   B [nOut, r]   κ = lora_alpha / (init_r + 1e-5)
 * </pre>
 * In the row form of the frozen convolution (im2col columns {@code X [rows, nIn·kH·kW]}, column
 * order {@code (c, kh, kw)} as PyTorch's reshape) this is {@link AdaLoraDenseLayer}'s formula with
 * {@code X} for {@code x}; its backward pass likewise, the input gradient going back through
 * col2im. The dropout mask is drawn on the input, so an input value is dropped in every window or
 * in none (PEFT's dropout before the convolution).
 *
 * <p>File tensors (PEFT's names and shapes, no {@code .weight}): {@code lora_A [r, nIn·kH·kW]},
 * {@code lora_E [r, 1]}, {@code lora_B [nOut, r]}. Every data format (NCHW, NHWC) and convolution
 * mode works: the row form is the same for all of them.
 *
 * <p>Refused when the layer is built: a 1D convolution ({@code Convolution1DLayer}); PEFT's
 * AdaLoRA adapts {@code nn.Linear} and {@code nn.Conv2d} only.
 *
 * <p>Thread-safety: see {@link FrozenConvolutionLayer}; an {@link AdaLoraAllocator} also replaces
 * this configuration's settings (rank pattern, regularizer) between training steps.
 */
public class AdaLoraConvolutionLayer extends FrozenConvolutionLayer implements AdaLoraLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("svd")
    private SvdUpdate svd;

    /** For JSON deserialization. */
    protected AdaLoraConvolutionLayer() {
    }

    /**
     * @throws IllegalArgumentException for a 1D convolution
     */
    AdaLoraConvolutionLayer(Target target, AdaLoraConfig config) {
        super(target);
        if (isOneDimensional()) {
            throw new IllegalArgumentException("layer \"" + target.layerName() + "\" is a " + target.baseLayer()
                    .getClass().getSimpleName() + " (a 1D convolution); AdaLoRA adapts dense layers and 2D convolutions "
                    + "(Hugging Face PEFT's SVDLinear and SVDConv2d), not 1D convolutions. Leave the layer out of "
                    + "targetModules, or use excludeModules");
        }
        long[] w = weightShape();
        this.svd = config.updateFor(target.layerName(), w[0], w[1] * w[2] * w[3]);
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

    /** {@code ΔW [nOut, nIn·kH·kW]}: the kernel's update as rows (reshape in 'c' order for the kernel). */
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

    /** {@code W' = W + ΔW} reshaped to the kernel {@code [nOut, nIn, kH, kW]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        INDArray rows = base.dup('c').reshape('c', base.size(0), base.length() / base.size(0));
        return rows.addi(svd.deltaRows(params).castTo(base.dataType())).reshape('c', base.shape());
    }

    @Override
    protected FrozenConvolutionLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new AdaLoraConvolutionLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "AdaLoraConvolutionLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", kernel="
                + java.util.Arrays.toString(weightShape()) + ", " + svd + ", merged=" + isMerged() + ", enabled="
                + isAdapterEnabled() + ")";
    }
}
