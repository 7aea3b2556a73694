package org.peft4j.core.spi;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;

/**
 * Typed reads of {@code adapter_config.json} keys for the {@link org.peft4j.core.PeftConfigFactory}
 * implementations: each read names the key, what was found and what was expected, as an
 * {@link AdapterFormatException}.
 *
 * <p>Thread-safety: stateless.
 */
public final class ConfigJson {

    private static final String CONFIG_FILE = "adapter_config.json";

    private ConfigJson() {
    }

    /** An {@code adapter_config.json} read by {@link #parseAdapterConfig}: the config and the whole object. */
    public record Parsed(PeftConfig config, Map<String, Object> json) {
    }

    /**
     * Parses the bytes of an {@code adapter_config.json}: JSON ({@link PeftJson#parseObject}),
     * {@code "peft_type"}, the config built by the {@link PeftConfigFactory} registered for that
     * type, and the type of peft4j's {@code "peft4j"} object.
     *
     * @param what names the file in messages
     * @throws AdapterFormatException naming {@code what} for every problem
     */
    public static Parsed parseAdapterConfig(byte[] bytes, String what) {
        Map<String, Object> json = PeftJson.parseObject(bytes, what);
        Object type = json.get("peft_type");
        if (!(type instanceof String)) {
            throw new AdapterFormatException(what + ": \"peft_type\" must be a string such as \"LORA\"; got "
                    + describe(type));
        }
        PeftConfigFactory factory = null;
        List<String> known = new ArrayList<>();
        for (PeftConfigFactory f : ServiceLoader.load(PeftConfigFactory.class, ConfigJson.class.getClassLoader())) {
            known.add(f.peftType());
            if (f.peftType().equals(type)) {
                factory = f;
            }
        }
        if (factory == null) {
            throw new AdapterFormatException(what + ": peft_type \"" + Messages.shorten(type) + "\" is not supported; "
                    + "known types: " + known + " (is the tuner's module, e.g. peft-lora, on the classpath?)");
        }
        PeftConfig config;
        try {
            config = factory.fromAdapterConfig(json);
        } catch (AdapterFormatException e) {
            // A factory may quote a value of the file; this bounds what every factory says (the
            // longest message of its own, a list of activations, has about 400 characters).
            // Factories name the file by its bare name (they do not know the directory): that
            // name gives way to the path here instead of being repeated after it.
            String m = e.getMessage();
            String bare = CONFIG_FILE + ": ";
            if (m != null && m.startsWith(bare)) {
                m = m.substring(bare.length());
            }
            throw new AdapterFormatException(what + ": " + Messages.shorten(m, Messages.MAX_VALUE_CHARS), e);
        }
        Object ext = json.get("peft4j");
        if (ext != null && !(ext instanceof Map)) {
            throw new AdapterFormatException(what + ": \"peft4j\" must be an object");
        }
        return new Parsed(config, json);
    }

    /** {@code "7 (Integer)"}, {@code "null"}: a found value for messages. */
    public static String describe(Object o) {
        return o == null ? "null" : Messages.shorten(o) + " (" + o.getClass().getSimpleName() + ")";
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
