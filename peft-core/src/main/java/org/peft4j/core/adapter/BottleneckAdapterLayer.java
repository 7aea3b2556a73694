package org.peft4j.core.adapter;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.adapter.internal.BottleneckAdapterLayerImpl;
import org.peft4j.core.internal.ParamLayoutInitializer;
import org.peft4j.core.spi.BaseTunerLayer;

/**
 * A bottleneck adapter (Houlsby et al., arXiv 1902.00751; Pfeiffer et al., arXiv 2005.00052)
 * inserted after a layer of the base model, with a residual connection:
 *
 * <pre>
 *   h = x·Wd + bd        a = act(h)        y = x + a·Wu + bu
 *   x, y [N, d]   Wd [d, m]   bd [m]   Wu [m, d]   bu [d]     (m: the bottleneck size)
 * </pre>
 *
 * Input and output are {@code [batch, d]} or, for sequences, {@code [batch, d, time]} (NCW),
 * treated as {@code N = batch·time} independent rows; a feature mask zeroes masked rows as
 * DL4J's dense layers do. {@code Wu} and {@code bu} start at zero, so a fresh adapter is the
 * identity; {@code Wd} starts uniform in {@code ±1/√d} (PyTorch's default for a linear layer),
 * {@code bd} at zero.
 *
 * <p>Backward, with {@code g = dL/dy [N, d]} (masked rows zeroed):
 * <pre>
 *   dWu = aᵀ·g    dbu = Σ_N g    gh = act'(h) ⊙ (g·Wuᵀ)
 *   dWd = xᵀ·gh   dbd = Σ_N gh   eps_in = g + gh·Wdᵀ
 * </pre>
 * Parameters {@code downW}, {@code downB}, {@code upW}, {@code upB} (weights get weight decay,
 * biases bias decay). Disabled ({@link org.peft4j.core.PeftModel#disableAdapter()}), the layer
 * passes its input through unchanged.
 *
 * <p>In adapter files ({@link AdapterLayer}) the tensors are named after the layer the adapter
 * follows, in PyTorch orientation, as AdapterHub's bottleneck adapters name them:
 * {@code base_model.model.<layer>.adapter_down.weight [m, d]} ({@code Wdᵀ}),
 * {@code .adapter_down.bias [m]}, {@code .adapter_up.weight [d, m]} ({@code Wuᵀ}),
 * {@code .adapter_up.bias [d]}.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public class BottleneckAdapterLayer extends BaseTunerLayer implements AdapterLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of the down-projection {@code Wd [d, m]}. */
    public static final String DOWN_W = "downW";
    /** Parameter key of the down-projection bias {@code bd [m]}. */
    public static final String DOWN_B = "downB";
    /** Parameter key of the up-projection {@code Wu [m, d]}. */
    public static final String UP_W = "upW";
    /** Parameter key of the up-projection bias {@code bu [d]}. */
    public static final String UP_B = "upB";

    @JsonProperty("insertedAfter")
    private String insertedAfter;
    @JsonProperty("bottleneckSize")
    private long bottleneckSize;

    /** For JSON deserialization. */
    protected BottleneckAdapterLayer() {
    }

    /**
     * @param insertedAfter the base model's name for the layer it follows (names its tensors in adapter files)
     * @param size the feature size {@code d} of the layer it follows
     * @param bottleneckSize {@code m}
     * @param nonlinearity {@code act}
     */
    public BottleneckAdapterLayer(String insertedAfter, long size, long bottleneckSize, IActivation nonlinearity) {
        if (size <= 0 || bottleneckSize <= 0) {
            throw new IllegalArgumentException("adapter sizes must be positive; got d=" + size + ", m=" + bottleneckSize);
        }
        this.insertedAfter = java.util.Objects.requireNonNull(insertedAfter, "insertedAfter must not be null");
        this.nIn = size;
        this.nOut = size;
        this.bottleneckSize = bottleneckSize;
        this.activationFn = nonlinearity;
    }

    /** The bottleneck size {@code m}. */
    @JsonIgnore
    public long bottleneckSize() {
        return bottleneckSize;
    }

    /** The layer this adapter follows. */
    @Override
    public String baseLayerName() {
        return insertedAfter;
    }

    /** {@code adapter_down.weight [m, d]}, {@code adapter_down.bias [m]}, {@code adapter_up.weight [d, m]}, {@code adapter_up.bias [d]}. */
    @Override
    public List<FrozenDenseLayer.SavedTensor> savedTensors() {
        return List.of(new FrozenDenseLayer.SavedTensor(DOWN_W, "adapter_down.weight", true),
                new FrozenDenseLayer.SavedTensor(DOWN_B, "adapter_down.bias", false),
                new FrozenDenseLayer.SavedTensor(UP_W, "adapter_up.weight", true),
                new FrozenDenseLayer.SavedTensor(UP_B, "adapter_up.bias", false));
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put(DOWN_W, new long[] {nIn, bottleneckSize});
        m.put(DOWN_B, new long[] {bottleneckSize});
        m.put(UP_W, new long[] {bottleneckSize, nOut});
        m.put(UP_B, new long[] {nOut});
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return DOWN_W.equals(key) || UP_W.equals(key);
    }

    @Override
    public boolean isBiasParam(String key) {
        return DOWN_B.equals(key) || UP_B.equals(key);
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (DOWN_W.equals(key)) {
            double bound = 1.0 / Math.sqrt(nIn);
            view.assign(Nd4j.rand(view.dataType(), view.shape()).muli(2 * bound).subi(bound));
        } else if (paramShapes().containsKey(key)) {
            view.assign(0);
        } else {
            throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for adapter " + getLayerName()
                    + "; keys are " + paramShapes().keySet());
        }
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new BottleneckAdapterLayerImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    /** The output has the input's type: {@code [batch, d]} or {@code [batch, d, time]}. */
    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        return inputType;
    }

    /** The size is fixed by the layer it follows; the input type is only checked. */
    @Override
    public void setNIn(InputType inputType, boolean override) {
        long size = inputType instanceof InputType.InputTypeRecurrent ? ((InputType.InputTypeRecurrent) inputType).getSize()
                : inputType instanceof InputType.InputTypeFeedForward ? ((InputType.InputTypeFeedForward) inputType).getSize()
                : -1;
        if (size != -1 && size != nIn) {
            throw new IllegalArgumentException("adapter " + getLayerName() + " expects feature size " + nIn + ", got "
                    + inputType);
        }
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        return ParamLayoutInitializer.memoryReport(this, inputType, inputType, bottleneckSize);
    }

    @Override
    public String toString() {
        return "BottleneckAdapterLayer(name=" + getLayerName() + ", after=" + insertedAfter + ", d=" + nIn + ", m=" + bottleneckSize
                + ", nonlinearity=" + activationFn + ", enabled=" + isAdapterEnabled() + ")";
    }
}
