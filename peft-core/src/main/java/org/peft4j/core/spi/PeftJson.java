package org.peft4j.core.spi;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.nd4j.shade.jackson.core.JsonFactory;
import org.nd4j.shade.jackson.core.JsonParser;
import org.nd4j.shade.jackson.core.JsonProcessingException;
import org.nd4j.shade.jackson.core.JsonToken;
import org.nd4j.shade.jackson.databind.DeserializationFeature;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.core.AdapterFormatException;

/**
 * JSON as Hugging Face PEFT writes {@code adapter_config.json} (Python's
 * {@code json.dumps(indent=2, sort_keys=True)}): keys sorted, two-space indent, {@code "key": value},
 * non-ASCII escaped as {@code \\uXXXX}, floats in Python's notation. Parsing uses Jackson (the
 * copy shaded into ND4J), refuses duplicate keys and reports every problem as an
 * {@link AdapterFormatException}.
 *
 * <p>Thread-safety: stateless.
 */
public final class PeftJson {

    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /**
     * Longest number accepted, in characters. A float64 needs at most 24 and a long 20; Jackson
     * 2.13 (no length limits of its own) turns a long integer literal into a {@code BigInteger} in
     * time quadratic in its length: one of 10^6 digits took 15 s here, and a 16 MiB config could
     * hold one of 16·10^6.
     */
    static final int MAX_NUMBER_CHARS = 100;
    /** A plain tokenizer for {@link #refuseLongNumbers}: no duplicate-key or other rules of its own. */
    private static final JsonFactory TOKENS = new JsonFactory();

    private PeftJson() {
    }

    /** Writes a JSON object of strings, numbers, booleans, null, lists and maps. */
    public static String write(Map<String, ?> object) {
        StringBuilder sb = new StringBuilder();
        value(sb, object, 0);
        return sb.toString();
    }

    /**
     * Parses a JSON object.
     *
     * @param what names the file in messages
     * @throws AdapterFormatException if the bytes are not UTF-8 JSON holding one object
     */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(byte[] bytes, String what) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new AdapterFormatException(what + " is not valid UTF-8");
        }
        Object v;
        try {
            refuseLongNumbers(text, what);
            v = MAPPER.readValue(text, Object.class);
        } catch (JsonProcessingException e) {
            // Jackson's message can quote up to 500 characters of the input (escaped): shortened.
            throw new AdapterFormatException(what + " is not valid JSON: " + Messages.shorten(e.getOriginalMessage()), e);
        } catch (IOException e) {
            throw new AdapterFormatException(what + " could not be parsed: " + Messages.shorten(e.getMessage()), e);
        }
        if (!(v instanceof Map)) {
            throw new AdapterFormatException(what + " must hold a JSON object; got "
                    + (v == null ? "null" : v.getClass().getSimpleName()));
        }
        return (Map<String, Object>) v;
    }

    /**
     * Tokenizes {@code text} (in linear time, converting no number) and refuses a number longer
     * than {@link #MAX_NUMBER_CHARS}; call it before handing untrusted JSON to Jackson.
     *
     * @throws AdapterFormatException naming the number's line and column
     * @throws IOException if the text is not JSON (Jackson's {@code JsonProcessingException})
     */
    public static void refuseLongNumbers(String text, String what) throws IOException {
        try (JsonParser p = TOKENS.createParser(text)) {
            for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
                if ((t == JsonToken.VALUE_NUMBER_INT || t == JsonToken.VALUE_NUMBER_FLOAT)
                        && p.getTextLength() > MAX_NUMBER_CHARS) {
                    throw new AdapterFormatException(what + ": the number at line " + p.getTokenLocation().getLineNr()
                            + ", column " + p.getTokenLocation().getColumnNr() + " has " + p.getTextLength()
                            + " characters; numbers here have at most " + MAX_NUMBER_CHARS);
                }
            }
        }
    }

    private static void indent(StringBuilder sb, int level) {
        sb.append('\n');
        for (int i = 0; i < level; i++) {
            sb.append("  ");
        }
    }

    private static void value(StringBuilder sb, Object v, int level) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String) {
            string(sb, (String) v);
        } else if (v instanceof Boolean) {
            sb.append(((Boolean) v) ? "true" : "false");
        } else if (v instanceof Double || v instanceof Float) {
            sb.append(pythonFloat(((Number) v).doubleValue()));
        } else if (v instanceof Number) {
            sb.append(v);
        } else if (v instanceof Map) {
            Map<String, Object> sorted = new TreeMap<>();
            ((Map<?, ?>) v).forEach((k, x) -> sorted.put(String.valueOf(k), x));
            if (sorted.isEmpty()) {
                sb.append("{}");
                return;
            }
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> e : sorted.entrySet()) {
                sb.append(first ? "" : ",");
                first = false;
                indent(sb, level + 1);
                string(sb, e.getKey());
                sb.append(": ");
                value(sb, e.getValue(), level + 1);
            }
            indent(sb, level);
            sb.append('}');
        } else if (v instanceof List) {
            List<?> l = (List<?>) v;
            if (l.isEmpty()) {
                sb.append("[]");
                return;
            }
            sb.append('[');
            for (int i = 0; i < l.size(); i++) {
                sb.append(i == 0 ? "" : ",");
                indent(sb, level + 1);
                value(sb, l.get(i), level + 1);
            }
            indent(sb, level);
            sb.append(']');
        } else {
            throw new IllegalArgumentException("cannot write " + v.getClass().getName() + " as JSON");
        }
    }

    /** Python's {@code repr(float)}: shortest round-trip digits, {@code 16.0}, {@code 1e-05}. */
    static String pythonFloat(double d) {
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            throw new IllegalArgumentException("JSON cannot hold " + d);
        }
        String s = Double.toString(d);
        int e = s.indexOf('E');
        if (e < 0) {
            return s;
        }
        BigDecimal exact = new BigDecimal(s).stripTrailingZeros();
        int exp = Integer.parseInt(s.substring(e + 1));
        if (exp >= -4 && exp < 16) {
            String plain = exact.toPlainString();
            return plain.contains(".") ? plain : plain + ".0";
        }
        String mantissa = s.substring(0, e);
        if (mantissa.endsWith(".0")) {
            mantissa = mantissa.substring(0, mantissa.length() - 2);
        }
        return mantissa + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
    }

    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                case '\b': sb.append("\\b"); break;
                case '\f': sb.append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
