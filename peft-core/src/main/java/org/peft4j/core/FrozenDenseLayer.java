package org.peft4j.core;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.serde.jackson.shaded.NDArrayDeSerializer;
import org.nd4j.serde.jackson.shaded.NDArraySerializer;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.internal.FrozenDenseLayerImpl;
import org.peft4j.core.internal.ParamLayout;
import org.peft4j.core.internal.ParamLayoutInitializer;

/**
 * A dense layer whose base weights are frozen and live outside DL4J's flat parameter vector:
 * {@code z = x·W + b}, {@code a = act(z)}, with {@code x [batch, nIn]}, {@code W [nIn, nOut]},
 * {@code b [nOut]}. The frozen arrays are fields of this configuration (they travel with the
 * configuration JSON, {@code clone()} and {@code ModelSerializer}); they get no gradient buffer,
 * no optimizer state and no weight decay.
 *
 * <p>The only parameter of this layer itself is an optional trainable bias {@code b} (bias mode
 * {@code all}/{@code lora_only}). Tuners subclass it (LoRA adds {@code loraA}, {@code loraB}) and
 * add their parameters through {@link #paramShapes()} and {@link #initParam}.
 *
 * <p>Backward: {@code delta = act'(z) ⊙ eps}; {@code eps_in = delta·Wᵀ}, computed only when
 * something upstream trains ({@link #isInputGradient()}); {@code db = Σ_batch delta} when the bias
 * trains. No weight gradient is ever computed for {@code W}.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by
 * {@link PeftModel}'s merge/enable switches, which replace arrays rather than write into them.
 */
public class FrozenDenseLayer extends FeedForwardLayer implements AdapterLayer, ParamLayout, DetachableFrozenState {
    private static final long serialVersionUID = 1L;

    /** Parameter key of the trainable bias (no underscore: DL4J splits gradient keys on the last one). */
    public static final String BIAS_KEY = "b";

    @JsonProperty("baseLayerName")
    private String baseLayerName;
    @JsonProperty("frozenWeight")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray frozenWeight;
    @JsonProperty("frozenBias")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray frozenBias;
    @JsonProperty("mergedWeight")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray mergedWeight;
    @JsonProperty("mergedBias")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray mergedBias;
    @JsonProperty("trainableBias")
    private boolean trainableBias;
    @JsonProperty("inputGradient")
    private boolean inputGradient = true;
    @JsonProperty("outputProjection")
    private boolean outputProjection;
    @JsonProperty("adapterEnabled")
    private boolean adapterEnabled = true;
    @JsonProperty("skipBackprop")
    private boolean skipBackprop;

    /** For JSON deserialization. */
    protected FrozenDenseLayer() {
    }

    /** A frozen copy of {@code target} with no adapter. */
    public FrozenDenseLayer(DenseTarget target) {
        this(target, true);
    }

    /**
     * For subclasses that hold the weight in another form (e.g. 4-bit blocks): with
     * {@code keepFloatWeight = false} the float weight of {@code target} is not kept, and the
     * subclass must override {@link #frozenWeight()} and {@link #frozenBytes()}.
     */
    protected FrozenDenseLayer(DenseTarget target, boolean keepFloatWeight) {
        this.baseLayerName = target.layerName();
        this.nIn = target.nIn();
        this.nOut = target.nOut();
        this.frozenWeight = keepFloatWeight ? target.weight() : null;
        this.frozenBias = target.bias();
        this.trainableBias = target.trainableBias() && target.bias() != null;
        this.inputGradient = target.inputGradient();
    }

    /** The base model's name for this layer (a decomposed output layer's vertex name differs). */
    @JsonIgnore
    @Override
    public String baseLayerName() {
        return baseLayerName;
    }

    /**
     * The frozen base weight {@code W [nIn, nOut]} as a float array; never written. Layers that
     * hold the weight in another form (4-bit blocks) return a dequantized copy.
     */
    @JsonIgnore
    public INDArray frozenWeight() {
        return frozenWeight;
    }

    /** The frozen base bias {@code b [nOut]} (its initial value when the bias trains), or null. */
    @JsonIgnore
    public INDArray frozenBias() {
        return frozenBias;
    }

    /** The weight forward uses: the merged weight while merged, else the frozen base weight. */
    @JsonIgnore
    public INDArray effectiveWeight() {
        return mergedWeight != null ? mergedWeight : frozenWeight();
    }

    /** Bytes the frozen weight and bias occupy as held (not counting a merged copy). */
    @JsonIgnore
    public long frozenBytes() {
        long b = frozenWeight.length() * frozenWeight.dataType().width();
        return frozenBias == null ? b : b + frozenBias.length() * frozenBias.dataType().width();
    }

    /** Bytes of the frozen bias, or 0. */
    @JsonIgnore
    protected long frozenBiasBytes() {
        return frozenBias == null ? 0 : frozenBias.length() * frozenBias.dataType().width();
    }

    /** True when nothing upstream or in this layer trains: DL4J then skips the layer in backprop. */
    @JsonIgnore
    public boolean isSkipBackprop() {
        return skipBackprop;
    }

    public void setSkipBackprop(boolean skipBackprop) {
        this.skipBackprop = skipBackprop;
    }

    @JsonIgnore
    public boolean isMerged() {
        return mergedWeight != null;
    }

    /** Sets (or clears, with null) the merged weight {@code W + ΔW}; the frozen base weight stays. */
    public void setMergedWeight(INDArray merged) {
        this.mergedWeight = merged;
    }

    /**
     * The merged bias {@code b + Δb} forward uses while merged, or null when the adapter leaves the
     * bias alone (then forward uses the trainable or frozen bias as usual).
     */
    @JsonIgnore
    public INDArray mergedBias() {
        return mergedBias;
    }

    /** Sets (or clears, with null) the merged bias; see {@link #deltaBias}. */
    public void setMergedBias(INDArray merged) {
        this.mergedBias = merged;
    }

    @JsonIgnore
    public boolean isTrainableBias() {
        return trainableBias;
    }

    @JsonIgnore
    public boolean isInputGradient() {
        return inputGradient;
    }

    /** True for the projection half of a decomposed output layer (the loss layer masks instead). */
    @JsonIgnore
    public boolean isOutputProjection() {
        return outputProjection;
    }

    public void setOutputProjection(boolean outputProjection) {
        this.outputProjection = outputProjection;
    }

    @JsonIgnore
    public boolean isAdapterEnabled() {
        return adapterEnabled;
    }

    public void setAdapterEnabled(boolean enabled) {
        this.adapterEnabled = enabled;
    }

    /** Whether this layer carries an adapter (false for a plain frozen dense layer). */
    @JsonIgnore
    public boolean hasAdapter() {
        return false;
    }

    /**
     * The trainable parameters in flat-vector order, key to shape. Every parameter is an
     * {@code 'f'}-ordered view of the layer's slice of the flat vector.
     */
    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        if (trainableBias) {
            m.put(BIAS_KEY, new long[] {nOut});
        }
        return m;
    }

    /** Whether {@code key} is a weight (gets weight regularization) rather than a bias. */
    @Override
    public boolean isWeightParam(String key) {
        return false;
    }

    /** Only the trainable bias {@code b}. */
    @Override
    public boolean isBiasParam(String key) {
        return BIAS_KEY.equals(key) && trainableBias;
    }

    /** Writes the initial value of parameter {@code key} into {@code view}. */
    @Override
    public void initParam(String key, INDArray view) {
        if (BIAS_KEY.equals(key)) {
            view.assign(frozenBias.reshape(view.shape()));
        } else {
            throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer " + getLayerName());
        }
    }

    /** The change this layer's adapter makes to the weight, {@code ΔW [nIn, nOut]}, or null if none. */
    public INDArray deltaWeight(Map<String, INDArray> params) {
        return null;
    }

    /**
     * How a trainable parameter of this layer is written to an adapter file: its key, the suffix
     * after {@code base_model.model.<layer>.} (Hugging Face PEFT's names), whether the matrix is
     * transposed (DL4J keeps {@code [nIn, nOut]}, PyTorch {@code [out, in]}), and optionally the
     * shape written instead of the parameter's own (same elements in the same order, e.g. IA3's
     * {@code [out, 1]}).
     */
    public record SavedTensor(String paramKey, String fileSuffix, boolean transposed, long[] fileShape) {

        /** A tensor stored in the parameter's own shape (transposed for a matrix when asked). */
        public SavedTensor(String paramKey, String fileSuffix, boolean transposed) {
            this(paramKey, fileSuffix, transposed, null);
        }
    }

    /** The tensors an adapter file holds for this layer. */
    @Override
    public java.util.List<SavedTensor> savedTensors() {
        java.util.List<SavedTensor> l = new java.util.ArrayList<>();
        if (trainableBias) {
            l.add(new SavedTensor(BIAS_KEY, "bias", false));
        }
        return l;
    }

    /**
     * Takes over the settings of another adapter with the same layout (for LoRA: alpha and
     * scaling, dropout), when {@link PeftModel#setAdapter} switches to it.
     */
    public void adoptConfig(PeftConfig config) {
    }

    /**
     * The change this layer's adapter makes to the bias, {@code Δb [nOut]}, or null if none (the
     * default: LoRA leaves the bias alone; IA3 on a non-feedforward target scales it).
     *
     * @param params the layer's parameter table
     * @param bias the bias in use, {@code [nOut]}: the trainable one when it trains, else the frozen one
     */
    public INDArray deltaBias(Map<String, INDArray> params, INDArray bias) {
        return null;
    }

    /** A copy without the frozen and merged weight and bias (see {@link DetachableFrozenState}). */
    @Override
    public FrozenDenseLayer withoutFrozenState() {
        FrozenDenseLayer c = (FrozenDenseLayer) clone();
        c.frozenWeight = null;
        c.frozenBias = null;
        c.mergedWeight = null;
        c.mergedBias = null;
        return c;
    }

    /** Takes the frozen and merged weight and bias of {@code source} (see {@link DetachableFrozenState}). */
    @Override
    public void attachFrozenState(org.deeplearning4j.nn.conf.layers.Layer source) {
        if (source == null || source.getClass() != getClass()) {
            throw new IllegalArgumentException("frozen state of layer " + getLayerName() + " (" + getClass().getSimpleName()
                    + ") must come from a " + getClass().getSimpleName() + "; got "
                    + (source == null ? "null" : source.getClass().getSimpleName()));
        }
        FrozenDenseLayer s = (FrozenDenseLayer) source;
        frozenWeight = s.frozenWeight;
        frozenBias = s.frozenBias;
        mergedWeight = s.mergedWeight;
        mergedBias = s.mergedBias;
    }

    /** Creates the layer implementation; tuners return their own subclass. */
    protected FrozenDenseLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new FrozenDenseLayerImpl(conf, dataType);
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        FrozenDenseLayerImpl ret = ParamLayoutInitializer.attach(newImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
        return skipBackprop ? new org.deeplearning4j.nn.layers.FrozenLayer(ret) : ret;
    }

    @Override
    public ParamInitializer initializer() {
        return ParamLayoutInitializer.INSTANCE;
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        InputType outputType = getOutputType(-1, inputType);
        return ParamLayoutInitializer.memoryReport(this, inputType, outputType, outputType.arrayElementsPerExample());
    }

    @Override
    public boolean isPretrainParam(String paramName) {
        return false;
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(name=" + getLayerName() + ", base=" + baseLayerName + ", nIn=" + nIn
                + ", nOut=" + nOut + ", trainableBias=" + trainableBias + ", merged=" + isMerged()
                + ", adapterEnabled=" + adapterEnabled + ")";
    }
}
