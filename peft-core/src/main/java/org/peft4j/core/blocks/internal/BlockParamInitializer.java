package org.peft4j.core.blocks.internal;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.api.ParamInitializer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.blocks.BlockLayer;

/**
 * Parameter initializer of every {@link BlockLayer}: the layout is the configuration's
 * {@link BlockLayer#paramShapes()}, each parameter a {@code 'c'}-ordered view of consecutive
 * elements of the layer's slice of the flat vector; gradient views mirror parameter views.
 *
 * <p>Thread-safety: stateless.
 */
public final class BlockParamInitializer implements ParamInitializer {

    public static final BlockParamInitializer INSTANCE = new BlockParamInitializer();

    private BlockParamInitializer() {
    }

    private static BlockLayer layout(Layer layer) {
        if (!(layer instanceof BlockLayer)) {
            throw new IllegalArgumentException("BlockParamInitializer serves BlockLayer only, got "
                    + (layer == null ? "null" : layer.getClass().getName()));
        }
        return (BlockLayer) layer;
    }

    static long length(long[] shape) {
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
            if (!isWeightParam(layer, k)) {
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
        return layout(layer).paramShapes().containsKey(key) && !layout(layer).isWeightParam(key);
    }

    @Override
    public Map<String, INDArray> init(NeuralNetConfiguration conf, INDArray paramsView, boolean initializeParams) {
        BlockLayer layer = layout(conf.getLayer());
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

    private static Map<String, INDArray> views(BlockLayer layer, INDArray flat) {
        Map<String, long[]> shapes = layer.paramShapes();
        if (shapes.isEmpty()) {
            return Collections.synchronizedMap(new LinkedHashMap<>());
        }
        long expected = 0;
        for (long[] s : shapes.values()) {
            expected += length(s);
        }
        if (flat == null || flat.length() != expected) {
            throw new IllegalStateException("layer " + layer.getLayerName() + " expects " + expected
                    + " parameters, got a view of " + (flat == null ? "null" : String.valueOf(flat.length())));
        }
        INDArray row = flat.reshape(flat.length());
        Map<String, INDArray> out = new LinkedHashMap<>();
        long offset = 0;
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            long n = length(e.getValue());
            out.put(e.getKey(), row.get(NDArrayIndex.interval(offset, offset + n)).reshape('c', e.getValue()));
            offset += n;
        }
        return out;
    }
}
