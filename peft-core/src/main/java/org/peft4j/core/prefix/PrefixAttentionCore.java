package org.peft4j.core.prefix;

import java.util.Objects;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.inputs.InvalidInputTypeException;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.blocks.AttentionCore;
import org.peft4j.core.prefix.internal.PrefixAttentionCoreVertex;

/**
 * A prefix-aware {@link AttentionCore} (prefix tuning, Li &amp; Liang, arXiv 2101.00190): the same
 * parameter-free multi-head attention over {@code q, k, v}, with a fourth input, the prefix
 * {@code [batch, dk + dv, p]} of a {@link PrefixEncoderLayer}, placed before the keys and values:
 *
 * <pre>
 *   K' = [Pk ; K]   V' = [Pv ; V]      (time axis: p + T)
 *   out_h = V'_h · softmax_keys(Q_hᵀK'_h / √(dk/h) + mask')ᵀ
 * </pre>
 * The prefix positions are never masked: every query sees all {@code p} of them; the causal mask
 * and the key-padding mask apply to the real keys only. Backward: the attention kernel's
 * {@code dK'}, {@code dV'} split into the real part (to the key and value inputs) and the prefix
 * part {@code [dK'[:, :, :p] ; dV'[:, :, :p]]} (to the prefix input). With {@code p = 0} (three
 * inputs) or disabled, this is exactly the base core (the prefix input then gets a zero gradient).
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public class PrefixAttentionCore extends AttentionCore implements TunerLayer {
    private static final long serialVersionUID = 1L;

    @JsonProperty("numVirtualTokens")
    private int numVirtualTokens;
    @JsonProperty("inputGradient")
    private boolean inputGradient = true;
    @JsonProperty("adapterEnabled")
    private boolean adapterEnabled = true;

    /** For JSON deserialization. */
    protected PrefixAttentionCore() {
    }

    /**
     * @param base the attention core it replaces (heads, causality)
     * @param numVirtualTokens {@code p ≥ 0}; with 0 the core takes three inputs, else four
     */
    public PrefixAttentionCore(AttentionCore base, int numVirtualTokens) {
        super(base.getHeads(), base.isCausal(), base.isRowsOutput());
        if (numVirtualTokens < 0) {
            throw new IllegalArgumentException("numVirtualTokens must not be negative; got " + numVirtualTokens);
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
    public int minVertexInputs() {
        return numVirtualTokens == 0 ? 3 : 4;
    }

    @Override
    public int maxVertexInputs() {
        return minVertexInputs();
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType... vertexInputs) throws InvalidInputTypeException {
        InputType[] qkv = vertexInputs == null || vertexInputs.length < 3 ? vertexInputs
                : new InputType[] {vertexInputs[0], vertexInputs[1], vertexInputs[2]};
        return super.getOutputType(layerIndex, qkv);
    }

    @Override
    public org.deeplearning4j.nn.graph.vertex.GraphVertex instantiate(ComputationGraph graph, String name, int idx,
            INDArray paramsView, boolean initializeParams, DataType networkDatatype) {
        return new PrefixAttentionCoreVertex(graph, name, idx, networkDatatype, this);
    }

    @Override
    public PrefixAttentionCore clone() {
        PrefixAttentionCore c = new PrefixAttentionCore(this, numVirtualTokens);
        c.inputGradient = inputGradient;
        c.adapterEnabled = adapterEnabled;
        return c;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PrefixAttentionCore && super.equals(o)
                && ((PrefixAttentionCore) o).numVirtualTokens == numVirtualTokens
                && ((PrefixAttentionCore) o).inputGradient == inputGradient
                && ((PrefixAttentionCore) o).adapterEnabled == adapterEnabled;
    }

    @Override
    public int hashCode() {
        return Objects.hash(super.hashCode(), numVirtualTokens);
    }

    @Override
    public String toString() {
        return "PrefixAttentionCore(heads=" + getHeads() + ", causal=" + isCausal()
                + (isRowsOutput() ? ", rowsOutput" : "") + ", p=" + numVirtualTokens
                + ", enabled=" + adapterEnabled + ")";
    }
}
