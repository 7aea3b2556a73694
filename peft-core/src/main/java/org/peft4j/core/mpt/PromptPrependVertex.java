package org.peft4j.core.mpt;

import java.util.Objects;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.inputs.InvalidInputTypeException;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.nn.conf.memory.MemoryReport;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.mpt.internal.PromptPrependVertexImpl;

/**
 * Puts per-example prompts in front of a sequence: inserted after the token embedding, with the
 * {@link MultitaskPromptLayer}'s output as its second input.
 *
 * <pre>
 *   x [batch, d, T] (NCW), prompts [batch, d, p]   →   y = [prompts ; x] [batch, d, p + T]
 *   mask [batch, T]   →   [1 … 1 ; mask] [batch, p + T]        (virtual tokens are always real)
 *   backward: dprompts = dy[:, :, :p]    dx = dy[:, :, p:]
 * </pre>
 * Downstream layers see {@code p + T} positions; a {@code PromptTrimLayer} before the output layer
 * drops the first {@code p} again. Disabled ({@link TunerLayer#setAdapterEnabled}), it passes
 * {@code x} and its mask through unchanged (and sends the prompts a zero gradient).
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public class PromptPrependVertex extends GraphVertex implements TunerLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("numVirtualTokens")
    private int numVirtualTokens;
    @JsonProperty("inputGradient")
    private boolean inputGradient = true;
    @JsonProperty("adapterEnabled")
    private boolean adapterEnabled = true;

    /** For JSON deserialization. */
    protected PromptPrependVertex() {
    }

    /** Prepends {@code numVirtualTokens ≥ 1} positions. */
    public PromptPrependVertex(int numVirtualTokens) {
        if (numVirtualTokens < 1) {
            throw new IllegalArgumentException("numVirtualTokens must be positive; got " + numVirtualTokens);
        }
        this.numVirtualTokens = numVirtualTokens;
    }

    @JsonIgnore
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    @Override
    public void setInputGradient(boolean inputGradient) {
        this.inputGradient = inputGradient;
    }

    @Override
    @JsonIgnore
    public boolean isInputGradient() {
        return inputGradient;
    }

    @Override
    @JsonIgnore
    public boolean isAdapterEnabled() {
        return adapterEnabled;
    }

    @Override
    public void setAdapterEnabled(boolean enabled) {
        this.adapterEnabled = enabled;
    }

    @Override
    public PromptPrependVertex clone() {
        PromptPrependVertex c = new PromptPrependVertex(numVirtualTokens);
        c.inputGradient = inputGradient;
        c.adapterEnabled = adapterEnabled;
        return c;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PromptPrependVertex v && v.numVirtualTokens == numVirtualTokens
                && v.inputGradient == inputGradient && v.adapterEnabled == adapterEnabled;
    }

    @Override
    public int hashCode() {
        return Objects.hash(numVirtualTokens, inputGradient, adapterEnabled);
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
        return new PromptPrependVertexImpl(graph, name, idx, networkDatatype, this);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType... vertexInputs) throws InvalidInputTypeException {
        if (vertexInputs == null || vertexInputs.length != 2 || !(vertexInputs[0] instanceof InputType.InputTypeRecurrent)) {
            throw new InvalidInputTypeException("PromptPrependVertex takes a sequence [batch, d, T] and the prompts; got "
                    + java.util.Arrays.toString(vertexInputs));
        }
        InputType.InputTypeRecurrent r = (InputType.InputTypeRecurrent) vertexInputs[0];
        long t = r.getTimeSeriesLength();
        return InputType.recurrent(r.getSize(), t > 0 ? t + numVirtualTokens : t);
    }

    @Override
    public MemoryReport getMemoryReport(InputType... inputTypes) {
        InputType out = getOutputType(-1, inputTypes);
        return new LayerMemoryReport.Builder(null, PromptPrependVertex.class, inputTypes[0], out)
                .standardMemory(0, 0).workingMemory(0, 0, 0, 0).cacheMemory(0, 0).build();
    }

    @Override
    public String toString() {
        return "PromptPrependVertex(p=" + numVirtualTokens + ", enabled=" + adapterEnabled + ")";
    }
}
