package org.peft4j.core.blocks;

import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.inputs.InvalidInputTypeException;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.nn.conf.memory.MemoryReport;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.blocks.internal.ResidualAddVertex;

/**
 * A residual connection {@code out = a + b} of two activations of the same shape: DL4J's
 * {@code ElementWiseVertex(Op.Add)} for two inputs, with the same output, input gradients and
 * output mask, and less work per call:
 * <ul>
 *   <li>forward, the sum is written by one add into the output (DL4J's vertex copies {@code a} into
 *       it first, then adds {@code b} in place);</li>
 *   <li>masks, when both inputs carry the same 0/1 mask (the per-row masks of the
 *       {@link Transformers} graphs, one per block), that mask is the output mask as it is; DL4J's
 *       vertex computes the element-wise OR of the two through boolean casts and three new arrays
 *       on every call. Masks that differ get that OR, as DL4J computes it.</li>
 * </ul>
 * The input gradient is the output gradient for both inputs (each its own copy, as in DL4J: the
 * graph sums and masks gradients in place).
 *
 * <p>Why: the {@link Transformers} builders put two residual adds in every block; DL4J's vertex took
 * 3.3 % of a batch-1 forward of a MiniLM-sized encoder at one thread (1.6 % of it the mask OR) and
 * 1.6 % of a LoRA training step. The same encoder with either vertex, in one JVM, alternating, one
 * thread: batch-1 forward 22.0 → 21.1 ms (median), LoRA q,v step 258 → 256 ms. Graphs saved with
 * DL4J's vertex keep it and load unchanged.
 *
 * <p>Inputs of different shapes (DL4J's vertex would broadcast them) are refused with an exception
 * naming the vertex; use {@code ElementWiseVertex} for a broadcasting add.
 *
 * <p>Thread-safety: immutable (no fields).
 */
public class ResidualAdd extends GraphVertex {
    private static final long serialVersionUID = 1L;

    /** A residual add; the configuration has no settings. */
    public ResidualAdd() {
    }

    @Override
    public ResidualAdd clone() {
        return new ResidualAdd();
    }

    @Override
    public boolean equals(Object o) {
        return o != null && o.getClass() == ResidualAdd.class;
    }

    @Override
    public int hashCode() {
        return ResidualAdd.class.getName().hashCode();
    }

    @Override
    public long numParams(boolean backprop) {
        return 0;
    }

    @Override
    public int minVertexInputs() {
        return 2;
    }

    @Override
    public int maxVertexInputs() {
        return 2;
    }

    @Override
    public org.deeplearning4j.nn.graph.vertex.GraphVertex instantiate(ComputationGraph graph, String name, int idx,
            INDArray paramsView, boolean initializeParams, DataType networkDatatype) {
        return new ResidualAddVertex(graph, name, idx, networkDatatype);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType... vertexInputs) throws InvalidInputTypeException {
        if (vertexInputs == null || vertexInputs.length != 2) {
            throw new InvalidInputTypeException("ResidualAdd takes exactly 2 inputs, got "
                    + (vertexInputs == null ? 0 : vertexInputs.length));
        }
        // DL4J's element-wise add gives the type (it reconciles, e.g., recurrent inputs of known and unknown length)
        return new ElementWiseVertex(ElementWiseVertex.Op.Add).getOutputType(layerIndex, vertexInputs);
    }

    @Override
    public MemoryReport getMemoryReport(InputType... inputTypes) {
        InputType out = getOutputType(-1, inputTypes);
        return new LayerMemoryReport.Builder(null, ResidualAdd.class, inputTypes[0], out)
                .standardMemory(0, 0).workingMemory(0, 0, 0, 0).cacheMemory(0, 0).build();
    }

    @Override
    public String toString() {
        return "ResidualAdd()";
    }
}
