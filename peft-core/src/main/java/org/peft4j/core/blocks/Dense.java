package org.peft4j.core.blocks;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Map;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.params.DefaultParamInitializer;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.blocks.internal.DenseImpl;

/**
 * DL4J's dense layer {@code z = x·W + b}, {@code y = act(z)} ({@code x [rows, nIn]},
 * {@code W [nIn, nOut]}, {@code b [nOut]}) with peft4j's implementation: the same configuration,
 * parameters (keys {@code W} and {@code b}, the same flat layout) and results as a stock
 * {@link DenseLayer}, so everything that takes a dense layer takes it (tuners adapt it as a
 * {@link org.peft4j.core.TargetKind#DENSE} layer; {@code instanceof DenseLayer} holds), computed
 * with fewer passes over memory. {@link Transformers} builds its projections and MLPs with it.
 *
 * <p>Why: on nd4j-native 1.0.0-M2.1 the stock layer multiplies into a temporary array and copies
 * it into its output, applies the mask twice, and recomputes {@code x·W} in the backward pass;
 * those copies took more time than the product itself in MiniLM-sized inference at batch 32. Here
 * the product is written straight into the output (in {@code 'c'} order, like the other peft4j
 * layers, so that element-wise work after it meets one order), the mask is applied once, and a
 * training forward pass keeps {@code z} for the backward pass. The input gradient is returned in the
 * input's order.
 *
 * <p>Not supported (refused when the layer is created): DL4J's built-in layer normalization of the
 * pre-activation ({@code hasLayerNorm}). Weight noise, dropout, constraints, regularization and every
 * activation work as in the stock layer.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public class Dense extends DenseLayer {
    private static final long serialVersionUID = 1L;

    /** For JSON deserialization. */
    public Dense() {
    }

    /**
     * A {@code Dense} with every setting of {@code layer} (made with {@link DenseLayer.Builder}).
     *
     * @throws IllegalArgumentException if {@code layer} normalizes its pre-activation ({@code hasLayerNorm})
     */
    public static Dense of(DenseLayer layer) {
        if (layer.hasLayerNorm()) {
            throw new IllegalArgumentException("Dense does not implement DenseLayer's hasLayerNorm; use a LayerNorm "
                    + "layer before the dense layer instead");
        }
        Dense d = new Dense();
        d.layerName = layer.getLayerName();
        d.iDropout = layer.getIDropout();
        d.constraints = layer.getConstraints() == null ? null : new ArrayList<>(layer.getConstraints());
        d.activationFn = layer.getActivationFn();
        d.weightInitFn = layer.getWeightInitFn();
        d.biasInit = layer.getBiasInit();
        d.gainInit = layer.getGainInit();
        d.regularization = layer.getRegularization() == null ? null : new ArrayList<>(layer.getRegularization());
        d.regularizationBias = layer.getRegularizationBias() == null ? null
                : new ArrayList<>(layer.getRegularizationBias());
        d.iUpdater = layer.getIUpdater();
        d.biasUpdater = layer.getBiasUpdater();
        d.weightNoise = layer.getWeightNoise();
        d.gradientNormalization = layer.getGradientNormalization();
        d.gradientNormalizationThreshold = layer.getGradientNormalizationThreshold();
        d.nIn = layer.getNIn();
        d.nOut = layer.getNOut();
        d.timeDistributedFormat = layer.getTimeDistributedFormat();
        d.setHasBias(layer.hasBias());
        d.setHasLayerNorm(false);
        return d;
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> trainingListeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        if (hasLayerNorm()) {
            throw new IllegalStateException("layer \"" + getLayerName() + "\" (Dense) has hasLayerNorm set, which Dense "
                    + "does not implement; use a LayerNorm layer before it");
        }
        DenseImpl ret = new DenseImpl(conf, networkDataType);
        ret.setListeners(trainingListeners);
        ret.setIndex(layerIndex);
        ret.setParamsViewArray(layerParamsView);
        Map<String, INDArray> paramTable = initializer().init(conf, layerParamsView, initializeParams);
        ret.setParamTable(paramTable);
        ret.setConf(conf);
        return ret;
    }

    @Override
    public ParamInitializer initializer() {
        return DefaultParamInitializer.getInstance();
    }

    /** A {@code Dense} equals another {@code Dense} of the same settings, never a stock {@link DenseLayer}. */
    @Override
    public boolean equals(Object o) {
        return o instanceof Dense && super.equals(o);
    }

    @Override
    protected boolean canEqual(Object other) {
        return other instanceof Dense;
    }

    @Override
    public int hashCode() {
        return 31 * super.hashCode() + Dense.class.hashCode();
    }

    @Override
    public String toString() {
        return "Dense(name=" + getLayerName() + ", nIn=" + getNIn() + ", nOut=" + getNOut() + ", activation="
                + getActivationFn() + ", hasBias=" + hasBias() + ")";
    }
}
