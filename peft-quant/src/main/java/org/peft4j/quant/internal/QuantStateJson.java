package org.peft4j.quant.internal;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.spi.Messages;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.quant.QuantType;

/**
 * The non-tensor part of a bitsandbytes 4-bit quant state, as {@code QuantState.as_dict(packed=True)}
 * stores it under {@code <param>.quant_state.bitsandbytes__nf4}: the UTF-8 bytes of
 * {@code json.dumps} of {@code quant_type, blocksize, dtype, shape} and, when double-quantized,
 * {@code nested_blocksize, nested_dtype, nested_offset}, in that order, with Python's separators
 * ({@code ", "}, {@code ": "}) and Python's float repr for the offset.
 *
 * <p>Thread-safety: immutable; the shared {@link ObjectMapper} is only used for reading, which is
 * thread-safe.
 */
public final class QuantStateJson {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** The decoded state. */
    public record State(QuantType type, int blockSize, String dtype, long[] shape, boolean nested,
                        int nestedBlockSize, String nestedDtype, float offset) {
    }

    private QuantStateJson() {
    }

    /** The packed JSON bytes for a float32 tensor. */
    public static byte[] encode(QuantType type, int blockSize, long[] shape, boolean nested, int nestedBlockSize,
                                float offset) {
        StringBuilder sb = new StringBuilder();
        sb.append("{\"quant_type\": \"").append(type.bitsandbytesName()).append('"');
        sb.append(", \"blocksize\": ").append(blockSize);
        sb.append(", \"dtype\": \"float32\"");
        sb.append(", \"shape\": [");
        for (int i = 0; i < shape.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        sb.append(']');
        if (nested) {
            sb.append(", \"nested_blocksize\": ").append(nestedBlockSize);
            sb.append(", \"nested_dtype\": \"float32\"");
            sb.append(", \"nested_offset\": ").append(pythonRepr(offset));
        }
        sb.append('}');
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Parses packed JSON bytes.
     *
     * @param what names the tensor in error messages
     * @throws AdapterFormatException if the JSON is malformed or a required key is missing or wrong
     */
    public static State decode(byte[] json, String what) {
        JsonNode root;
        try {
            PeftJson.refuseLongNumbers(new String(json, StandardCharsets.UTF_8), what);
            root = MAPPER.readTree(json);
        } catch (IOException e) {
            // Jackson's message quotes up to 500 characters of the input (escaped): shortened.
            throw new AdapterFormatException(what + " is not valid UTF-8 JSON: " + Messages.shorten(e.getMessage()), e);
        }
        if (root == null || !root.isObject()) {
            throw new AdapterFormatException(what + " should hold a JSON object; found "
                    + Messages.shorten(new String(json, StandardCharsets.UTF_8)));
        }
        QuantType type;
        try {
            type = QuantType.fromBitsandbytesName(text(root, "quant_type", what));
        } catch (IllegalArgumentException e) {
            throw new AdapterFormatException(what + ": " + Messages.shorten(e.getMessage()), e);
        }
        int blockSize = integer(root, "blocksize", what);
        String dtype = text(root, "dtype", what);
        JsonNode shapeNode = root.get("shape");
        if (shapeNode == null || !shapeNode.isArray() || shapeNode.size() == 0) {
            throw new AdapterFormatException(what + ": \"shape\" should be a non-empty list of integers; found "
                    + Messages.shorten(shapeNode));
        }
        long[] shape = new long[shapeNode.size()];
        Iterator<JsonNode> it = shapeNode.elements();
        for (int i = 0; it.hasNext(); i++) {
            JsonNode d = it.next();
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw new AdapterFormatException(what + ": \"shape\" entry " + i + " is " + Messages.shorten(d)
                        + "; expected a non-negative integer");
            }
            shape[i] = d.asLong();
        }
        boolean nested = root.has("nested_offset");
        int nestedBlockSize = nested ? integer(root, "nested_blocksize", what) : 0;
        String nestedDtype = nested && root.has("nested_dtype") ? text(root, "nested_dtype", what) : "float32";
        float offset = 0f;
        if (nested) {
            JsonNode o = root.get("nested_offset");
            if (!o.isNumber() || !(Math.abs(o.asDouble()) <= Float.MAX_VALUE)) {
                throw new AdapterFormatException(what + ": \"nested_offset\" is " + Messages.shorten(o) + "; expected a "
                        + "number a float can hold (the offset is added to float block scales)");
            }
            offset = (float) o.asDouble();
        }
        for (Iterator<Map.Entry<String, JsonNode>> f = root.fields(); f.hasNext(); ) {
            String k = f.next().getKey();
            if (!Arrays.asList("quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype",
                    "nested_offset").contains(k)) {
                throw new AdapterFormatException(what + " has unknown key \"" + Messages.shorten(k) + "\"");
            }
        }
        return new State(type, blockSize, dtype, shape, nested, nestedBlockSize, nestedDtype, offset);
    }

    private static String text(JsonNode root, String key, String what) {
        JsonNode n = root.get(key);
        if (n == null || !n.isTextual()) {
            throw new AdapterFormatException(what + ": \"" + key + "\" should be a string; found " + Messages.shorten(n));
        }
        return n.asText();
    }

    private static int integer(JsonNode root, String key, String what) {
        JsonNode n = root.get(key);
        if (n == null || !n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new AdapterFormatException(what + ": \"" + key + "\" should be an integer; found " + Messages.shorten(n));
        }
        return n.asInt();
    }

    /** Python's {@code repr(float(f))}: shortest round-trip digits, exponent below 1e-4 or from 1e16. */
    static String pythonRepr(float f) {
        double d = f;
        if (d == 0) {
            return Float.floatToRawIntBits(f) < 0 ? "-0.0" : "0.0";
        }
        BigDecimal bd = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        double abs = Math.abs(d);
        if (abs >= 1e-4 && abs < 1e16) {
            String s = bd.toPlainString();
            return s.contains(".") ? s : s + ".0";
        }
        int exp = bd.precision() - bd.scale() - 1;
        BigDecimal mant = bd.movePointLeft(exp);
        String m = mant.toPlainString();
        return m + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
    }
}
