package org.peft4j.core.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.AdapterFormatException;

/**
 * What identifies a base model for an adapter: every layer's parameter names and shapes, and a
 * SHA-256 over the layer names, keys, shapes and the parameter values as little-endian float32
 * (so a float and a double copy of one model agree). Written into {@code adapter_config.json}
 * and compared on load.
 *
 * <p>Thread-safety: immutable.
 */
public record BaseFingerprint(String sha256, Map<String, Map<String, List<Long>>> layers) {

    /** The fingerprint of a plain (unwrapped) base graph. */
    public static BaseFingerprint of(ComputationGraph base) {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
        Map<String, Map<String, List<Long>>> layers = new TreeMap<>();
        for (Map.Entry<String, GraphVertex> e : base.getConfiguration().getVertices().entrySet()) {
            if (!(e.getValue() instanceof LayerVertex)) {
                continue;
            }
            Layer l = base.getLayer(e.getKey());
            Map<String, List<Long>> shapes = new TreeMap<>();
            for (Map.Entry<String, INDArray> p : new TreeMap<>(l.paramTable()).entrySet()) {
                List<Long> shape = new ArrayList<>();
                for (long s : p.getValue().shape()) {
                    shape.add(s);
                }
                shapes.put(p.getKey(), shape);
                md.update((e.getKey() + "\u0000" + p.getKey() + "\u0000" + shape + "\u0000").getBytes(StandardCharsets.UTF_8));
                float[] values = p.getValue().castTo(DataType.FLOAT).dup('c').data().asFloat();
                ByteBuffer buf = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(values);
                md.update(buf.array());
            }
            layers.put(e.getKey(), shapes);
        }
        return new BaseFingerprint(HexFormat.of().formatHex(md.digest()), layers);
    }

    /** The JSON form stored under {@code peft4j.base_model_fingerprint}. */
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("sha256", sha256);
        m.put("layers", layers);
        return m;
    }

    /** Reads the JSON form; {@link AdapterFormatException} if its types are wrong. */
    @SuppressWarnings("unchecked")
    public static BaseFingerprint fromJson(Object json, String what) {
        if (!(json instanceof Map) || !(((Map<String, Object>) json).get("sha256") instanceof String)
                || !(((Map<String, Object>) json).get("layers") instanceof Map)) {
            throw new AdapterFormatException(what + ": base_model_fingerprint must be an object with \"sha256\" (string) "
                    + "and \"layers\" (object)");
        }
        Map<String, Object> m = (Map<String, Object>) json;
        Map<String, Map<String, List<Long>>> layers = new TreeMap<>();
        for (Map.Entry<String, Object> e : ((Map<String, Object>) m.get("layers")).entrySet()) {
            if (!(e.getValue() instanceof Map)) {
                throw new AdapterFormatException(what + ": fingerprint of layer " + e.getKey() + " must be an object");
            }
            Map<String, List<Long>> shapes = new TreeMap<>();
            for (Map.Entry<String, Object> p : ((Map<String, Object>) e.getValue()).entrySet()) {
                if (!(p.getValue() instanceof List)) {
                    throw new AdapterFormatException(what + ": shape of " + e.getKey() + "." + p.getKey() + " must be a list");
                }
                List<Long> shape = new ArrayList<>();
                for (Object o : (List<Object>) p.getValue()) {
                    if (!(o instanceof Number)) {
                        throw new AdapterFormatException(what + ": shape of " + e.getKey() + "." + p.getKey()
                                + " must hold integers");
                    }
                    shape.add(((Number) o).longValue());
                }
                shapes.put(p.getKey(), shape);
            }
            layers.put(e.getKey(), shapes);
        }
        return new BaseFingerprint((String) m.get("sha256"), layers);
    }

    /** What differs between the model an adapter was trained on ({@code this}) and {@code actual}; empty if nothing. */
    public List<String> differences(BaseFingerprint actual) {
        List<String> d = new ArrayList<>();
        for (String layer : layers.keySet()) {
            if (!actual.layers.containsKey(layer)) {
                d.add("layer " + layer + " is missing from the base model");
            } else if (!layers.get(layer).equals(actual.layers.get(layer))) {
                d.add("layer " + layer + " has parameters " + actual.layers.get(layer) + ", the adapter expects "
                        + layers.get(layer));
            }
        }
        for (String layer : actual.layers.keySet()) {
            if (!layers.containsKey(layer)) {
                d.add("the base model has layer " + layer + ", which the adapter's base model lacked");
            }
        }
        if (d.isEmpty() && !sha256.equals(actual.sha256)) {
            d.add("same layers and shapes, but the weights differ (SHA-256 " + actual.sha256 + ", the adapter expects "
                    + sha256 + ")");
        }
        return d;
    }
}
