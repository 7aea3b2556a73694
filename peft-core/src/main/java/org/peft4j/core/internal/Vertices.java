package org.peft4j.core.internal;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;

/**
 * Reading layer configurations out of a graph configuration, for tuner configs that look at the
 * base graph in {@code graphEdits}.
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
}
