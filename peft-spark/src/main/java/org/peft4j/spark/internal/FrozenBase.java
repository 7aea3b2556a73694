package org.peft4j.spark.internal;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.nd4j.shade.jackson.core.JsonProcessingException;
import org.peft4j.core.DetachableFrozenState;

/**
 * The frozen state of a wrapped graph, by vertex name: the layer configurations that hold
 * frozen arrays ({@link DetachableFrozenState}), to be broadcast once and re-attached on every
 * worker to configurations sent without them ({@link #strip}, {@link #attachTo}).
 *
 * <p>It travels as each layer's configuration JSON, the one encoding DL4J guarantees for every
 * layer (Java serialization is not: peft-quant's 4-bit tensors are not {@code Serializable}),
 * deflated (the arrays are base64 in the JSON; deflate's Huffman coding takes back base64's
 * third, which Spark's LZ4 broadcast compression does not), and the same under Spark's Java and
 * Kryo serializers (only the map of deflated bytes is a serialized field). It is parsed once
 * per deserialized instance, i.e. once per executor JVM, since Spark keeps one deserialized
 * value of a broadcast per executor.
 *
 * <p>Thread-safety: immutable apart from the parsed layers, which are computed once under this
 * instance's lock; the parsed layers are shared by every worker of an executor and never written.
 */
public final class FrozenBase implements Serializable {
    private static final long serialVersionUID = 1L;

    private final Map<String, byte[]> layerJson;
    private transient Map<String, Layer> layers;

    private FrozenBase(Map<String, byte[]> layerJson, Map<String, Layer> layers) {
        this.layerJson = layerJson;
        this.layers = layers;
    }

    /** The frozen state held by {@code conf}'s layers (their configurations, not copies of the arrays). */
    public static FrozenBase of(ComputationGraphConfiguration conf) {
        Map<String, byte[]> json = new LinkedHashMap<>();
        Map<String, Layer> layers = new LinkedHashMap<>();
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            Layer l = layerOf(e.getValue());
            if (l instanceof DetachableFrozenState) {
                try {
                    json.put(e.getKey(), deflate(NeuralNetConfiguration.mapper().writeValueAsString(l)));
                } catch (JsonProcessingException ex) {
                    throw new IllegalStateException("layer " + e.getKey() + " (" + l.getClass().getName()
                            + ") cannot be written as JSON, so its frozen weights cannot be sent to the workers", ex);
                }
                layers.put(e.getKey(), l);
            }
        }
        return new FrozenBase(Map.copyOf(json), layers);
    }

    /** Number of layers whose frozen state this holds. */
    public int size() {
        return layerJson.size();
    }

    /** Bytes of deflated JSON this holds. */
    public long bytes() {
        return layerJson.values().stream().mapToLong(b -> b.length).sum();
    }

    /**
     * A copy of {@code conf} ({@code clone()}) whose layers that hold frozen state hold none
     * ({@link DetachableFrozenState#withoutFrozenState()}); {@code conf} is not modified.
     */
    public static ComputationGraphConfiguration strip(ComputationGraphConfiguration conf) {
        ComputationGraphConfiguration c = conf.clone();
        for (GraphVertex v : c.getVertices().values()) {
            Layer l = layerOf(v);
            if (l instanceof DetachableFrozenState) {
                ((LayerVertex) v).getLayerConf().setLayer(((DetachableFrozenState) l).withoutFrozenState());
            }
        }
        return c;
    }

    /**
     * Re-attaches the frozen state to the layers of {@code conf}, a stripped copy of the
     * configuration this was made from; {@code conf} must not be in use by a graph.
     *
     * @throws IllegalStateException if {@code conf}'s frozen layers are not those this holds
     */
    public void attachTo(ComputationGraphConfiguration conf) {
        Map<String, Layer> frozen = layers();
        int attached = 0;
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            Layer l = layerOf(e.getValue());
            if (l instanceof DetachableFrozenState) {
                Layer source = frozen.get(e.getKey());
                if (source == null) {
                    throw new IllegalStateException("no frozen state was broadcast for layer " + e.getKey()
                            + "; the graph trained is not the one whose base was broadcast");
                }
                ((DetachableFrozenState) l).attachFrozenState(source);
                attached++;
            }
        }
        if (attached != frozen.size()) {
            throw new IllegalStateException("frozen state was broadcast for " + frozen.size() + " layers "
                    + frozen.keySet() + ", the configuration has " + attached
                    + "; the graph trained is not the one whose base was broadcast");
        }
    }

    private synchronized Map<String, Layer> layers() {
        if (layers == null) {
            Map<String, Layer> m = new LinkedHashMap<>();
            for (Map.Entry<String, byte[]> e : layerJson.entrySet()) {
                try {
                    m.put(e.getKey(), NeuralNetConfiguration.mapper().readValue(inflate(e.getValue()), Layer.class));
                } catch (IOException ex) {
                    throw new UncheckedIOException("cannot read the broadcast frozen state of layer " + e.getKey(), ex);
                }
            }
            layers = m;
        }
        return layers;
    }

    private void readObject(ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        if (layerJson == null) {
            throw new java.io.InvalidObjectException("frozen base without layers");
        }
    }

    private static byte[] deflate(String json) {
        Deflater d = new Deflater(Deflater.BEST_SPEED);
        try {
            d.setInput(json.getBytes(StandardCharsets.UTF_8));
            d.finish();
            ByteArrayOutputStream out = new ByteArrayOutputStream(json.length() / 2 + 64);
            byte[] buf = new byte[1 << 16];
            while (!d.finished()) {
                out.write(buf, 0, d.deflate(buf));
            }
            return out.toByteArray();
        } finally {
            d.end();
        }
    }

    private static String inflate(byte[] deflated) throws IOException {
        Inflater in = new Inflater();
        try {
            in.setInput(deflated);
            ByteArrayOutputStream out = new ByteArrayOutputStream(deflated.length * 2);
            byte[] buf = new byte[1 << 16];
            while (!in.finished()) {
                int n = in.inflate(buf);
                if (n == 0 && (in.needsInput() || in.needsDictionary())) {
                    throw new java.io.EOFException("truncated frozen state");
                }
                out.write(buf, 0, n);
            }
            return out.toString(StandardCharsets.UTF_8);
        } catch (DataFormatException e) {
            throw new IOException("corrupt frozen state", e);
        } finally {
            in.end();
        }
    }

    private static Layer layerOf(GraphVertex v) {
        return v instanceof LayerVertex ? ((LayerVertex) v).getLayerConf().getLayer() : null;
    }
}
