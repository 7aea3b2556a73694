package org.peft4j.core.mpt.internal;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.DefaultGradient;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.layers.BaseLayer;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.mpt.MultitaskPromptLayer;

/**
 * Implementation of {@link MultitaskPromptLayer} (formulas there): the task prompt of each task
 * present in the batch is computed once, {@code Q_k = V_k·U_k}, {@code E ⊙ Q_k}. Hand-written:
 * DL4J has no layer that selects per-example factors by an id and multiplies them element-wise
 * into a shared table.
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J layer.
 */
public final class MultitaskPromptLayerImpl extends BaseLayer<MultitaskPromptLayer> {
    private static final long serialVersionUID = 1L;

    public MultitaskPromptLayerImpl(NeuralNetConfiguration conf, DataType dataType) {
        super(conf, dataType);
    }

    /** The task id of every example, checked to be a whole number in {@code [0, n)}. */
    private int[] tasks(INDArray x) {
        if (x.rank() > 2 || (x.rank() == 2 && x.size(1) != 1)) {
            throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\" expects task ids [batch, 1], "
                    + "got " + Arrays.toString(x.shape()));
        }
        double[] v = x.castTo(DataType.DOUBLE).dup('c').data().asDouble();
        int n = layerConf().numTasks();
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] != Math.rint(v[i]) || v[i] < 0 || v[i] >= n) {
                throw new DL4JInvalidInputException("layer \"" + layerConf().getLayerName() + "\": task id " + v[i]
                        + " of example " + i + " is not one of the " + n + " tasks 0 … " + (n - 1));
            }
            out[i] = (int) v[i];
        }
        return out;
    }

    /** {@code U_k [r, p]} of task {@code k}. */
    private INDArray u(int k) {
        int p = layerConf().numVirtualTokens();
        return getParam(MultitaskPromptLayer.COLS_KEY).get(NDArrayIndex.all(), NDArrayIndex.interval((long) k * p,
                (long) (k + 1) * p));
    }

    /** {@code V_k [d, r]} of task {@code k}. */
    private INDArray v(int k) {
        int r = layerConf().numRanks();
        return getParam(MultitaskPromptLayer.ROWS_KEY).get(NDArrayIndex.all(), NDArrayIndex.interval((long) k * r,
                (long) (k + 1) * r));
    }

    /** {@code Q_k = V_k·U_k [d, p]}. */
    private INDArray q(int k) {
        return v(k).mmul(u(k));
    }

    @Override
    public INDArray activate(boolean training, LayerWorkspaceMgr mgr) {
        assertInputSet(false);
        int[] tasks = tasks(input);
        INDArray e = getParam(MultitaskPromptLayer.PROMPT_KEY);
        long d = e.size(0);
        long p = e.size(1);
        INDArray y = mgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, new long[] {tasks.length, d, p}, 'c');
        Map<Integer, INDArray> prompts = new LinkedHashMap<>();
        for (int i = 0; i < tasks.length; i++) {
            INDArray pk = prompts.computeIfAbsent(tasks[i], k -> q(k).muli(e));
            y.slice(i).assign(pk);
        }
        return y;
    }

    @Override
    public Pair<Gradient, INDArray> backpropGradient(INDArray epsilon, LayerWorkspaceMgr mgr) {
        assertInputSet(true);
        int[] tasks = tasks(input);
        INDArray eps = epsilon.castTo(dataType);
        INDArray e = getParam(MultitaskPromptLayer.PROMPT_KEY);
        Map<Integer, INDArray> summed = new LinkedHashMap<>();
        for (int i = 0; i < tasks.length; i++) {
            INDArray g = eps.slice(i);
            summed.merge(tasks[i], g.dup('c'), INDArray::addi);
        }
        INDArray gE = gradientViews.get(MultitaskPromptLayer.PROMPT_KEY);
        INDArray gU = gradientViews.get(MultitaskPromptLayer.COLS_KEY);
        INDArray gV = gradientViews.get(MultitaskPromptLayer.ROWS_KEY);
        gE.assign(0);
        gU.assign(0);
        gV.assign(0);
        int p = layerConf().numVirtualTokens();
        int r = layerConf().numRanks();
        for (Map.Entry<Integer, INDArray> en : summed.entrySet()) {
            int k = en.getKey();
            INDArray gk = en.getValue();
            gE.addi(gk.mul(q(k)));
            INDArray dq = gk.mul(e);
            gV.get(NDArrayIndex.all(), NDArrayIndex.interval((long) k * r, (long) (k + 1) * r)).assign(dq.mmul(u(k).transpose()));
            gU.get(NDArrayIndex.all(), NDArrayIndex.interval((long) k * p, (long) (k + 1) * p)).assign(v(k).transpose().mmul(dq));
        }
        Gradient grad = new DefaultGradient();
        grad.gradientForVariable().put(MultitaskPromptLayer.PROMPT_KEY, gE);
        grad.gradientForVariable().put(MultitaskPromptLayer.COLS_KEY, gU);
        grad.gradientForVariable().put(MultitaskPromptLayer.ROWS_KEY, gV);
        if (!layerConf().isInputGradient()) {
            return new Pair<>(grad, null);
        }
        return new Pair<>(grad, mgr.create(ArrayType.ACTIVATION_GRAD, dataType, input.shape(), 'c'));
    }

    @Override
    protected INDArray preOutput(boolean training, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("no pre-output; call activate");
    }

    @Override
    public boolean isPretrainLayer() {
        return false;
    }

    @Override
    public void fit(INDArray input, LayerWorkspaceMgr workspaceMgr) {
        throw new UnsupportedOperationException("layer-wise fit is not supported; fit the ComputationGraph");
    }
}
