package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.blocks.Normalization;
import org.peft4j.core.internal.InputGradientOnly;

/**
 * Implementation of {@link org.peft4j.core.blocks.LayerNorm} and {@link org.peft4j.core.blocks.RmsNorm}
 * (formulas there). Works on rows {@code [b·T, f]} with {@link NormKernel}. A float32 training
 * forward pass keeps each row's mean and inverse deviation (two floats a row) for the backward pass
 * of the same input, which otherwise computes them again (two more passes over every row); other
 * passes recompute them. Frozen (wrapped by {@link org.peft4j.core.FrozenParamsLayer}, as every
 * LayerNorm is under LoRA), the layer computes only the input gradient, not the discarded gradients
 * of the gain and bias.
 *
 * <p>Thread-safety: one instance is used by one thread at a time.
 */
public final class NormalizationImpl extends BlockLayerImpl<Normalization> implements InputGradientOnly {
    private static final long serialVersionUID = 1L;

    /** Whether the parameter gradients are discarded ({@link #inputGradientOnly()}). */
    private boolean inputGradientOnly;
    /**
     * Row statistics of the last float32 training forward pass ({@link NormKernel}'s layout), valid
     * for the backward pass while {@link #input} is still {@link #statsInput}; the array is reused.
     */
    private float[] stats;
    private INDArray statsInput;

    public NormalizationImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    private void check(INDArray x) {
        long f = layerConf().getNOut();
        if ((x.rank() != 2 && x.rank() != 3) || x.size(1) != f) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\" expects input [batch, "
                    + f + ", time] or [batch, " + f + "], got " + Arrays.toString(x.shape()));
        }
    }

    /** The parameter {@code key} as doubles (a small contiguous view of the flat parameter vector). */
    private double[] param(String key) {
        INDArray p = getParam(key);
        return HostRows.of(HostRows.accessible(p) ? p : p.dup('c')).readAll();
    }

    /**
     * Rows {@code [b·T, f]}, 'c' ordered and contiguous, float32 or float64: the input itself when it
     * already is (half-precision networks are computed in float32).
     */
    private static INDArray rows(INDArray x) {
        INDArray r = Layouts.rows(x);
        if (r.dataType() != DataType.FLOAT && r.dataType() != DataType.DOUBLE) {
            r = r.castTo(DataType.FLOAT);
        }
        return HostRows.cRows(r);
    }

    /** A 'c' array for the kernel's output: in the network's type, or float32 for half precision. */
    private INDArray output(ArrayType type, long[] shape, LayerWorkspaceMgr workspaceMgr) {
        DataType t = dataType == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        return workspaceMgr.createUninitialized(type, t, shape, 'c');
    }

    @Override
    protected INDArray forward(INDArray x, boolean training, LayerWorkspaceMgr workspaceMgr) {
        check(x);
        Normalization c = layerConf();
        INDArray x2 = rows(x);
        INDArray y = output(ArrayType.ACTIVATIONS, x2.shape(), workspaceMgr);
        float[] keep = null;
        statsInput = null;
        if (training && x2.length() <= Integer.MAX_VALUE) {
            int n = 2 * (int) x2.size(0);
            keep = stats != null && stats.length >= n ? stats : new float[n];
            stats = keep;
        }
        if (NormKernel.forward(x2, y, param(Normalization.GAIN_KEY),
                c.centered() ? param(Normalization.BIAS_KEY) : null, c.eps(), keep)) {
            statsInput = input;
        }
        return Layouts.unrows(y.castTo(dataType), x.shape());
    }

    @Override
    protected INDArray backward(INDArray x, INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        check(x);
        Normalization c = layerConf();
        INDArray x2 = rows(x);
        INDArray dy = rows(epsilon);
        INDArray dx = output(ArrayType.ACTIVATION_GRAD, x2.shape(), workspaceMgr);
        double[] g = param(Normalization.GAIN_KEY);
        float[] kept = statsInput != null && statsInput == input ? stats : null;
        statsInput = null;
        if (inputGradientOnly) {
            NormKernel.backward(x2, dy, dx, g, c.centered(), c.eps(), null, null, kept);
            return Layouts.unrows(dx.castTo(dataType), x.shape());
        }
        double[] dg = new double[g.length];
        double[] db = c.centered() ? new double[g.length] : null;
        NormKernel.backward(x2, dy, dx, g, c.centered(), c.eps(), dg, db, kept);
        write(grad(Normalization.GAIN_KEY), dg);
        if (db != null) {
            write(grad(Normalization.BIAS_KEY), db);
        }
        return Layouts.unrows(dx.castTo(dataType), x.shape());
    }

    @Override
    public void inputGradientOnly() {
        inputGradientOnly = true;
    }

    @Override
    public void clear() {
        super.clear();
        statsInput = null;
    }

    /** Overwrites a gradient view with {@code values}. */
    private static void write(INDArray view, double[] values) {
        if (HostRows.accessible(view)) {
            HostRows.of(view).write(0, values, values.length);
        } else {
            view.assign(Nd4j.createFromArray(values).reshape(view.shape()).castTo(view.dataType()));
        }
    }
}
