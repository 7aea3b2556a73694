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
 * {@link AdapterFormatException} (without the file's name, which the reader of the file puts in
 * front of the message).
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
     * Parses the bytes of an {@code adapter_config.json} on its own (without the files beside it):
     * JSON ({@link PeftJson#parseObject}), {@code "peft_type"}, the keys against the
     * {@link KeyPolicy} of the {@link PeftConfigFactory} registered for that type, and the config
     * that factory builds. A {@code "peft4j"} object (files of peft4j's format 1) must be an object
     * and is handed to the factory, not checked as a key. {@link org.peft4j.core.Peft#load} reads a
     * directory with the same steps, plus peft4j's side file and PEFT's rules for
     * {@code modules_to_save}.
     *
     * @param what names the file in messages
     * @throws AdapterFormatException naming {@code what} for every problem
     */
    public static Parsed parseAdapterConfig(byte[] bytes, String what) {
        Map<String, Object> json = PeftJson.parseObject(bytes, what);
        Object ext = json.get(AdapterFileKeys.EXTENSION);
        if (ext != null && !(ext instanceof Map)) {
            throw new AdapterFormatException(what + ": \"" + AdapterFileKeys.EXTENSION + "\" must be an object");
        }
        PeftConfigFactory factory = factory(json.get("peft_type"), what);
        Map<String, Object> keys = new java.util.TreeMap<>(json);
        keys.remove(AdapterFileKeys.EXTENSION);
        checkKeys(factory, keys, what);
        return new Parsed(buildConfig(factory, json, what), json);
    }

    /**
     * The factory registered for {@code peft_type} {@code type}.
     *
     * @param what names the file in messages
     * @throws AdapterFormatException if {@code type} is not a string or no factory reads it, listing the known types
     */
    public static PeftConfigFactory factory(Object type, String what) {
        if (!(type instanceof String)) {
            throw new AdapterFormatException(what + ": \"peft_type\" must be a string such as \"LORA\"; got "
                    + describe(type));
        }
        List<String> known = new ArrayList<>();
        for (PeftConfigFactory f : ServiceLoader.load(PeftConfigFactory.class, ConfigJson.class.getClassLoader())) {
            known.add(f.peftType());
            if (f.peftType().equals(type)) {
                return f;
            }
        }
        throw new AdapterFormatException(what + ": peft_type \"" + Messages.shorten(type) + "\" is not supported; "
                + "known types: " + known + " (is the tuner's module, e.g. peft-lora, on the classpath?)");
    }

    /**
     * Checks the keys of {@code json} (PEFT's keys only, no {@code "peft4j"} object) against
     * {@code factory}'s {@link KeyPolicy}.
     *
     * @throws AdapterFormatException naming {@code what} and the key
     */
    public static void checkKeys(PeftConfigFactory factory, Map<String, Object> json, String what) {
        try {
            factory.keyPolicy().check(json);
        } catch (AdapterFormatException e) {
            throw new AdapterFormatException(what + ": " + e.getMessage(), e);
        }
    }

    /**
     * The config {@code factory} builds from {@code json}, its messages put behind {@code what}
     * and bounded: a factory may quote a value of the file (the longest message of its own, a list
     * of activations, has about 400 characters). A message that begins with the bare file name
     * has it replaced by {@code what}, not repeated after it.
     *
     * @throws AdapterFormatException naming {@code what}
     */
    public static PeftConfig buildConfig(PeftConfigFactory factory, Map<String, Object> json, String what) {
        try {
            return factory.fromAdapterConfig(json);
        } catch (AdapterFormatException e) {
            // Factories name the file by its bare name (they do not know the directory): that
            // name gives way to the path here instead of being repeated after it.
            String m = e.getMessage();
            String bare = CONFIG_FILE + ": ";
            if (m != null && m.startsWith(bare)) {
                m = m.substring(bare.length());
            }
            throw new AdapterFormatException(what + ": " + Messages.shorten(m, Messages.MAX_VALUE_CHARS), e);
        }
    }

    /** {@code "7 (Integer)"}, {@code "null"}: a found value for messages. */
    public static String describe(Object o) {
        return o == null ? "null" : Messages.shorten(o) + " (" + o.getClass().getSimpleName() + ")";
    }

    private static AdapterFormatException wrong(String key, String expected, Object found) {
        return new AdapterFormatException("\"" + key + "\" must be " + expected + "; got " + describe(found));
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
                throw new AdapterFormatException("\"" + key + "\" must be a list of strings; element "
                        + i + " is " + describe(l.get(i)));
            }
            out[i] = (String) l.get(i);
        }
        return out;
    }

    /**
     * peft4j's records for the tuner (empty when absent): what its config wrote under
     * {@value AdapterFileKeys#EXTENSION}, which the reader hands back under that key.
     */
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
