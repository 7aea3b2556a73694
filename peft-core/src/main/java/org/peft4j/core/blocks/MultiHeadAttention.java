package org.peft4j.core.blocks;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.weights.IWeightInit;
import org.deeplearning4j.nn.weights.WeightInitXavier;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.blocks.internal.MultiHeadAttentionImpl;
import org.peft4j.core.internal.ParamLayoutInitializer;

/**
 * Multi-head self-attention with input and output projections in one layer, a drop-in, correct
 * replacement for DL4J's {@code SelfAttentionLayer} (with {@code projectInput = true}): same
 * parameter keys and shapes, same forward math, and gradients that pass {@code GradientCheckUtil}
 * (the stock SameDiff-based layer returns them 2× too large in 1.0.0-M2.1). See
 * {@link Attention#fromStock} to convert a graph.
 *
 * <p>For {@code x [b, nIn, T]}, {@code h} heads of size {@code d}:
 * <pre>
 *   Q_h = Wq[h]·x + bq_h      K_h = Wk[h]·x + bk_h      V_h = Wv[h]·x + bv_h      (each [b, d, T])
 *   A_h = V_h · softmax_keys(Q_hᵀK_h / √d + mask)ᵀ                                 [b, d, T]
 *   y   = Woᵀ · concat_h(A_h) + bo                                               [b, nOut, T]
 * </pre>
 * with {@code Wq, Wk, Wv [h, d, nIn]}, {@code Wo [h·d, nOut]} (head {@code h} occupies rows
 * {@code h·d … h·d + d − 1} of {@code Wo}) and optional biases {@code bq, bk, bv [h·d]},
 * {@code bo [nOut]} (the stock layer has none). The mask is the layer's feature mask
 * {@code [b, T]} (1 = keep) applied to the keys, and, when {@link #isCausal()}, query {@code i}
 * attends to keys {@code j ≤ i} only. Masked keys get zero probability; a query with no key left
 * outputs {@code bo} rather than NaN. Outputs at masked time steps are computed like any other
 * (the loss masks them), as in the stock layer.
 *
 * <p>Backward is hand-written ({@code org.peft4j.core.blocks.internal.AttentionKernel}); the
 * forward pass is recomputed in backward, as the stock op does.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public class MultiHeadAttention extends BlockLayer {
    private static final long serialVersionUID = 1L;

    public static final String WQ = "Wq";
    public static final String WK = "Wk";
    public static final String WV = "Wv";
    public static final String WO = "Wo";
    public static final String BQ = "bq";
    public static final String BK = "bk";
    public static final String BV = "bv";
    public static final String BO = "bo";

    @JsonProperty("heads")
    private int heads;
    @JsonProperty("headSize")
    private long headSize;
    @JsonProperty("causal")
    private boolean causal;
    @JsonProperty("bias")
    private boolean bias;

    /** For JSON deserialization. */
    protected MultiHeadAttention() {
    }

    private MultiHeadAttention(Builder b) {
        this.nIn = b.nIn;
        this.nOut = b.nOut;
        this.heads = b.heads;
        this.headSize = b.headSize > 0 ? b.headSize : b.nOut / b.heads;
        this.causal = b.causal;
        this.bias = b.bias;
    }

    public static Builder builder() {
        return new Builder();
    }

    public int getHeads() {
        return heads;
    }

    public long getHeadSize() {
        return headSize;
    }

    public boolean isCausal() {
        return causal;
    }

    public boolean hasBias() {
        return bias;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        long hd = heads * headSize;
        m.put(WQ, new long[] {heads, headSize, nIn});
        m.put(WK, new long[] {heads, headSize, nIn});
        m.put(WV, new long[] {heads, headSize, nIn});
        m.put(WO, new long[] {hd, nOut});
        if (bias) {
            m.put(BQ, new long[] {hd});
            m.put(BK, new long[] {hd});
            m.put(BV, new long[] {hd});
            m.put(BO, new long[] {nOut});
        }
        return m;
    }

    @Override
    public void initParam(String key, INDArray view) {
        IWeightInit init = getWeightInitFn() == null ? new WeightInitXavier() : getWeightInitFn();
        long hd = heads * headSize;
        switch (key) {
            case WQ:
            case WK:
            case WV:
                init.init(nIn, hd, view.shape(), 'c', view);
                break;
            case WO:
                init.init(hd, nOut, view.shape(), 'c', view);
                break;
            case BQ:
            case BK:
            case BV:
            case BO:
                view.assign(0.0);
                break;
            default:
                throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer " + getLayerName());
        }
    }

    @Override
    public boolean isWeightParam(String key) {
        return key.startsWith("W");
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (!(inputType instanceof InputType.InputTypeRecurrent)) {
            throw new IllegalStateException("layer \"" + getLayerName() + "\" (MultiHeadAttention) expects recurrent "
                    + "input [batch, " + nIn + ", time], got " + inputType);
        }
        return InputType.recurrent(nOut, ((InputType.InputTypeRecurrent) inputType).getTimeSeriesLength());
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new MultiHeadAttentionImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof MultiHeadAttention) || !super.equals(o)) {
            return false;
        }
        MultiHeadAttention other = (MultiHeadAttention) o;
        return heads == other.heads && headSize == other.headSize && causal == other.causal && bias == other.bias;
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(super.hashCode(), heads, headSize, causal, bias);
    }

    @Override
    public String toString() {
        return "MultiHeadAttention(name=" + getLayerName() + ", nIn=" + nIn + ", nOut=" + nOut + ", heads=" + heads
                + ", headSize=" + headSize + ", causal=" + causal + ", bias=" + bias + ")";
    }

    /**
     * Builds a {@link MultiHeadAttention}; {@code nIn}, {@code nOut} and {@code heads} are required,
     * {@code headSize} defaults to {@code nOut / heads} (which must then divide evenly). Validated in
     * {@link #build()}. Not thread-safe.
     */
    public static final class Builder {
        private long nIn;
        private long nOut;
        private int heads;
        private long headSize;
        private boolean causal;
        private boolean bias;

        private Builder() {
        }

        public Builder nIn(long nIn) {
            this.nIn = nIn;
            return this;
        }

        public Builder nOut(long nOut) {
            this.nOut = nOut;
            return this;
        }

        public Builder heads(int heads) {
            this.heads = heads;
            return this;
        }

        public Builder headSize(long headSize) {
            this.headSize = headSize;
            return this;
        }

        /** Query {@code i} attends to keys {@code j ≤ i} only. */
        public Builder causal(boolean causal) {
            this.causal = causal;
            return this;
        }

        /** Adds the biases {@code bq, bk, bv, bo} (zero at init). */
        public Builder bias(boolean bias) {
            this.bias = bias;
            return this;
        }

        public MultiHeadAttention build() {
            if (nIn <= 0) {
                throw new IllegalArgumentException("MultiHeadAttention: nIn must be positive, got " + nIn);
            }
            if (nOut <= 0) {
                throw new IllegalArgumentException("MultiHeadAttention: nOut must be positive, got " + nOut);
            }
            if (heads <= 0) {
                throw new IllegalArgumentException("MultiHeadAttention: heads must be positive, got " + heads);
            }
            if (headSize < 0) {
                throw new IllegalArgumentException("MultiHeadAttention: headSize must not be negative, got " + headSize);
            }
            if (headSize == 0 && nOut % heads != 0) {
                throw new IllegalArgumentException("MultiHeadAttention: nOut " + nOut + " is not divisible by heads "
                        + heads + "; set headSize explicitly");
            }
            return new MultiHeadAttention(this);
        }
    }
}
