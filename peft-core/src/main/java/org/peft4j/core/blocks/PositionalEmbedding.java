package org.peft4j.core.blocks;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.blocks.internal.PositionalEmbeddingImpl;
import org.peft4j.core.internal.ParamLayoutInitializer;

/**
 * Learned absolute positional embedding: a table {@code W [maxLength, d]} (key {@code W}) whose first
 * {@code T} rows are added to a sequence {@code x [batch, d, T]}:
 * {@code y[b, :, t] = x[b, :, t] + W[t, :]}, {@code T ≤ maxLength} (a longer input fails with a
 * message naming both lengths). Backward: {@code dx = dy}, {@code dW[t, :] = Σ_b dy[b, :, t]} for
 * {@code t < T}, zero for the rows not used. {@code W} starts as {@code N(0, initStd²)} from ND4J's
 * seeded generator (GPT-2 uses a standard deviation of 0.01–0.02).
 *
 * <p>Built with {@code rowsOutput} (as {@link Transformers} builds it), the output is DL4J's
 * time-distributed rows {@code y [B·T, d]} with row {@code b + B·t} (the layout of
 * {@code RnnToFeedForwardPreProcessor}), and the feature mask {@code [B, T]} goes on as the per-row
 * mask {@code [B·T, 1]}: the dense layers and blocks after it then read rows with no conversion. The
 * input stays a sequence {@code [B, d, T]}, and the gradient it gets back is one.
 *
 * <p>DL4J 1.0.0-M2.1 has no positional embedding layer, hence this one.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public class PositionalEmbedding extends BlockLayer {
    private static final long serialVersionUID = 1L;

    public static final String WEIGHT_KEY = "W";
    public static final double DEFAULT_INIT_STD = 0.02;

    @JsonProperty("maxLength")
    private long maxLength;
    @JsonProperty("initStd")
    private double initStd;
    @JsonProperty("rowsOutput")
    private boolean rowsOutput;

    /** For JSON deserialization. */
    protected PositionalEmbedding() {
    }

    /** A table of {@code maxLength} positions of {@code size} features, initial std 0.02. */
    public PositionalEmbedding(long maxLength, long size) {
        this(maxLength, size, DEFAULT_INIT_STD);
    }

    public PositionalEmbedding(long maxLength, long size, double initStd) {
        this(maxLength, size, initStd, false);
    }

    /**
     * @param rowsOutput whether the output is time-distributed rows {@code [B·T, d]} (row
     *     {@code b + B·t}) instead of a sequence {@code [B, d, T]}
     */
    public PositionalEmbedding(long maxLength, long size, double initStd, boolean rowsOutput) {
        if (maxLength <= 0) {
            throw new IllegalArgumentException("PositionalEmbedding: maxLength must be positive, got " + maxLength);
        }
        if (size <= 0) {
            throw new IllegalArgumentException("PositionalEmbedding: size must be positive, got " + size);
        }
        if (!(initStd >= 0) || Double.isInfinite(initStd)) {
            throw new IllegalArgumentException("PositionalEmbedding: initStd must be finite and not negative, got "
                    + initStd);
        }
        this.maxLength = maxLength;
        this.nIn = size;
        this.nOut = size;
        this.initStd = initStd;
        this.rowsOutput = rowsOutput;
    }

    /** The longest sequence this table covers. */
    public long maxLength() {
        return maxLength;
    }

    /** The standard deviation of the initial table. */
    public double initStd() {
        return initStd;
    }

    /** Whether the output is time-distributed rows {@code [B·T, d]} rather than a sequence {@code [B, d, T]}. */
    public boolean isRowsOutput() {
        return rowsOutput;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put(WEIGHT_KEY, new long[] {maxLength, nOut});
        return m;
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (!WEIGHT_KEY.equals(key)) {
            throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer " + getLayerName());
        }
        view.assign(Nd4j.randn(view.dataType(), view.shape()).muli(initStd));
    }

    @Override
    public boolean isWeightParam(String key) {
        return WEIGHT_KEY.equals(key);
    }

    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        if (!(inputType instanceof InputType.InputTypeRecurrent)) {
            throw new IllegalStateException("layer \"" + getLayerName() + "\" (PositionalEmbedding) expects recurrent "
                    + "input [batch, " + nOut + ", time], got " + inputType);
        }
        return rowsOutput ? InputType.feedForward(nOut) : super.getOutputType(layerIndex, inputType);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        super.setNIn(inputType, override);
        nOut = nIn;
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new PositionalEmbeddingImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof PositionalEmbedding) || !super.equals(o)) {
            return false;
        }
        PositionalEmbedding other = (PositionalEmbedding) o;
        return maxLength == other.maxLength && Double.compare(initStd, other.initStd) == 0
                && rowsOutput == other.rowsOutput;
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(super.hashCode(), maxLength, initStd, rowsOutput);
    }

    @Override
    public String toString() {
        return "PositionalEmbedding(name=" + getLayerName() + ", maxLength=" + maxLength + ", size=" + nOut
                + (rowsOutput ? ", rowsOutput" : "") + ")";
    }
}
