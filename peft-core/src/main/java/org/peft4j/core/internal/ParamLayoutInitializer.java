package org.peft4j.core.internal;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.nn.conf.memory.MemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.FrozenDenseLayer;

/**
 * Parameter initializer for every {@link ParamLayout} layer ({@link FrozenDenseLayer}, its tuner
 * subclasses, layers tuners insert): the layout is whatever the configuration's
 * {@link ParamLayout#paramShapes()} says, each parameter an
 * {@code 'f'}-ordered view of consecutive elements of the layer's slice of the flat vector, and the
 * gradient views mirror the parameter views exactly. {@link #attach} and {@link #memoryReport} are
 * the parts of {@code Layer.instantiate} and {@code Layer.getMemoryReport} that every such layer
 * shares.
 *
 * <p>Thread-safety: stateless.
 */
public final class ParamLayoutInitializer implements ParamInitializer {

    public static final ParamLayoutInitializer INSTANCE = new ParamLayoutInitializer();

    private ParamLayoutInitializer() {
    }

    /**
     * Wires a new layer implementation for {@code conf}, as a layer configuration's
     * {@code instantiate} does: listeners, index, the layer's slice of the flat parameter vector and
     * the parameter views over it (initialised when {@code initializeParams}), then the configuration.
     *
     * @return {@code impl}
     */
    public static <T extends org.deeplearning4j.nn.api.Layer> T attach(T impl, NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams) {
        impl.setListeners(listeners);
        impl.setIndex(layerIndex);
        impl.setParamsViewArray(layerParamsView);
        impl.setParamTable(INSTANCE.init(conf, layerParamsView, initializeParams));
        impl.setConf(conf);
        return impl;
    }

    /**
     * The memory report of a {@link ParamLayout} layer: its parameters and their updater state,
     * {@code workingPerExample} elements of working memory per example, no cache.
     */
    public static LayerMemoryReport memoryReport(BaseLayer layer, InputType inputType, InputType outputType,
            long workingPerExample) {
        long numParams = INSTANCE.numParams(layer);
        long updaterState = layer.getIUpdater() == null ? 0 : layer.getIUpdater().stateSize(numParams);
        return new LayerMemoryReport.Builder(layer.getLayerName(), layer.getClass(), inputType, outputType)
                .standardMemory(numParams, updaterState)
                .workingMemory(0, 0, 0, workingPerExample)
                .cacheMemory(MemoryReport.CACHE_MODE_ALL_ZEROS, MemoryReport.CACHE_MODE_ALL_ZEROS)
                .build();
    }

    private static ParamLayout layout(Layer layer) {
        if (!(layer instanceof ParamLayout)) {
            throw new IllegalArgumentException("ParamLayoutInitializer serves ParamLayout layers only, got "
                    + (layer == null ? "null" : layer.getClass().getName()));
        }
        return (ParamLayout) layer;
    }

    private static long length(long[] shape) {
        long n = 1;
        for (long s : shape) {
            n = Math.multiplyExact(n, s);
        }
        return n;
    }

    @Override
    public long numParams(NeuralNetConfiguration conf) {
        return numParams(conf.getLayer());
    }

    @Override
    public long numParams(Layer layer) {
        long n = 0;
        for (long[] shape : layout(layer).paramShapes().values()) {
            n += length(shape);
        }
        return n;
    }

    @Override
    public List<String> paramKeys(Layer layer) {
        return new ArrayList<>(layout(layer).paramShapes().keySet());
    }

    @Override
    public List<String> weightKeys(Layer layer) {
        List<String> keys = new ArrayList<>();
        for (String k : paramKeys(layer)) {
            if (isWeightParam(layer, k)) {
                keys.add(k);
            }
        }
        return keys;
    }

    @Override
    public List<String> biasKeys(Layer layer) {
        List<String> keys = new ArrayList<>();
        for (String k : paramKeys(layer)) {
            if (isBiasParam(layer, k)) {
                keys.add(k);
            }
        }
        return keys;
    }

    @Override
    public boolean isWeightParam(Layer layer, String key) {
        return layout(layer).isWeightParam(key);
    }

    @Override
    public boolean isBiasParam(Layer layer, String key) {
        return layout(layer).isBiasParam(key);
    }

    @Override
    public Map<String, INDArray> init(NeuralNetConfiguration conf, INDArray paramsView, boolean initializeParams) {
        ParamLayout layer = layout(conf.getLayer());
        Map<String, INDArray> views = views(layer, paramsView);
        conf.clearVariables();
        for (Map.Entry<String, INDArray> e : views.entrySet()) {
            conf.addVariable(e.getKey());
            if (initializeParams) {
                layer.initParam(e.getKey(), e.getValue());
            }
        }
        return views;
    }

    @Override
    public Map<String, INDArray> getGradientsFromFlattened(NeuralNetConfiguration conf, INDArray gradientView) {
        return views(layout(conf.getLayer()), gradientView);
    }

    private static Map<String, INDArray> views(ParamLayout layer, INDArray flat) {
        Map<String, long[]> shapes = layer.paramShapes();
        if (shapes.isEmpty()) {
            return Collections.synchronizedMap(new LinkedHashMap<>());
        }
        long expected = 0;
        for (long[] s : shapes.values()) {
            expected += length(s);
        }
        if (flat == null || flat.length() != expected) {
            throw new IllegalStateException("layer " + ((Layer) layer).getLayerName() + " expects " + expected
                    + " parameters, got a view of " + (flat == null ? "null" : String.valueOf(flat.length())));
        }
        INDArray row = flat.reshape(flat.length());
        Map<String, INDArray> out = new LinkedHashMap<>();
        long offset = 0;
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            long n = length(e.getValue());
            out.put(e.getKey(), row.get(NDArrayIndex.interval(offset, offset + n)).reshape(layer.paramOrder(), e.getValue()));
            offset += n;
        }
        return out;
    }
}
