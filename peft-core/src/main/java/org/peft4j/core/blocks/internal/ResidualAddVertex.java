package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.graph.vertex.BaseGraphVertex;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.AddOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.bool.Or;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Implementation of {@link org.peft4j.core.blocks.ResidualAdd}: {@code out = a + b} by one add into
 * the output, the shared 0/1 mask passed on as it is, and each input's gradient a copy of the output
 * gradient (see the configuration class for why and how this differs from DL4J's
 * {@code ElementWiseVertex}).
 *
 * <p>Thread-safety: one instance is used by one thread at a time, like every DL4J vertex.
 */
public final class ResidualAddVertex extends BaseGraphVertex {
    private static final long serialVersionUID = 1L;

    /** Whether each input gets an input gradient; null: both do. */
    private final boolean[] inputGradients;

    public ResidualAddVertex(ComputationGraph graph, String name, int vertexIndex, DataType dataType) {
        this(graph, name, vertexIndex, dataType, null);
    }

    /**
     * @param inputGradients whether each of the two inputs gets an input gradient (null: both);
     *     see {@link GatedResidualAdd}
     */
    public ResidualAddVertex(ComputationGraph graph, String name, int vertexIndex, DataType dataType,
                             boolean[] inputGradients) {
        super(graph, name, vertexIndex, null, null, dataType);
        this.inputGradients = inputGradients == null ? null : inputGradients.clone();
    }

    @Override
    public boolean hasLayer() {
        return false;
    }

    @Override
    public Layer getLayer() {
        return null;
    }

    @Override
    public INDArray doForward(boolean training, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoForward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do forward pass, inputs not set");
        }
        INDArray a = inputs[0].castTo(dataType);
        INDArray b = inputs[1].castTo(dataType);
        if (!a.equalShapes(b)) {
            throw new DL4JInvalidInputException("vertex \"" + vertexName + "\" (ResidualAdd) needs two inputs of one "
                    + "shape, got " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape())
                    + " (use ElementWiseVertex(Op.Add) to broadcast)");
        }
        INDArray sum = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, dataType, a.shape());
        if (Elementwise.handles(a, b, sum)) {
            Elementwise.add(a, b, sum);
        } else {
            Nd4j.exec(new AddOp(new INDArray[] {a, b}, new INDArray[] {sum}));
        }
        return sum;
    }

    @Override
    public Pair<Gradient, INDArray[]> doBackward(boolean tbptt, LayerWorkspaceMgr workspaceMgr) {
        if (!canDoBackward()) {
            throw new IllegalStateException("vertex \"" + vertexName + "\": cannot do backward pass, inputs or "
                    + "epsilon not set");
        }
        // one copy per input: the graph accumulates and masks input gradients in place
        INDArray[] out = new INDArray[2];
        for (int i = 0; i < 2; i++) {
            if (inputGradients == null || inputGradients[i]) {
                out[i] = workspaceMgr.dup(ArrayType.ACTIVATION_GRAD, epsilon);
            }
        }
        return new Pair<>(null, out);
    }

    @Override
    public void setBackpropGradientsViewArray(INDArray backpropGradientsViewArray) {
        if (backpropGradientsViewArray != null) {
            throw new IllegalStateException("vertex \"" + vertexName + "\" has no parameters");
        }
    }

    /**
     * DL4J's element-wise vertex's output mask: none if an input has none, else the element-wise OR
     * of the two as {@link Nd4j#defaultFloatingPointType()}. When both masks hold the same 0s and 1s
     * in that type (the same array, or one per block in the {@code Transformers} graphs) that OR is
     * the first mask itself, which is returned without computing it.
     */
    @Override
    public Pair<INDArray, MaskState> feedForwardMaskArrays(INDArray[] maskArrays, MaskState currentMaskState,
                                                           int minibatchSize) {
        if (maskArrays == null || maskArrays.length == 0) {
            return new Pair<>(null, currentMaskState);
        }
        for (INDArray m : maskArrays) {
            if (m == null) {
                return new Pair<>(null, currentMaskState);
            }
        }
        if (maskArrays.length == 1) {
            return new Pair<>(maskArrays[0], currentMaskState);
        }
        INDArray m0 = maskArrays[0];
        INDArray m1 = maskArrays[1];
        if (m0.dataType() == Nd4j.defaultFloatingPointType() && RowKernels.sameZeroOneMask(m0, m1)) {
            return new Pair<>(m0, currentMaskState);
        }
        INDArray or = Nd4j.createUninitialized(DataType.BOOL, m0.shape());
        Nd4j.getExecutioner().exec(new Or(m0.castTo(DataType.BOOL), m1.castTo(DataType.BOOL), or));
        return new Pair<>(or.castTo(Nd4j.defaultFloatingPointType()), currentMaskState);
    }

    @Override
    public String toString() {
        return "ResidualAddVertex(name=" + vertexName + ")";
    }
}
