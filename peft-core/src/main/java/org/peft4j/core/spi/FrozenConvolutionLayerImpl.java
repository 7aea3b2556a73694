package org.peft4j.core.spi;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.deeplearning4j.util.ConvolutionUtils;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.convolution.Convolution;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.FrozenConvolutionLayer;

/**
 * Implementation of {@link FrozenConvolutionLayer}: the stock convolution as a product of rows,
 * {@code z = X·W2d + b (+ adapter)} with {@code X} the im2col columns of the input
 * {@code [batch·outH·outW, nIn·kH·kW]} and {@code W2d [nIn·kH·kW, nOut]} the frozen kernel; the
 * input gradient is {@code delta·W2dᵀ} folded back into the input layout by col2im (only when
 * something upstream trains), and no weight gradient is computed. Hooks ({@link FrozenLayerImpl})
 * see exactly these rows, so a tuner's dense math applies to a convolution unchanged; a tuner that
 * needs other kernels of the layer's geometry uses {@link #columns()}, {@link #geometry()} and
 * {@link #im2col}/{@link #col2im}.
 *
 * <p>Written by hand because DL4J's convolution layers keep the kernel in the parameter vector and
 * always compute its gradient. It follows DL4J's own ConvolutionLayer (im2col, one product,
 * col2im), with the same output sizes and "same" padding ({@code ConvolutionUtils}).
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 */
public class FrozenConvolutionLayerImpl extends FrozenLayerImpl<FrozenConvolutionLayer> {
    private static final long serialVersionUID = 1L;

    /**
     * The geometry of one pass over an input of {@code batch × channels × inH × inW} (NCHW; 1D as
     * {@code T × 1}, with {@code causalPad} zeros in front of the sequence).
     */
    public record Geometry(int batch, int channels, int inH, int inW, int outH, int outW, int[] kernel, int[] stride,
                           int[] padding, int[] dilation, boolean same, int causalPad) {

        /** Rows of the row form: {@code batch·outH·outW}. */
        public long rows() {
            return (long) batch * outH * outW;
        }

        /** Columns of {@code X}: {@code channels·kH·kW}. */
        public long columns() {
            return (long) channels * kernel[0] * kernel[1];
        }
    }

    private Geometry geometry;
    private INDArray columns;

    public FrozenConvolutionLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** The geometry of the current pass. */
    protected Geometry geometry() {
        return geometry;
    }

    /** The im2col columns {@code X [rows, nIn·kH·kW]} of the current pass's input. */
    protected INDArray columns() {
        return columns;
    }

    /** The input as NCHW {@code [batch, nIn, H, W]}; a 1D input as {@code [batch, nIn, causalPad + T, 1]}. */
    private INDArray input4d() {
        FrozenConvolutionLayer c = layerConf();
        INDArray x = input.castTo(dataType);
        if (c.isOneDimensional()) {
            if (x.rank() != 3) {
                throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects a sequence [batch, nIn, T] "
                        + "(" + c.rnnDataFormat() + "), got " + Arrays.toString(x.shape()));
            }
            INDArray ncw = c.rnnDataFormat() == RNNFormat.NWC ? x.permute(0, 2, 1) : x;
            checkChannels(ncw);
            int pad = causalPad();
            if (pad > 0) {
                INDArray padded = Nd4j.zeros(dataType, ncw.size(0), ncw.size(1), ncw.size(2) + pad);
                padded.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(pad, pad + ncw.size(2))).assign(ncw);
                ncw = padded;
            }
            return ncw.dup('c').reshape('c', ncw.size(0), ncw.size(1), ncw.size(2), 1);
        }
        if (x.rank() != 4) {
            throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects images [batch, nIn, H, W] ("
                    + c.cnn2dDataFormat() + "), got " + Arrays.toString(x.shape()));
        }
        INDArray nchw = c.cnn2dDataFormat() == CNN2DFormat.NHWC ? x.permute(0, 3, 1, 2) : x;
        checkChannels(nchw);
        return nchw;
    }

    private void checkChannels(INDArray x) {
        if (x.size(1) != layerConf().getNIn()) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\" expects " + layerConf().getNIn()
                    + " input channels, got input " + Arrays.toString(input.shape()));
        }
    }

    private int causalPad() {
        FrozenConvolutionLayer c = layerConf();
        return c.isOneDimensional() && c.convolutionMode() == ConvolutionMode.Causal
                ? (c.kernelSize()[0] - 1) * c.dilation()[0] : 0;
    }

    /** The geometry of a pass over {@code x4} (as {@link #input4d()} returns it). */
    private Geometry geometryOf(INDArray x4) {
        FrozenConvolutionLayer c = layerConf();
        int[] k = c.kernelSize();
        int[] s = c.stride();
        int[] d = c.dilation();
        ConvolutionMode mode = c.convolutionMode() == ConvolutionMode.Causal ? ConvolutionMode.Truncate
                : c.convolutionMode();
        int[] pad;
        int[] out;
        int h = (int) x4.size(2);
        int w = (int) x4.size(3);
        if (mode == ConvolutionMode.Same) {
            out = ConvolutionUtils.getOutputSize(x4, k, s, null, mode, d, CNN2DFormat.NCHW);
            pad = ConvolutionUtils.getSameModeTopLeftPadding(out, new int[] {h, w}, k, s, d);
        } else {
            pad = causalPad() > 0 ? new int[] {0, 0} : c.padding();
            out = ConvolutionUtils.getOutputSize(x4, k, s, pad, mode, d, CNN2DFormat.NCHW);
        }
        return new Geometry((int) x4.size(0), (int) x4.size(1), h, w, out[0], out[1], k, s, pad, d,
                mode == ConvolutionMode.Same, causalPad());
    }

    /**
     * The im2col columns of {@code x4} for geometry {@code g}: {@code [batch·outH·outW, channels·kH·kW]},
     * column index {@code (channel, kh, kw)} in 'c' order, matching a kernel {@code [*, channels, kH, kW]}
     * reshaped in 'c' order.
     */
    protected INDArray im2col(INDArray x4, Geometry g, ArrayType type, LayerWorkspaceMgr workspaceMgr) {
        INDArray col = workspaceMgr.createUninitialized(type, dataType,
                new long[] {g.batch(), g.outH(), g.outW(), g.channels(), g.kernel()[0], g.kernel()[1]}, 'c');
        Convolution.im2col(x4, g.kernel()[0], g.kernel()[1], g.stride()[0], g.stride()[1], g.padding()[0],
                g.padding()[1], g.dilation()[0], g.dilation()[1], g.same(), col.permute(0, 3, 4, 5, 1, 2));
        return col.reshape('c', g.rows(), g.columns());
    }

    /** The inverse of {@link #im2col} for gradients: columns {@code [rows, channels·kH·kW]} summed into NCHW {@code [batch, channels, inH, inW]}. */
    protected INDArray col2im(INDArray cols, Geometry g, ArrayType type, LayerWorkspaceMgr workspaceMgr) {
        INDArray col6 = cols.dup('c').reshape('c', g.batch(), g.outH(), g.outW(), g.channels(), g.kernel()[0],
                g.kernel()[1]).permute(0, 3, 4, 5, 1, 2);
        INDArray out = workspaceMgr.create(type, dataType, new long[] {g.batch(), g.channels(), g.inH(), g.inW()}, 'c');
        Convolution.col2im(col6, out, g.stride()[0], g.stride()[1], g.padding()[0], g.padding()[1], g.inH(), g.inW(),
                g.dilation()[0], g.dilation()[1]);
        return out;
    }

    /** The frozen kernel (merged while merged) as {@code [nOut, nIn·kH·kW]}: {@code W2dᵀ}. */
    private INDArray kernelRows() {
        INDArray w = layerConf().effectiveWeight().castTo(dataType);
        return w.reshape('c', w.size(0), w.length() / w.size(0));
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        return preOutputRows(training, false, workspaceMgr);
    }

    private INDArray preOutputRows(boolean training, boolean forBackprop, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(forBackprop);
        applyDropOutIfNecessary(training, workspaceMgr);
        FrozenConvolutionLayer c = layerConf();
        INDArray x4 = input4d();
        geometry = geometryOf(x4);
        columns = im2col(x4, geometry, forBackprop ? ArrayType.BP_WORKING_MEM : ArrayType.FF_WORKING_MEM, workspaceMgr);
        boolean active = adapterActive();
        INDArray z = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType,
                new long[] {geometry.rows(), c.getNOut()}, 'c');
        Nd4j.gemm(active ? adapterInput(columns, training, workspaceMgr) : columns, kernelRows(), z, false, true,
                1.0, 0.0);
        INDArray b = c.effectiveBias(params);
        if (b != null) {
            z.addiRowVector(b.castTo(dataType).reshape(1, c.getNOut()));
        }
        if (active) {
            addAdapterOutput(columns, z, training, forBackprop, workspaceMgr);
        }
        return z;
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        INDArray z = preOutputRows(training, false, workspaceMgr);
        INDArray a = layerConf().getActivationFn().getActivation(z, training);
        INDArray mask = outputMaskRows();
        if (mask != null) {
            a.muliColumnVector(mask);
        }
        return toOutputLayout(a);
    }

    /** 1D: the mask reduced to the output length as one value per row {@code [rows, 1]}; else null. */
    private INDArray outputMaskRows() {
        FrozenConvolutionLayer c = layerConf();
        if (maskArray == null || !c.isOneDimensional()) {
            return null;
        }
        INDArray reduced = reduceMask(maskArray);
        return reduced.castTo(dataType).dup('c').reshape(geometry.rows(), 1);
    }

    private INDArray reduceMask(INDArray mask) {
        FrozenConvolutionLayer c = layerConf();
        if (c.isOneDimensional()) {
            return ConvolutionUtils.cnn1dMaskReduction(mask, c.kernelSize()[0], c.stride()[0], c.padding()[0],
                    c.dilation()[0], c.convolutionMode());
        }
        return ConvolutionUtils.cnn2dMaskReduction(mask, c.kernelSize(), c.stride(), c.padding(), c.dilation(),
                c.convolutionMode());
    }

    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArray(INDArray maskArray, MaskState currentMaskState,
                                                          int minibatchSize) {
        setMaskArray(maskArray);
        if (maskArray == null) {
            return new Pair<>(null, currentMaskState);
        }
        return new Pair<>(reduceMask(maskArray), currentMaskState);
    }

    /** Rows {@code [batch·outH·outW, nOut]} in the stock layer's output layout. */
    private INDArray toOutputLayout(INDArray rows) {
        FrozenConvolutionLayer c = layerConf();
        Geometry g = geometry;
        if (c.isOneDimensional()) {
            INDArray btn = rows.reshape('c', g.batch(), g.outH(), c.getNOut());
            return c.rnnDataFormat() == RNNFormat.NWC ? btn : btn.permute(0, 2, 1);
        }
        INDArray nhwc = rows.reshape('c', g.batch(), g.outH(), g.outW(), c.getNOut());
        return c.cnn2dDataFormat() == CNN2DFormat.NHWC ? nhwc : nhwc.permute(0, 3, 1, 2);
    }

    /** An epsilon in the output layout as rows {@code [batch·outH·outW, nOut]}. */
    private INDArray toRows(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        FrozenConvolutionLayer c = layerConf();
        INDArray e;
        if (c.isOneDimensional()) {
            e = c.rnnDataFormat() == RNNFormat.NWC ? epsilon : epsilon.permute(0, 2, 1);
        } else {
            e = c.cnn2dDataFormat() == CNN2DFormat.NHWC ? epsilon : epsilon.permute(0, 2, 3, 1);
        }
        return workspaceMgr.dup(ArrayType.BP_WORKING_MEM, e, 'c').reshape('c', geometry.rows(), c.getNOut());
    }

    /** The NCHW input gradient (of the padded 1D input) in the stock layer's input layout. */
    private INDArray toInputLayout(INDArray eps4, LayerWorkspaceMgr workspaceMgr) {
        FrozenConvolutionLayer c = layerConf();
        INDArray e;
        if (c.isOneDimensional()) {
            INDArray ncw = eps4.reshape('c', eps4.size(0), eps4.size(1), eps4.size(2));
            int pad = geometry.causalPad();
            if (pad > 0) {
                ncw = ncw.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(pad, ncw.size(2)));
            }
            e = c.rnnDataFormat() == RNNFormat.NWC ? ncw.permute(0, 2, 1) : ncw;
        } else {
            e = c.cnn2dDataFormat() == CNN2DFormat.NHWC ? eps4.permute(0, 2, 3, 1) : eps4;
        }
        return workspaceMgr.dup(ArrayType.ACTIVATION_GRAD, e, 'c');
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        FrozenConvolutionLayer c = layerConf();
        if (c.isMerged()) {
            throw new IllegalStateException("layer \"" + c.getLayerName() + "\" has its adapter merged into the "
                    + "base weight; call unmerge() before training");
        }
        try {
            INDArray z = preOutputRows(true, true, workspaceMgr);
            INDArray delta = c.getActivationFn().backprop(z, toRows(epsilon, workspaceMgr)).getFirst();
            INDArray mask = outputMaskRows();
            if (mask != null) {
                delta.muliColumnVector(mask);
            }
            INDArray x = columns;
            boolean active = adapterActive();
            if (active) {
                delta = adapterDelta(x, delta, workspaceMgr);
            }
            Gradient g = new DefaultGradient();
            biasGradient(delta, g);
            INDArray epsCols = null;
            if (c.isInputGradient()) {
                epsCols = workspaceMgr.createUninitialized(ArrayType.BP_WORKING_MEM, dataType,
                        new long[] {geometry.rows(), geometry.columns()}, 'c');
                Nd4j.gemm(delta, kernelRows(), epsCols, false, false, 1.0, 0.0);
            }
            if (active) {
                adapterBackward(x, delta, g, epsCols, workspaceMgr);
            } else {
                zeroOtherGradients(g);
            }
            INDArray epsNext = null;
            if (epsCols != null) {
                epsNext = backpropDropOutIfPresent(toInputLayout(col2im(epsCols, geometry, ArrayType.BP_WORKING_MEM,
                        workspaceMgr), workspaceMgr));
            }
            return new Pair<>(g, epsNext);
        } finally {
            afterBackward();
        }
    }

    @Override
    public void clear() {
        super.clear();
        columns = null;
        geometry = null;
    }
}
