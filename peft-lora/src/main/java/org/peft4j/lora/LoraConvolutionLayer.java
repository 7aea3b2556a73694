package org.peft4j.lora;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenConvolutionLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;
import org.peft4j.lora.internal.LoraConvolutionLayerImpl;

/**
 * A convolution ({@code ConvolutionLayer} 2D, {@code Convolution1DLayer}) with a frozen kernel and
 * a trainable low-rank update in Hugging Face PEFT's convolution layout ({@code lora.Conv2d},
 * {@code lora.Conv1d}): {@code A} is a convolution from {@code nIn} to {@code r} channels with the
 * layer's own kernel size, stride, padding and mode, {@code B} a 1×1 convolution from {@code r} to
 * {@code nOut} channels:
 * <pre>
 *   z = conv(x, W) + b + s · conv1×1(conv(d(x), A), B)        a = act(z)
 *   W [nOut, nIn, kH, kW] (frozen; kW = 1 in 1D)   A [r, nIn·kH·kW]   B [nOut, r]   s = alpha / r
 * </pre>
 * In the row form of the frozen convolution (im2col columns {@code X [rows, nIn·kH·kW]}) this is
 * dense LoRA: {@code z = X·W2dᵀ + b + s·(d(X)·Aᵀ)·Bᵀ}, with the dropout mask drawn on the input
 * (each input value is dropped or kept in every window it falls in, as PyTorch's dropout before
 * {@code lora_A} does). Backward, with {@code delta [rows, nOut]} and {@code h = d(X)·Aᵀ}:
 * {@code dL/dB = s·deltaᵀ·h}, {@code gh = s·delta·B}, {@code dL/dA = ghᵀ·d(X)}, and the input
 * gradient gains {@code d'(gh·A)} before col2im. Merged: {@code W' = W + s·B·A} reshaped to the kernel.
 *
 * <p>With DoRA ({@link LoraConfig#useDora()}) a magnitude {@code m [nOut]} rescales each output
 * channel: {@code n_o = ‖(W + s·B·A)[o]‖} over {@code (nIn, kH, kW)} (a constant in backward),
 * {@code c = m / n}, {@code z = b + c ⊙ (conv(x, W) + s·conv1×1(conv(x, A), B))} (dropout as in
 * {@link LoraDenseLayer}); merged {@code W' = c ⊙ (W + s·B·A)} per output channel.
 *
 * <p>File tensors (PEFT's names and shapes): {@code lora_A.weight [r, nIn, kH, kW]}
 * ({@code [r, nIn, k]} in 1D), {@code lora_B.weight [nOut, r, 1, 1]} ({@code [nOut, r, 1]}),
 * {@code lora_magnitude_vector [1, nOut, 1, 1]} ({@code [1, nOut, 1]}). The parameters keep
 * PyTorch's orientation, flattened to matrices.
 *
 * <p>Refused when the layer is built: a dilation other than 1 (PEFT builds {@code lora_A} without
 * the base layer's dilation, so its unmerged forward and its merge disagree, and a file trained
 * there would not compute here what it computed there). Every data format (NCHW, NHWC, NCW, NWC)
 * and convolution mode works: the frozen convolution's row form is the same for all of them.
 *
 * <p>Thread-safety: see {@link FrozenConvolutionLayer}.
 */
public class LoraConvolutionLayer extends FrozenConvolutionLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of {@code A [r, nIn·kH·kW]}. */
    public static final String LORA_A = LoraDenseLayer.LORA_A;
    /** Parameter key of {@code B [nOut, r]}. */
    public static final String LORA_B = LoraDenseLayer.LORA_B;
    /** Parameter key of DoRA's magnitude {@code m [nOut]}. */
    public static final String LORA_M = LoraDenseLayer.LORA_M;

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
    protected LoraConvolutionLayer() {
    }

    /**
     * @throws IllegalArgumentException if the convolution has a dilation other than 1
     */
    LoraConvolutionLayer(Target target, LoraConfig config) {
        super(target);
        if (Arrays.stream(dilation()).anyMatch(d -> d != 1)) {
            throw new IllegalArgumentException("layer \"" + target.layerName() + "\" (" + baseLayer().getClass()
                    .getSimpleName() + ") has dilation " + Arrays.toString(isOneDimensional() ? new int[] {dilation()[0]}
                    : dilation()) + "; LoRA on a convolution needs dilation 1 (Hugging Face PEFT builds lora_A without "
                    + "the layer's dilation, so such an adapter's forward pass and its merge disagree). Leave the "
                    + "layer out of targetModules, or use excludeModules");
        }
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

    /** The factor {@code s} applied to {@code B·A}. */
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

    /** Columns of the im2col form, {@code nIn·kH·kW}: the fan-in of a kernel. */
    @JsonIgnore
    public long kernelColumns() {
        long[] w = weightShape();
        return w[1] * w[2] * w[3];
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.put(LORA_A, new long[] {rank, kernelColumns()});
        m.put(LORA_B, new long[] {nOut, rank});
        if (useDora) {
            m.put(LORA_M, new long[] {nOut});
        }
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return LORA_A.equals(key) || LORA_B.equals(key) || (useDora && LORA_M.equals(key));
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (LORA_A.equals(key)) {
            init.initA(view, kernelColumns(), rank);
        } else if (LORA_B.equals(key)) {
            view.assign(0);
        } else if (useDora && LORA_M.equals(key)) {
            // m = ‖W + s·B·A‖ per output channel at the initial A, B; B = 0, so the norms of W
            view.assign(DoraWeights.columnNorms(kernelRows(frozenWeight()).transpose()).reshape(view.shape()));
        } else {
            super.initParam(key, view);
        }
    }

    /** A kernel {@code [nOut, nIn, kH, kW]} as {@code [nOut, nIn·kH·kW]} (a view when it is 'c'-ordered). */
    private INDArray kernelRows(INDArray kernel) {
        return kernel.reshape('c', kernel.size(0), kernelColumns());
    }

    @Override
    public List<SavedTensor> savedTensors() {
        List<SavedTensor> l = super.savedTensors();
        long nIn = weightShape()[1];
        long[] k = {weightShape()[2], weightShape()[3]};
        if (isOneDimensional()) {
            l.add(new SavedTensor(LORA_A, "lora_A.weight", false, new long[] {rank, nIn, k[0]}));
            l.add(new SavedTensor(LORA_B, "lora_B.weight", false, new long[] {nOut, rank, 1}));
        } else {
            l.add(new SavedTensor(LORA_A, "lora_A.weight", false, new long[] {rank, nIn, k[0], k[1]}));
            l.add(new SavedTensor(LORA_B, "lora_B.weight", false, new long[] {nOut, rank, 1, 1}));
        }
        if (useDora) {
            l.add(new SavedTensor(LORA_M, LoraDenseLayer.MAGNITUDE_SUFFIX, false,
                    isOneDimensional() ? new long[] {1, nOut, 1} : new long[] {1, nOut, 1, 1}));
        }
        return l;
    }

    @Override
    public void adoptConfig(PeftConfig config) {
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

    /**
     * {@code W' = W + s·B·A} reshaped to the kernel {@code [nOut, nIn, kH, kW]}; with DoRA
     * {@code V ⊙ (m / ‖V‖)} per output channel, {@code V = W + s·B·A}.
     */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        INDArray delta = params.get(LORA_B).mmul(params.get(LORA_A)).muli(scaling);
        INDArray v = kernelRows(base.dup('c')).addi(delta.castTo(base.dataType()));
        INDArray merged = useDora ? DoraWeights.rescaleRows(v, params.get(LORA_M)) : v;
        return merged.dup('c').reshape('c', base.shape());
    }

    @Override
    protected FrozenConvolutionLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LoraConvolutionLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LoraConvolutionLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", kernel="
                + Arrays.toString(weightShape()) + ", r=" + rank + ", alpha=" + loraAlpha + ", scaling=" + scaling
                + ", dropout=" + loraDropout + (useDora ? ", dora" : "") + ", merged=" + isMerged() + ", enabled="
                + isAdapterEnabled() + ")";
    }
}
