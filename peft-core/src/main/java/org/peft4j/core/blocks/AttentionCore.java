package org.peft4j.core.blocks;

import java.util.Objects;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.inputs.InvalidInputTypeException;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.nn.conf.memory.MemoryReport;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.blocks.internal.AttentionCoreVertex;

/**
 * The parameter-free core of a decomposed multi-head attention: a graph vertex with three inputs,
 * queries, keys and values, already projected (by separate dense layers, so that every tuner
 * adapts them like any other dense layer), and one output:
 * <pre>
 *   q, k [b, h·d, T]   v [b, h·dv, T]   →   out [b, h·dv, T]
 *   out_h = V_h · softmax_keys(Q_hᵀK_h / √d + mask)ᵀ        (head h = features h·d … h·d + d − 1)
 * </pre>
 * Each input may be a sequence in DL4J's recurrent layout {@code [b, f, T]} (NCW) or, as a dense
 * layer applied per time step emits it, DL4J's time-distributed rows {@code [b·T, f]} (row
 * {@code b + B·t}, the layout of {@code RnnToFeedForwardPreProcessor}); the input gradients come back
 * in each input's own layout. The output is NCW, or time-distributed rows when the core is built
 * with {@code rowsOutput} (as {@link Transformers} builds it, so that the dense layer after it reads
 * it with no conversion).
 *
 * <p>Masks: the key-padding mask is the feature mask reaching the keys input (DL4J's
 * {@code feedForwardMaskArrays}: {@code [b, T]}, or {@code [b·T, 1]} after a per-time-step dense
 * layer), 1 = keep; with {@link #isCausal()} query {@code i} sees keys {@code j ≤ i} only. Masked
 * keys get zero probability; a query left with no key outputs 0 (never NaN). The output mask is
 * the key mask as {@code [b, T]}. Backward is hand-written (see
 * {@code org.peft4j.core.blocks.internal.AttentionKernel}): a SameDiff vertex would return doubled
 * gradients in DL4J 1.0.0-M2.1.
 *
 * <p>Shifted sparse attention ({@link #withShiftedSparseAttention}, LongLoRA's S²-Attn): while
 * training, a core with a group size {@code G > 0} attends within groups of {@code G} positions,
 * half of the heads on groups shifted by {@code G/2} (see
 * {@code org.peft4j.core.blocks.internal.ShiftedSparseAttention}); a sequence of at most {@code G}
 * positions is one group, which is full attention. Inference ({@code output}, training false)
 * always uses full attention on the same inputs, so a model trained this way is used as it was
 * built.
 *
 * <p>Thread-safety: a configuration is immutable.
 */
public class AttentionCore extends GraphVertex {
    private static final long serialVersionUID = 1L;

    @JsonProperty("heads")
    private int heads;
    @JsonProperty("causal")
    private boolean causal;
    @JsonProperty("shiftedSparseGroupSize")
    private int shiftedSparseGroupSize;
    @JsonProperty("rowsOutput")
    private boolean rowsOutput;

    /** For JSON deserialization. */
    protected AttentionCore() {
    }

    /**
     * @param heads number of heads; the query/key and value widths must be divisible by it
     * @param causal whether query {@code i} attends to keys {@code j ≤ i} only
     */
    public AttentionCore(int heads, boolean causal) {
        this(heads, causal, false);
    }

    /**
     * @param heads number of heads; the query/key and value widths must be divisible by it
     * @param causal whether query {@code i} attends to keys {@code j ≤ i} only
     * @param rowsOutput whether the output is DL4J's time-distributed rows {@code [b·T, h·dv]} (row
     *     {@code b + B·t}) instead of an NCW sequence {@code [b, h·dv, T]}
     */
    public AttentionCore(int heads, boolean causal, boolean rowsOutput) {
        if (heads <= 0) {
            throw new IllegalArgumentException("AttentionCore: heads must be positive, got " + heads);
        }
        this.heads = heads;
        this.causal = causal;
        this.rowsOutput = rowsOutput;
    }

    /**
     * This core with shifted sparse attention of group size {@code groupSize} while training (0:
     * full attention always).
     *
     * @throws IllegalArgumentException if {@code groupSize} is not 0 or an even number ≥ 2, or the
     *     number of heads is odd
     */
    public AttentionCore withShiftedSparseAttention(int groupSize) {
        if (groupSize != 0) {
            org.peft4j.core.blocks.internal.ShiftedSparseAttention.check(heads, groupSize);
        }
        AttentionCore c = new AttentionCore(heads, causal, rowsOutput);
        c.shiftedSparseGroupSize = groupSize;
        return c;
    }

    /** The S²-Attn group size used while training, or 0 for full attention always. */
    public int getShiftedSparseGroupSize() {
        return shiftedSparseGroupSize;
    }

    public int getHeads() {
        return heads;
    }

    public boolean isCausal() {
        return causal;
    }

    /** Whether the output is time-distributed rows {@code [b·T, h·dv]} rather than NCW {@code [b, h·dv, T]}. */
    public boolean isRowsOutput() {
        return rowsOutput;
    }

    @Override
    public AttentionCore clone() {
        return withShiftedSparseAttention(shiftedSparseGroupSize);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttentionCore && ((AttentionCore) o).heads == heads && ((AttentionCore) o).causal == causal
                && ((AttentionCore) o).rowsOutput == rowsOutput
                && ((AttentionCore) o).shiftedSparseGroupSize == shiftedSparseGroupSize;
    }

    @Override
    public int hashCode() {
        return Objects.hash(heads, causal, rowsOutput, shiftedSparseGroupSize);
    }

    @Override
    public long numParams(boolean backprop) {
        return 0;
    }

    @Override
    public int minVertexInputs() {
        return 3;
    }

    @Override
    public int maxVertexInputs() {
        return 3;
    }

    @Override
    public org.deeplearning4j.nn.graph.vertex.GraphVertex instantiate(ComputationGraph graph, String name, int idx,
            INDArray paramsView, boolean initializeParams, DataType networkDatatype) {
        return new AttentionCoreVertex(graph, name, idx, networkDatatype, heads, causal, rowsOutput,
                shiftedSparseGroupSize);
    }

    private static long size(InputType t) {
        if (t instanceof InputType.InputTypeRecurrent) {
            return ((InputType.InputTypeRecurrent) t).getSize();
        }
        if (t instanceof InputType.InputTypeFeedForward) {
            return ((InputType.InputTypeFeedForward) t).getSize();
        }
        throw new InvalidInputTypeException("AttentionCore expects recurrent or time-distributed feed-forward "
                + "inputs, got " + t);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType... vertexInputs) throws InvalidInputTypeException {
        if (vertexInputs == null || vertexInputs.length != 3) {
            throw new InvalidInputTypeException("AttentionCore takes exactly 3 inputs (q, k, v), got "
                    + (vertexInputs == null ? 0 : vertexInputs.length));
        }
        long dq = size(vertexInputs[0]);
        long dk = size(vertexInputs[1]);
        long dv = size(vertexInputs[2]);
        if (dq != dk || dq % heads != 0 || dv % heads != 0) {
            throw new InvalidInputTypeException("AttentionCore: query width " + dq + " and key width " + dk
                    + " must be equal and, like the value width " + dv + ", divisible by heads " + heads);
        }
        if (rowsOutput) {
            return InputType.feedForward(dv);
        }
        long t = vertexInputs[0] instanceof InputType.InputTypeRecurrent
                ? ((InputType.InputTypeRecurrent) vertexInputs[0]).getTimeSeriesLength() : -1;
        return InputType.recurrent(dv, t);
    }

    @Override
    public MemoryReport getMemoryReport(InputType... inputTypes) {
        InputType out = getOutputType(-1, inputTypes);
        return new LayerMemoryReport.Builder(null, AttentionCore.class, inputTypes[0], out)
                .standardMemory(0, 0).workingMemory(0, 0, 0, 0).cacheMemory(0, 0).build();
    }

    @Override
    public String toString() {
        return "AttentionCore(heads=" + heads + ", causal=" + causal + (rowsOutput ? ", rowsOutput" : "")
                + (shiftedSparseGroupSize > 0 ? ", shiftedSparseGroupSize=" + shiftedSparseGroupSize : "") + ")";
    }
}
