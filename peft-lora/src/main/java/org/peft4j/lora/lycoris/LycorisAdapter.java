package org.peft4j.lora.lycoris;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.annotation.JsonTypeInfo;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;

/**
 * The adapter of one layer of a LyCORIS-style method (LoHa, LoKr): a weight update {@code ΔW}
 * built from small trainable factors, added to the frozen base weight, as Hugging Face PEFT's
 * {@code LycorisLayer} ({@code tuners/lycoris_utils.py}) does. Subclasses say which factors there
 * are and how they make {@code ΔW}; this class holds what every such adapter has: rank {@code r},
 * {@code alpha} (scaling {@code s = alpha / r}), rank and module dropout, and the layer's sizes.
 *
 * <p>Everything is in PEFT's (PyTorch) orientation, so parameters have exactly the shapes of the
 * file's tensors. The update is handled in <em>row form</em>, the form the frozen layers compute
 * in: {@code P = ΔW} as a matrix {@code [out, in·K]} ({@code K = kH·kW} kernel positions of a
 * convolution, 1 for a dense layer), its columns ordered {@code (c, kh, kw)} as PyTorch's
 * {@code reshape} orders them. A dense layer computes {@code z = x·W + b + x·Pᵀ} with
 * {@code x [rows, in]}; a convolution the same with {@code x} its im2col columns
 * {@code [rows, in·K]}.
 *
 * <p>The family's layers ({@link LycorisDenseLayer}, {@link LycorisConvolutionLayer}) hold it as a
 * JSON property (its class recorded, so each method's adapter round-trips) and ask it for
 * everything method-specific. Immutable (a new adapter is made when an adapter with other settings
 * is switched in, {@link #adopt}), so layer clones may share it.
 *
 * <p>Thread-safety: immutable.
 */
@JsonTypeInfo(use = JsonTypeInfo.Id.CLASS, include = JsonTypeInfo.As.PROPERTY, property = "@class")
public abstract class LycorisAdapter implements Serializable {
    private static final long serialVersionUID = 1L;

    @JsonProperty("rank")
    private int rank;
    @JsonProperty("alpha")
    private double alpha;
    @JsonProperty("rankDropout")
    private double rankDropout;
    @JsonProperty("rankDropoutScale")
    private boolean rankDropoutScale;
    @JsonProperty("moduleDropout")
    private double moduleDropout;
    @JsonProperty("outFeatures")
    private long outFeatures;
    @JsonProperty("inFeatures")
    private long inFeatures;
    @JsonProperty("kernel")
    private int[] kernel;

    /** For JSON deserialization. */
    protected LycorisAdapter() {
    }

    /**
     * @param outFeatures output features (output channels)
     * @param inFeatures input features (input channels)
     * @param kernel the kernel as PyTorch states it: empty for a dense layer, {@code [kH, kW]} for a
     *     2D and {@code [k]} for a 1D convolution
     * @param rankDropoutScale whether rank dropout divides the kept rows by the fraction kept
     */
    protected LycorisAdapter(int rank, double alpha, double rankDropout, boolean rankDropoutScale, double moduleDropout,
                             long outFeatures, long inFeatures, int[] kernel) {
        this.rank = rank;
        this.alpha = alpha;
        this.rankDropout = rankDropout;
        this.rankDropoutScale = rankDropoutScale;
        this.moduleDropout = moduleDropout;
        this.outFeatures = outFeatures;
        this.inFeatures = inFeatures;
        this.kernel = kernel.clone();
    }

    public int rank() {
        return rank;
    }

    public double alpha() {
        return alpha;
    }

    /** {@code s = alpha / r}. */
    public double scaling() {
        return alpha / rank;
    }

    /** Probability that an output feature's row of {@code ΔW} is dropped in a training pass. */
    public double rankDropout() {
        return rankDropout;
    }

    /** Whether the kept rows are divided by the fraction kept (LoHa always; LoKr with {@code rank_dropout_scale}). */
    public boolean rankDropoutScale() {
        return rankDropoutScale;
    }

    /** Probability that the whole update is left out of a training pass. */
    public double moduleDropout() {
        return moduleDropout;
    }

    public long outFeatures() {
        return outFeatures;
    }

    public long inFeatures() {
        return inFeatures;
    }

    /** The kernel as PyTorch states it ({@code [kH, kW]}, {@code [k]}), empty for a dense layer. */
    public int[] kernel() {
        return kernel.clone();
    }

    /** {@code K}, the number of kernel positions (1 for a dense layer). */
    public int kernelPositions() {
        int k = 1;
        for (int d : kernel) {
            k *= d;
        }
        return k;
    }

    /** Columns of the row form, {@code in·K}. */
    public long columns() {
        return inFeatures * kernelPositions();
    }

    /**
     * The sizes of a target as LyCORIS sees them, PyTorch's way: {@code [out, in, kernel...]} with
     * the kernel empty for a dense layer, {@code [kH, kW]} for a 2D and {@code [k]} for a 1D
     * convolution.
     *
     * @throws IllegalArgumentException for a target of another kind (the core refuses those first)
     */
    public static long[] targetShape(Target target) {
        if (target.kind() == TargetKind.DENSE) {
            return new long[] {target.nOut(), target.nIn()};
        }
        if (target.kind() == TargetKind.CONVOLUTION) {
            int[] k = ((ConvolutionLayer) target.baseLayer()).getKernelSize();
            return target.baseLayer() instanceof Convolution1DLayer
                    ? new long[] {target.nOut(), target.nIn(), k[0]}
                    : new long[] {target.nOut(), target.nIn(), k[0], k[1]};
        }
        throw new IllegalArgumentException("layer \"" + target.layerName() + "\" is of kind " + target.kind()
                + "; LyCORIS adapters take DENSE and CONVOLUTION layers");
    }

    /** The kernel part of a {@link #targetShape}. */
    protected static int[] kernelOf(long[] targetShape) {
        int[] k = new int[targetShape.length - 2];
        for (int i = 0; i < k.length; i++) {
            k[i] = Math.toIntExact(targetShape[2 + i]);
        }
        return k;
    }

    /**
     * This adapter with the settings {@code config} gives layer {@code layerName} (an adapter of the
     * same layout being switched in, {@link org.peft4j.core.PeftModel#setAdapter}): the same
     * factors, with its alpha and dropout.
     *
     * @throws IllegalArgumentException if {@code config} is of another method or another layout
     */
    public abstract LycorisAdapter adopt(PeftConfig config, String layerName);

    /**
     * Whether {@code other} has the same factors (keys and shapes) as this adapter, so that it can
     * take over this one's parameters.
     */
    protected boolean sameLayout(LycorisAdapter other) {
        Map<String, long[]> a = paramShapes();
        Map<String, long[]> b = other.paramShapes();
        return a.keySet().equals(b.keySet()) && a.keySet().stream().allMatch(k -> java.util.Arrays.equals(a.get(k), b.get(k)));
    }

    /** The trainable factors in flat-vector order, parameter key to shape (PEFT's tensor shapes). */
    public abstract Map<String, long[]> paramShapes();

    /** Writes the initial value of factor {@code key} into {@code view}, as PEFT initialises it. */
    public abstract void initParam(String key, INDArray view);

    /** The factors as file tensors, with PEFT's suffixes. */
    public abstract List<FrozenBaseLayer.SavedTensor> savedTensors();

    /**
     * {@code P = ΔW [out, in·K]} ('c' order, scaling included) from the current factors; a new
     * array, {@code params} is not written.
     */
    public abstract INDArray deltaWeight(Map<String, INDArray> params);

    /**
     * The factors' gradients from {@code dP = dL/dP [out, in·K]}, written into {@code grads}
     * (one view per key of {@link #paramShapes()}).
     */
    public abstract void backward(Map<String, INDArray> params, INDArray dP, Map<String, INDArray> grads);

    /** {@code r=.., alpha=.., rankDropout=.., moduleDropout=..}, for the layers' {@code toString}. */
    protected String describeSettings() {
        return "r=" + rank + ", alpha=" + alpha + ", rankDropout=" + rankDropout
                + (rankDropoutScale ? " (rescaled)" : "") + ", moduleDropout=" + moduleDropout;
    }
}
