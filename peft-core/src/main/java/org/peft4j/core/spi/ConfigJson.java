package org.peft4j.core.spi;

import java.util.List;
import java.util.Map;
import org.peft4j.core.AdapterFormatException;

/**
 * Typed reads of {@code adapter_config.json} keys for the {@link org.peft4j.core.PeftConfigFactory}
 * implementations: each read names the key, what was found and what was expected, as an
 * {@link AdapterFormatException}.
 *
 * <p>Thread-safety: stateless.
 */
public final class ConfigJson {

    private ConfigJson() {
    }

    /** {@code "7 (Integer)"}, {@code "null"}: a found value for messages. */
    public static String describe(Object o) {
        return o == null ? "null" : o + " (" + o.getClass().getSimpleName() + ")";
    }

    private static AdapterFormatException wrong(String key, String expected, Object found) {
        return new AdapterFormatException("adapter_config.json: \"" + key + "\" must be " + expected + "; got "
                + describe(found));
    }

    /** A required integer. */
    public static int requiredInt(Map<String, Object> json, String key) {
        Integer v = optionalInt(json, key);
        if (v == null) {
            throw wrong(key, "an integer", null);
        }
        return v;
    }

    /** An integer, or null when the key is absent or null. */
    public static Integer optionalInt(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (v == null) {
            return null;
        }
        if (!(v instanceof Integer || v instanceof Long) || ((Number) v).longValue() != ((Number) v).intValue()) {
            throw wrong(key, "an integer", v);
        }
        return ((Number) v).intValue();
    }

    /** A required number. */
    public static double requiredNumber(Map<String, Object> json, String key) {
        Double v = optionalNumber(json, key);
        if (v == null) {
            throw wrong(key, "a number", null);
        }
        return v;
    }

    /** A number, or null when the key is absent or null. */
    public static Double optionalNumber(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (v == null) {
            return null;
        }
        if (!(v instanceof Number)) {
            throw wrong(key, "a number", v);
        }
        return ((Number) v).doubleValue();
    }

    /** A boolean, {@code dflt} when absent or null. */
    public static boolean bool(Map<String, Object> json, String key, boolean dflt) {
        Object v = json.get(key);
        if (v == null) {
            return dflt;
        }
        if (!(v instanceof Boolean)) {
            throw wrong(key, "true or false", v);
        }
        return (Boolean) v;
    }

    /** A string, or null when absent or null. */
    public static String optionalString(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (v != null && !(v instanceof String)) {
            throw wrong(key, "a string", v);
        }
        return (String) v;
    }

    /** A list of strings, or null when absent or null. */
    public static String[] optionalStrings(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (v == null) {
            return null;
        }
        if (!(v instanceof List)) {
            throw wrong(key, "a list of strings", v);
        }
        List<?> l = (List<?>) v;
        String[] out = new String[l.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(l.get(i) instanceof String)) {
                throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a list of strings; element "
                        + i + " is " + describe(l.get(i)));
            }
            out[i] = (String) l.get(i);
        }
        return out;
    }

    /** peft4j's extension object {@code "peft4j"} (empty when absent). */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> extension(Map<String, Object> json) {
        Object v = json.get("peft4j");
        if (v == null) {
            return Map.of();
        }
        if (!(v instanceof Map)) {
            throw wrong("peft4j", "an object", v);
        }
        return (Map<String, Object>) v;
    }
}
