package org.peft4j.core.spi;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenEmbeddingLayer;

/**
 * Implementation of {@link FrozenEmbeddingLayer}: {@code z = W[i] + b (+ adapter)} row by row
 * with the frozen table, in the stock layers' input and output layouts. Hooks ({@link FrozenLayerImpl})
 * see one row per token: {@code x} the indices as an int array {@code [rows]} (also
 * {@link #indices()}), {@code z} and {@code delta} {@code [rows, nOut]}, and {@code epsOut} null
 * (indices get no gradient). Written by hand because DL4J's embedding layers keep the table in
 * the parameter vector and always compute its gradient.
 *
 * <p>Thread-safety: like every DL4J layer, one instance is used by one thread at a time.
 */
public class FrozenEmbeddingLayerImpl extends FrozenLayerImpl<FrozenEmbeddingLayer> {
    private static final long serialVersionUID = 1L;

    /** The token indices of the current input, row-major over {@code [batch, T]}. */
    private int[] indices;
    private long batch;
    private long length;

    public FrozenEmbeddingLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** The token indices of the current pass, one per row of {@code z}, row-major over {@code [batch, T]}. */
    protected int[] indices() {
        return indices;
    }

    /** Reads and checks the indices of {@code input}: {@code [batch, 1]}, or {@code [batch, T]} / {@code [batch, 1, T]} for sequences. */
    private void readIndices() {
        FrozenEmbeddingLayer c = layerConf();
        long[] s = input.shape();
        if (c.isSequence()) {
            boolean ok = input.rank() == 2 || (input.rank() == 3 && (s[1] == 1 || s[2] == 1));
            if (!ok) {
                throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects token indices [batch, T] "
                        + "or [batch, 1, T], got " + Arrays.toString(s));
            }
            batch = s[0];
            length = input.length() / batch;
        } else {
            if (input.length() != s[0]) {
                throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\" expects token indices [batch, 1], got "
                        + Arrays.toString(s));
            }
            batch = s[0];
            length = 1;
        }
        indices = input.castTo(DataType.INT).dup('c').data().asInt();
        long vocab = c.vocabularySize();
        for (int i = 0; i < indices.length; i++) {
            if (indices[i] < 0 || indices[i] >= vocab) {
                throw new DL4JInvalidInputException("layer \"" + c.getLayerName() + "\": token index " + indices[i]
                        + " at position " + i + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
    }

    /** The mask as one value per row, {@code [rows, 1]}, or null. */
    private INDArray maskRows() {
        if (maskArray == null) {
            return null;
        }
        if (maskArray.length() != batch * length) {
            throw new IllegalStateException("layer \"" + layerConf().getLayerName() + "\": mask " + Arrays.toString(
                    maskArray.shape()) + " does not have one value per token of input " + Arrays.toString(input.shape()));
        }
        return maskArray.castTo(dataType).dup('c').reshape(batch * length, 1);
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        return preOutputRows(training, false, workspaceMgr);
    }

    private INDArray preOutputRows(boolean training, boolean forBackprop, LayerWorkspaceMgr workspaceMgr) {
        assertInputSet(forBackprop);
        FrozenEmbeddingLayer c = layerConf();
        readIndices();
        INDArray z = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, new long[] {indices.length,
                c.getNOut()}, 'c');
        Nd4j.pullRows(c.effectiveWeight().castTo(dataType), z, 1, indices);
        INDArray b = c.effectiveBias(params);
        if (b != null) {
            z.addiRowVector(b.castTo(dataType).reshape(1, c.getNOut()));
        }
        if (adapterActive()) {
            addAdapterOutput(indexArray(), z, training, forBackprop, workspaceMgr);
        }
        return z;
    }

    private INDArray indexArray() {
        return Nd4j.createFromArray(indices);
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr workspaceMgr) {
        INDArray z = preOutputRows(training, false, workspaceMgr);
        INDArray a = layerConf().getActivationFn().getActivation(z, training);
        INDArray mask = maskRows();
        if (mask != null) {
            a.muliColumnVector(mask);
        }
        return toOutputLayout(a);
    }

    /** Rows {@code [batch·T, nOut]} in the stock layer's output layout. */
    private INDArray toOutputLayout(INDArray rows) {
        FrozenEmbeddingLayer c = layerConf();
        if (!c.isSequence()) {
            return rows;
        }
        INDArray btn = rows.reshape('c', batch, length, c.getNOut());
        return c.outputFormat() == RNNFormat.NWC ? btn : btn.permute(0, 2, 1);
    }

    /** An epsilon in the output layout as rows {@code [batch·T, nOut]}. */
    private INDArray toRows(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        FrozenEmbeddingLayer c = layerConf();
        INDArray e = c.isSequence() && c.outputFormat() != RNNFormat.NWC ? epsilon.permute(0, 2, 1) : epsilon;
        return workspaceMgr.dup(ArrayType.BP_WORKING_MEM, e, 'c').reshape('c', batch * length, c.getNOut());
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr workspaceMgr) {
        FrozenEmbeddingLayer c = layerConf();
        if (c.isMerged()) {
            throw new IllegalStateException("layer \"" + c.getLayerName() + "\" has its adapter merged into the "
                    + "base weight; call unmerge() before training");
        }
        try {
            INDArray z = preOutputRows(true, true, workspaceMgr);
            INDArray delta = c.getActivationFn().backprop(z, toRows(epsilon, workspaceMgr)).getFirst();
            INDArray mask = maskRows();
            if (mask != null) {
                delta.muliColumnVector(mask);
            }
            INDArray x = indexArray();
            boolean active = adapterActive();
            if (active) {
                delta = adapterDelta(x, delta, workspaceMgr);
            }
            Gradient g = new DefaultGradient();
            biasGradient(delta, g);
            if (active) {
                adapterBackward(x, delta, g, null, workspaceMgr);
            } else {
                zeroOtherGradients(g);
            }
            return new Pair<>(g, null);
        } finally {
            afterBackward();
        }
    }

    @Override
    public void clear() {
        super.clear();
        indices = null;
    }
}
