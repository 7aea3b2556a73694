package org.peft4j.core.blocks.internal;

import java.util.Arrays;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.blocks.ResidualAdd;

/**
 * A {@link ResidualAdd} that passes an input gradient to only one of its two inputs: what
 * {@code Peft.wrap} puts in place of a residual add when nothing at or above one input trains
 * (say {@code x + attention(x)} right above a frozen embedding with LoRA in the attention). The
 * gated input gets a null epsilon, which, when every other consumer of that input passes null too,
 * lets DL4J skip the whole frozen branch below: the wrapped MiniLM-sized encoder's LoRA q,v step
 * then no longer computes layer 0's q and v input gradients ([512,384]·[384,384] each; k, frozen,
 * already passed none) nor their sum into the embedding's LayerNorm. Only wrapped graphs hold it; the user's graph keeps its {@code ResidualAdd}.
 *
 * <p>Forward and the passed gradient are those of {@link ResidualAdd}.
 *
 * <p>Thread-safety: not mutated after a graph is built from it.
 */
public class GatedResidualAdd extends ResidualAdd {
    private static final long serialVersionUID = 1L;

    @JsonProperty("inputGradients")
    private boolean[] inputGradients;

    /** For JSON deserialization. */
    protected GatedResidualAdd() {
        this.inputGradients = new boolean[] {true, true};
    }

    /**
     * @param first whether the first input gets an input gradient
     * @param second whether the second input gets one
     */
    public GatedResidualAdd(boolean first, boolean second) {
        this.inputGradients = new boolean[] {first, second};
    }

    /** Whether each of the two inputs gets an input gradient (a copy). */
    public boolean[] inputGradients() {
        return inputGradients.clone();
    }

    @Override
    public GatedResidualAdd clone() {
        return new GatedResidualAdd(inputGradients[0], inputGradients[1]);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GatedResidualAdd g && Arrays.equals(inputGradients, g.inputGradients);
    }

    @Override
    public int hashCode() {
        return 31 * GatedResidualAdd.class.getName().hashCode() + Arrays.hashCode(inputGradients);
    }

    @Override
    public org.deeplearning4j.nn.graph.vertex.GraphVertex instantiate(ComputationGraph graph, String name, int idx,
            INDArray paramsView, boolean initializeParams, DataType networkDatatype) {
        return new ResidualAddVertex(graph, name, idx, networkDatatype, inputGradients);
    }

    @Override
    public String toString() {
        return "GatedResidualAdd(inputGradients=" + Arrays.toString(inputGradients) + ")";
    }
}
