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
import org.peft4j.core.internal.ParamLayout;
import org.peft4j.core.internal.ParamLayoutInitializer;
import org.peft4j.core.spi.FrozenLayerImpl;

/**
 * A layer of the base model whose weights are frozen and live outside DL4J's flat parameter
 * vector, the common base of the frozen layer of each {@link TargetKind}: {@link FrozenDenseLayer},
 * {@link FrozenEmbeddingLayer}, {@link FrozenConvolutionLayer}. The frozen arrays are fields of
 * this configuration (they travel with the configuration JSON, {@code clone()} and
 * {@code ModelSerializer}), held in the stock layer's own layout ({@link Target}); they get no
 * gradient buffer, no optimizer state and no weight decay.
 *
 * <p>The only parameter of this layer itself is an optional trainable bias {@code b [nOut]}
 * (bias mode {@code all}/{@code lora_only}). A tuner subclasses the frozen layer of a kind and
 * adds its parameters ({@link #paramShapes()}, {@link #initParam}, {@link #savedTensors()}), its
 * computation (an implementation extending {@link org.peft4j.core.spi.FrozenLayerImpl}'s subclass
 * for the kind, returned by {@link #newImpl}) and its merged weight ({@link #mergedWeight},
 * {@link #mergedBias}).
 *
 * <p>Merging is the tuner's: {@link #mergedWeight} and {@link #mergedBias} fold its parameters
 * into the base weight and bias, and the core only asks for them ({@link #merge},
 * {@link PeftModel#mergeAndUnload()}, which writes the result into the stock layer's parameters).
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by
 * {@link PeftModel}'s merge/enable switches, which replace arrays rather than write into them.
 */
public abstract class FrozenBaseLayer extends FeedForwardLayer implements AdapterLayer, ParamLayout,
        DetachableFrozenState {
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
    @JsonProperty("adapterEnabled")
    private boolean adapterEnabled = true;
    @JsonProperty("skipBackprop")
    private boolean skipBackprop;

    @JsonProperty("weightShape")
    private long[] weightShape;

    /** For JSON deserialization. */
    protected FrozenBaseLayer() {
    }

    /**
     * A frozen copy of {@code target}. With {@code keepFloatWeight = false} (for subclasses that
     * hold the weight in another form, e.g. 4-bit blocks) the float weight of {@code target} is
     * not kept, and the subclass must override {@link #frozenWeight()} and {@link #frozenBytes()}.
     *
     * @throws IllegalArgumentException if {@code target} is not of this layer's {@link #kind()}
     */
    protected FrozenBaseLayer(Target target, boolean keepFloatWeight) {
        if (target.kind() != kind()) {
            throw new IllegalArgumentException(getClass().getSimpleName() + " freezes " + kind() + " layers; layer \""
                    + target.layerName() + "\" is of kind " + target.kind());
        }
        this.baseLayerName = target.layerName();
        this.nIn = target.nIn();
        this.nOut = target.nOut();
        this.weightShape = target.weight().shape().clone();
        this.frozenWeight = keepFloatWeight ? target.weight() : null;
        this.frozenBias = target.bias();
        this.trainableBias = target.trainableBias() && target.bias() != null;
        this.inputGradient = target.inputGradient();
    }

    /** The kind of base layer this frozen layer stands for. */
    @JsonIgnore
    public abstract TargetKind kind();

    /** The shape of the frozen weight, the stock layer's {@code W} (see {@link Target}). */
    @JsonIgnore
    public long[] weightShape() {
        return weightShape.clone();
    }

    /** The base model's name for this layer (a decomposed output layer's vertex name differs). */
    @JsonIgnore
    @Override
    public String baseLayerName() {
        return baseLayerName;
    }

    /**
     * The frozen base weight {@code W} in the stock layer's layout ({@link #weightShape()}) as a float
     * array; never written. Layers that
     * hold the weight in another form (4-bit blocks) return a dequantized copy.
     */
    @JsonIgnore
    public INDArray frozenWeight() {
        return frozenWeight;
    }

    /**
     * {@code weight} (in this layer's layout, as {@link #frozenWeight()} and {@link #mergedWeight}
     * hold it) in the stock layer's parameter layout, to write into a stock layer's {@code W}
     * ({@link PeftModel#mergeAndUnload()}). The same array for every layout but one: see
     * {@link FrozenConvolutionLayer#kernelFromStock}.
     */
    public INDArray stockWeight(INDArray weight) {
        return weight;
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

    /** Elements of the frozen weight and bias (as the base model holds them, whatever the form here). */
    @JsonIgnore
    public long frozenElements() {
        long n = 1;
        for (long d : weightShape) {
            n = Math.multiplyExact(n, d);
        }
        return frozenBias == null || trainableBias ? n : n + frozenBias.length();
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

    /**
     * The bias forward uses while not merged, {@code [nOut]}: the trainable one (from
     * {@code params}) when it trains, else the frozen one; null when the layer has no bias.
     */
    public INDArray biasInUse(Map<String, INDArray> params) {
        return trainableBias ? params.get(BIAS_KEY) : frozenBias;
    }

    /**
     * The bias forward uses now: the merged one while merged and the adapter changes the bias,
     * else {@link #biasInUse}.
     */
    public INDArray effectiveBias(Map<String, INDArray> params) {
        return mergedBias != null ? mergedBias : biasInUse(params);
    }

    /**
     * Folds this layer's adapter into its weight and bias, {@link #mergedWeight} and
     * {@link #mergedBias} of the frozen weight and the bias in use, so forward runs at the cost
     * of the base layer. The frozen weight is kept, so {@link #unmerge()} restores it exactly.
     * Called by {@link PeftModel#merge()}, which holds the model's lock.
     *
     * @param params the layer's parameter table
     */
    public final void merge(Map<String, INDArray> params) {
        INDArray w = frozenWeight();
        INDArray merged = mergedWeight(w, params);
        INDArray b = biasInUse(params);
        INDArray flat = b == null ? null : b.reshape(b.length());
        INDArray mergedB = flat == null ? null : mergedBias(flat, params);
        this.mergedBias = mergedB == null || mergedB == flat ? null : mergedB.reshape(b.length()).castTo(b.dataType());
        this.mergedWeight = merged.castTo(w.dataType());
    }

    /** Drops the merged weight and bias: forward uses the frozen weight and the bias in use again. */
    public final void unmerge() {
        this.mergedWeight = null;
        this.mergedBias = null;
    }

    /**
     * The weight with this layer's adapter folded in, {@code W'} in the shape and layout of
     * {@code base} (the stock layer's, see {@link Target}): LoRA {@code W + s·A·B}, IA3 {@code W·diag(l)}. The update need
     * not be additive; DoRA's {@code m ⊙ (W + s·A·B) / ‖W + s·A·B‖} fits the same way. Default
     * (no adapter): {@code base}. Must not write into {@code base} or {@code params}. Used by
     * {@link #merge}, by {@link PeftModel#mergeAndUnload()} and by anything else that folds an
     * adapter (QLoRA's merge into 4 bits).
     *
     * @param base the frozen base weight as a float array (dequantized for a 4-bit base)
     * @param params the layer's parameter table
     */
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        return base;
    }

    /**
     * The bias with this layer's adapter folded in, {@code b' [nOut]}, or {@code bias} itself when
     * the adapter leaves the bias alone (the default; LoRA). IA3 with output scaling returns
     * {@code b ⊙ l}. Must not write into {@code bias} or {@code params}.
     *
     * @param bias the bias in use, {@code [nOut]}: the trainable one when it trains, else the frozen one
     * @param params the layer's parameter table
     */
    public INDArray mergedBias(INDArray bias, Map<String, INDArray> params) {
        return bias;
    }

    @JsonIgnore
    public boolean isTrainableBias() {
        return trainableBias;
    }

    @JsonIgnore
    public boolean isInputGradient() {
        return inputGradient;
    }

    @JsonIgnore
    public boolean isAdapterEnabled() {
        return adapterEnabled;
    }

    public void setAdapterEnabled(boolean enabled) {
        this.adapterEnabled = enabled;
    }

    /** Whether this layer carries an adapter (false for a plain frozen layer). */
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

    /** A copy without the frozen and merged weight and bias (see {@link DetachableFrozenState}). */
    @Override
    public FrozenBaseLayer withoutFrozenState() {
        FrozenBaseLayer c = (FrozenBaseLayer) clone();
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
        FrozenBaseLayer s = (FrozenBaseLayer) source;
        frozenWeight = s.frozenWeight;
        frozenBias = s.frozenBias;
        mergedWeight = s.mergedWeight;
        mergedBias = s.mergedBias;
    }

    /** Creates the layer implementation; tuners return their own subclass of the kind's implementation. */
    protected abstract FrozenLayerImpl<?> newImpl(NeuralNetConfiguration conf, DataType dataType);

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        FrozenLayerImpl<?> ret = ParamLayoutInitializer.attach(newImpl(conf, networkDataType), conf, listeners,
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
        return getClass().getSimpleName() + "(name=" + getLayerName() + ", base=" + baseLayerName + ", kind=" + kind()
                + ", nIn=" + nIn
                + ", nOut=" + nOut + ", trainableBias=" + trainableBias + ", merged=" + isMerged()
                + ", adapterEnabled=" + adapterEnabled + ")";
    }
}
