package org.peft4j.core.ia3;

import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.Target;
import org.peft4j.core.ia3.internal.Ia3DenseLayerImpl;
import org.peft4j.core.spi.FrozenDenseLayerImpl;

/**
 * A dense-type layer with a frozen base weight and one trainable IA3 scale vector {@code l},
 * initialised to ones (so a fresh layer computes the base layer exactly):
 *
 * <pre>
 *   output scaling (default):  z = (x·W + b) ⊙ l     l [nOut]
 *   input scaling (feedforward): z = (x ⊙ l)·W + b   l [nIn]
 *   a = act(z)     x [batch, nIn]   W [nIn, nOut] (frozen)   b [nOut] (frozen)
 * </pre>
 *
 * Backward, with {@code delta = dL/dz [batch, nOut]}:
 * <pre>
 *   output scaling:  u = x·W + b    dL/dl = Σ_batch delta ⊙ u    eps_in = (delta ⊙ l)·Wᵀ
 *   input scaling:   g = delta·Wᵀ   dL/dl = Σ_batch x ⊙ g        eps_in = g ⊙ l
 * </pre>
 * Merge: output scaling {@code W' = W·diag(l)}, {@code b' = b ⊙ l}; input scaling
 * {@code W' = diag(l)·W}. The parameter {@code ia3} is neither weight nor bias for DL4J, so it
 * gets no weight decay (decay towards zero would fight the identity at one).
 *
 * <p>Thread-safety: see {@link FrozenDenseLayer}.
 */
public class Ia3DenseLayer extends FrozenDenseLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of the scale vector {@code l}. */
    public static final String IA3_KEY = "ia3";

    @JsonProperty("feedforward")
    private boolean feedforward;

    /** For JSON deserialization. */
    protected Ia3DenseLayer() {
    }

    Ia3DenseLayer(Target target, boolean feedforward) {
        super(target);
        this.feedforward = feedforward;
    }

    /** True when the input is scaled ({@code l [nIn]}), false when the output is ({@code l [nOut]}). */
    @JsonIgnore
    public boolean isFeedforward() {
        return feedforward;
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.put(IA3_KEY, new long[] {feedforward ? nIn : nOut});
        return m;
    }

    /**
     * Written as Hugging Face PEFT writes IA3: {@code ia3_l} with shape {@code [out, 1]}, or
     * {@code [1, in]} for a feed-forward (input-scaling) target.
     */
    @Override
    public java.util.List<SavedTensor> savedTensors() {
        java.util.List<SavedTensor> l = super.savedTensors();
        l.add(new SavedTensor(IA3_KEY, "ia3_l", false, feedforward ? new long[] {1, nIn} : new long[] {nOut, 1}));
        return l;
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (IA3_KEY.equals(key)) {
            view.assign(1.0);
        } else {
            super.initParam(key, view);
        }
    }

    /** {@code W' = W·diag(l)} (output scaling) or {@code diag(l)·W} (input scaling), {@code [nIn, nOut]}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        INDArray l = params.get(IA3_KEY).castTo(base.dataType());
        return feedforward ? base.mulColumnVector(l.reshape(nIn, 1)) : base.mulRowVector(l.reshape(1, nOut));
    }

    /** {@code b' = b ⊙ l} for output scaling; the bias unchanged for input scaling. */
    @Override
    public INDArray mergedBias(INDArray bias, Map<String, INDArray> params) {
        if (feedforward) {
            return bias;
        }
        return bias.mul(params.get(IA3_KEY).castTo(bias.dataType()).reshape(bias.length()));
    }

    @Override
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new Ia3DenseLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "Ia3DenseLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", nIn=" + nIn + ", nOut=" + nOut
                + ", feedforward=" + feedforward + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
