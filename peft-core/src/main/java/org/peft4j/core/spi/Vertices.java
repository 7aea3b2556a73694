package org.peft4j.core.spi;

import java.util.Map;
import java.util.StringJoiner;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;

/**
 * Reading layer configurations out of a graph configuration, for tuner configs that look at the
 * base graph (in {@code graphEdits}) and for their error messages.
 *
 * <p>Thread-safety: stateless.
 */
public final class Vertices {

    private Vertices() {
    }

    /** The layer configuration of {@code v}, or null when it is not a layer vertex (or null). */
    public static Layer layerOf(GraphVertex v) {
        return v instanceof LayerVertex ? ((LayerVertex) v).getLayerConf().getLayer() : null;
    }

    /** The layer configuration of the vertex named {@code name}, or null when there is no such layer. */
    public static Layer layerOf(ComputationGraphConfiguration conf, String name) {
        return layerOf(conf.getVertices().get(name));
    }

    /**
     * The graph's vertices as {@code name (LayerType)}, comma-separated, for messages that say
     * what exists ("layers are: dense0 (DenseLayer), lstm (LSTM), ...").
     */
    public static String describeLayers(ComputationGraphConfiguration conf) {
        StringJoiner j = new StringJoiner(", ");
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            Layer l = layerOf(e.getValue());
            j.add(e.getKey() + " (" + (l == null ? e.getValue().getClass().getSimpleName() : l.getClass().getSimpleName()) + ")");
        }
        return j.toString();
    }
}
