package org.peft4j.core;

import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;

/**
 * A convolution ({@link TargetKind#CONVOLUTION}: DL4J's 2D {@link ConvolutionLayer} or its
 * {@link Convolution1DLayer}) whose base weights are frozen outside DL4J's flat parameter vector.
 * It computes what the stock layer computes, with the stock layer's geometry (kernel, stride,
 * padding, dilation, convolution mode, data format and activation, read from a copy of its
 * configuration, {@link #baseLayer()}):
 * <pre>
 *   z = conv(x, W) + b      a = act(z)
 *   x [batch, nIn, H, W] (NCHW; NHWC, and 1D [batch, nIn, T] (NCW) or NWC, as the stock layer takes)
 *   W [nOut, nIn, kH, kW] (kW = 1 for 1D)   b [nOut]
 * </pre>
 * {@link #frozenWeight()} and the {@code base} of {@link #mergedWeight} are this kernel
 * ({@link #kernelFromStock}); {@link #stockWeight} turns it back into the stock layer's
 * {@code W} for {@link PeftModel#mergeAndUnload()}.
 * As rows (what tuner hooks see, {@link org.peft4j.core.spi.FrozenLayerImpl}): with the im2col
 * columns {@code X [batch·outH·outW, nIn·kH·kW]} and {@code W2d = W} reshaped to
 * {@code [nOut, nIn·kH·kW]} and transposed, {@code z = X·W2d + b}. Backward:
 * {@code eps_X = delta·W2dᵀ}, folded back into the input layout by col2im, only when something
 * upstream trains; no weight gradient for {@code W}.
 *
 * <p>A 1D convolution runs as a 2D one over {@code [batch, nIn, T, 1]} with kernel {@code [k, 1]};
 * DL4J's causal mode pads {@code (k − 1)·d} zeros in front of the sequence.
 *
 * <p>Thread-safety: see {@link FrozenBaseLayer}.
 */
public class FrozenConvolutionLayer extends FrozenBaseLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("baseLayer")
    private Layer baseLayer;

    /** For JSON deserialization. */
    protected FrozenConvolutionLayer() {
    }

    /** A frozen copy of {@code target} (of kind {@link TargetKind#CONVOLUTION}) with no adapter. */
    public FrozenConvolutionLayer(Target target) {
        this(target, true);
    }

    /** See {@link FrozenBaseLayer#FrozenBaseLayer(Target, boolean)}. */
    protected FrozenConvolutionLayer(Target target, boolean keepFloatWeight) {
        super(target, keepFloatWeight);
        this.baseLayer = target.baseLayer().clone();
    }

    @Override
    public TargetKind kind() {
        return TargetKind.CONVOLUTION;
    }

    /** A copy of the stock layer's configuration: where the geometry comes from. */
    @JsonIgnore
    public ConvolutionLayer baseLayer() {
        return (ConvolutionLayer) baseLayer;
    }

    /** Whether the base layer is a {@link Convolution1DLayer}. */
    @JsonIgnore
    public boolean isOneDimensional() {
        return baseLayer instanceof Convolution1DLayer;
    }

    /** Kernel {@code [kH, kW]} ({@code [k, 1]} in 1D). */
    @JsonIgnore
    public int[] kernelSize() {
        return pair(baseLayer().getKernelSize(), 1);
    }

    /** Stride {@code [sH, sW]} ({@code [s, 1]} in 1D). */
    @JsonIgnore
    public int[] stride() {
        return pair(baseLayer().getStride(), 1);
    }

    /** Padding {@code [pH, pW]} ({@code [p, 0]} in 1D); not used in {@link ConvolutionMode#Same} and causal modes. */
    @JsonIgnore
    public int[] padding() {
        return pair(baseLayer().getPadding(), 0);
    }

    /** Dilation {@code [dH, dW]} ({@code [d, 1]} in 1D). */
    @JsonIgnore
    public int[] dilation() {
        return pair(baseLayer().getDilation(), 1);
    }

    /** The base layer's convolution mode (Truncate when it set none). */
    @JsonIgnore
    public ConvolutionMode convolutionMode() {
        ConvolutionMode m = baseLayer().getConvolutionMode();
        return m == null ? ConvolutionMode.Truncate : m;
    }

    /** The data format of a 2D convolution (NCHW when it set none). */
    @JsonIgnore
    public CNN2DFormat cnn2dDataFormat() {
        CNN2DFormat f = baseLayer().getCnn2dDataFormat();
        return f == null ? CNN2DFormat.NCHW : f;
    }

    /** The data format of a 1D convolution (NCW when it set none). */
    @JsonIgnore
    public RNNFormat rnnDataFormat() {
        RNNFormat f = isOneDimensional() ? ((Convolution1DLayer) baseLayer).getRnnDataFormat() : null;
        return f == null ? RNNFormat.NCW : f;
    }

    /** DL4J keeps the 1D geometry in the first entry of each pair; the second is the unit width. */
    private int[] pair(int[] stock, int unit) {
        return isOneDimensional() ? new int[] {stock[0], unit} : stock.clone();
    }

    /**
     * The kernel {@code [nOut, nIn, kH, kW]} (element {@code [o, i, h, w]} the weight of input
     * channel {@code i} at tap {@code (h, w)} for output channel {@code o}) from a stock layer's
     * {@code W}. DL4J 1.0.0-M2.1 keeps a 1D kernel of format NCW in a {@code [nOut, nIn, k, 1]} array
     * whose buffer it reads, in 'c' order, as {@code [k, nIn, nOut]} (a reshape, not a permute);
     * every other layout is the kernel itself.
     *
     * @param stock a stock {@link ConvolutionLayer} or {@link Convolution1DLayer} configuration
     */
    public static INDArray kernelFromStock(Layer stock, INDArray w) {
        if (!readsKernelAsTapsFirst(stock)) {
            return w;
        }
        long nOut = w.size(0);
        long nIn = w.size(1);
        long k = w.size(2);
        return w.dup('c').reshape('c', k, nIn, nOut).permute(2, 1, 0).dup('c').reshape('c', nOut, nIn, k, 1);
    }

    private static boolean readsKernelAsTapsFirst(Layer stock) {
        return stock instanceof Convolution1DLayer;
    }

    /** The kernel in the stock layer's {@code W} layout: the inverse of {@link #kernelFromStock}. */
    @Override
    public INDArray stockWeight(INDArray kernel) {
        if (!readsKernelAsTapsFirst(baseLayer)) {
            return kernel;
        }
        long nOut = kernel.size(0);
        long nIn = kernel.size(1);
        long k = kernel.size(2);
        return kernel.dup('c').reshape('c', nOut, nIn, k).permute(2, 1, 0).dup('c').reshape('c', nOut, nIn, k, 1);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        return baseLayer.getOutputType(layerIndex, inputType);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        // the frozen weight fixes nIn
    }

    @Override
    public InputPreProcessor getPreProcessorForInputType(InputType inputType) {
        return baseLayer.getPreProcessorForInputType(inputType);
    }

    @Override
    protected FrozenConvolutionLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new FrozenConvolutionLayerImpl(conf, dataType);
    }

    @Override
    public FrozenConvolutionLayer clone() {
        FrozenConvolutionLayer c = (FrozenConvolutionLayer) super.clone();
        c.baseLayer = baseLayer.clone();
        return c;
    }
}
