package org.peft4j.core.spi;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.peft4j.core.AdapterFormatException;

/**
 * What peft4j does with each key of an {@code adapter_config.json} of one {@code peft_type}: a
 * table that a {@link org.peft4j.core.PeftConfigFactory} declares ({@link
 * org.peft4j.core.PeftConfigFactory#keyPolicy()}) and {@link org.peft4j.core.Peft#load} checks
 * before the factory reads the file. Each key is
 * <ul>
 *   <li><b>honoured</b>: read by the factory, which checks its value;</li>
 *   <li><b>ignored</b>: it cannot change what a loaded adapter computes (provenance, training
 *       settings, the choice of starting values that the file's tensors replace), so any value is
 *       accepted;</li>
 *   <li><b>refused</b> unless it has a value under which it changes nothing (PEFT's default, or
 *       null): it changes the adapter's math in a way peft4j does not implement, and loading stops
 *       with a message naming the key, its value and why.</li>
 * </ul>
 * A key the table does not list (written by a later PEFT or another tool) is accepted when its
 * value is null, {@code false}, an empty string, an empty list or an empty object, since a new
 * option at such a value is off, and refused otherwise: any other value may change the math.
 *
 * <p>A key can also say what its value holds ({@link Role}), so that a module-name map
 * ({@link org.peft4j.core.ModuleNames}) can translate it between a PyTorch model's module paths
 * and a graph's layer names. The keys of {@link org.peft4j.core.Targeting} need no role: the
 * core translates them itself.
 *
 * <p>Thread-safety: immutable.
 */
public final class KeyPolicy {

    /** What peft4j does with a key. */
    public enum Treatment {
        /** Read by the factory, which checks its value. */
        HONOURED,
        /** Accepted with any value: it cannot change what a loaded adapter computes. */
        IGNORED,
        /** Accepted only with a value under which it changes nothing; refused otherwise, naming the key. */
        REFUSED
    }

    /** What a key's value holds, for translating files between module paths and layer names. */
    public enum Role {
        /** Nothing that names modules. */
        PLAIN,
        /**
         * A selection of modules in {@code target_modules}' forms: a list of names (each matching a
         * module whose name equals it or ends with {@code "."} plus it) or a regular expression
         * matching whole names; e.g. IA3's {@code feedforward_modules}.
         */
        MODULE_SELECTION,
        /**
         * An object whose keys are PEFT's pattern keys ({@code get_pattern_key}: a regular
         * expression matched against the end of a module name at a {@code "."} boundary), e.g.
         * {@code rank_pattern}, {@code alpha_pattern}.
         */
        MODULE_PATTERNS
    }

    private record Rule(Treatment treatment, Role role, List<Object> accepted, String why) {
    }

    private static final KeyPolicy NONE = new KeyPolicy(null);

    /** Keys PEFT's base classes ({@code PeftConfigMixin}, {@code PeftConfig}) write for every method. */
    private static final List<String> COMMON_IGNORED = List.of("peft_version", "auto_mapping", "base_model_name_or_path",
            "revision", "inference_mode");

    private final Map<String, Rule> rules;

    private KeyPolicy(Map<String, Rule> rules) {
        this.rules = rules == null ? null : Collections.unmodifiableMap(new TreeMap<>(rules));
    }

    /**
     * The policy of a factory that declares none: every key is handed to the factory as it is,
     * unchecked (peft4j's own {@code BOTTLENECK} type, tuners of other modules that keep their own checks).
     */
    public static KeyPolicy none() {
        return NONE;
    }

    /**
     * A builder already holding the keys of every PEFT config: {@code peft_type} and
     * {@code task_type} honoured, {@code peft_version}, {@code auto_mapping},
     * {@code base_model_name_or_path}, {@code revision} and {@code inference_mode} ignored.
     */
    public static Builder builder() {
        Builder b = new Builder();
        b.honoured("peft_type").honoured("task_type");
        for (String k : COMMON_IGNORED) {
            b.ignored(k);
        }
        return b;
    }

    /** Whether this policy checks keys at all (false for {@link #none()}). */
    public boolean checksKeys() {
        return rules != null;
    }

    /** What is done with {@code key}, or null when the table does not list it. */
    public Treatment treatment(String key) {
        Rule r = rules == null ? null : rules.get(key);
        return r == null ? null : r.treatment();
    }

    /** What {@code key}'s value holds ({@link Role#PLAIN} for keys not listed). */
    public Role role(String key) {
        Rule r = rules == null ? null : rules.get(key);
        return r == null ? Role.PLAIN : r.role();
    }

    /** The listed keys whose value holds {@code role}, sorted. */
    public Set<String> keys(Role role) {
        Set<String> out = new TreeSet<>();
        if (rules != null) {
            rules.forEach((k, r) -> {
                if (r.role() == role) {
                    out.add(k);
                }
            });
        }
        return Collections.unmodifiableSet(out);
    }

    /** Every key the table lists, sorted (empty for {@link #none()}). */
    public Set<String> keys() {
        return rules == null ? Set.of() : Collections.unmodifiableSet(new TreeSet<>(rules.keySet()));
    }

    /**
     * Checks the keys of a parsed {@code adapter_config.json} (without peft4j's own {@code "peft4j"}
     * object, which is not a PEFT key) against the table.
     *
     * @throws AdapterFormatException naming the first offending key (in sorted order), its value,
     *     why it is refused and the values it is accepted with
     */
    public void check(Map<String, Object> json) {
        if (rules == null) {
            return;
        }
        for (Map.Entry<String, Object> e : new TreeMap<>(json).entrySet()) {
            String key = e.getKey();
            Object value = e.getValue();
            Rule r = rules.get(key);
            if (r == null) {
                if (!isOff(value)) {
                    throw new AdapterFormatException("\"" + key + "\" = " + show(value) + " is not a key peft4j knows for "
                            + "this peft_type (a newer PEFT or another tool wrote it); an unknown key is accepted only "
                            + "when it is null, false, \"\", [] or {}, since any other value may change what the adapter "
                            + "computes");
                }
            } else if (r.treatment() == Treatment.REFUSED && !accepted(r, value)) {
                throw new AdapterFormatException("\"" + key + "\" = " + show(value) + " is not supported: " + r.why()
                        + "; peft4j accepts this key only as " + acceptedText(r));
            }
        }
    }

    /** Whether a value of an unknown key leaves its option off: null, false, "", [] or {}. */
    static boolean isOff(Object v) {
        return v == null || Boolean.FALSE.equals(v) || "".equals(v) || (v instanceof List<?> l && l.isEmpty())
                || (v instanceof Map<?, ?> m && m.isEmpty());
    }

    private static boolean accepted(Rule r, Object value) {
        if (value == null) {
            return true;
        }
        for (Object a : r.accepted()) {
            if (a instanceof Number n && value instanceof Number v ? n.doubleValue() == v.doubleValue() : a.equals(value)) {
                return true;
            }
        }
        return false;
    }

    private static String acceptedText(Rule r) {
        List<String> s = new ArrayList<>();
        s.add("null");
        r.accepted().forEach(a -> s.add(show(a)));
        return String.join(" or ", s);
    }

    /** A value as the file writes it, at most 200 characters. */
    private static String show(Object v) {
        String s = v instanceof String ? "\"" + v + "\"" : v instanceof Map<?, ?> m ? PeftJson.write(castMap(m))
                .replaceAll("\\s*\n\\s*", " ") : v instanceof List<?> l ? l.toString() : String.valueOf(v);
        return s.length() > 200 ? s.substring(0, 197) + "..." : s;
    }

    private static Map<String, ?> castMap(Map<?, ?> m) {
        Map<String, Object> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(String.valueOf(k), v));
        return out;
    }

    @Override
    public String toString() {
        if (rules == null) {
            return "KeyPolicy(none)";
        }
        StringBuilder sb = new StringBuilder("KeyPolicy(");
        rules.forEach((k, r) -> sb.append(k).append('=').append(r.treatment()).append(r.role() == Role.PLAIN ? ""
                : "/" + r.role()).append(", "));
        sb.setLength(sb.length() - 2);
        return sb.append(')').toString();
    }

    /**
     * Builds a {@link KeyPolicy}; every key is listed once.
     *
     * <p>Thread-safety: not thread-safe.
     */
    public static final class Builder {
        private final Map<String, Rule> rules = new TreeMap<>();

        private Builder() {
        }

        private Builder add(String key, Rule rule) {
            Objects.requireNonNull(key, "key must not be null");
            if (key.isBlank()) {
                throw new IllegalArgumentException("key must not be blank");
            }
            if (rules.putIfAbsent(key, rule) != null) {
                throw new IllegalStateException("key \"" + key + "\" is already listed as " + rules.get(key).treatment());
            }
            return this;
        }

        /** A key the factory reads and checks. */
        public Builder honoured(String key) {
            return honoured(key, Role.PLAIN);
        }

        /** A key the factory reads and checks, whose value holds module names as {@code role} says. */
        public Builder honoured(String key, Role role) {
            return add(key, new Rule(Treatment.HONOURED, Objects.requireNonNull(role, "role must not be null"), List.of(),
                    null));
        }

        /** Keys accepted with any value, since they cannot change what a loaded adapter computes. */
        public Builder ignored(String... keys) {
            for (String k : keys) {
                add(k, new Rule(Treatment.IGNORED, Role.PLAIN, List.of(), null));
            }
            return this;
        }

        /**
         * A key refused unless it is null or one of {@code accepted} (compared as JSON values:
         * numbers by value).
         *
         * @param why what the key does that peft4j does not implement, for the message, e.g.
         *     {@code "lora_B carries a bias that the update adds"}
         */
        public Builder refusedUnless(String key, String why, Object... accepted) {
            Objects.requireNonNull(why, "why must not be null");
            for (Object a : accepted) {
                Objects.requireNonNull(a, "accepted values must not be null (null is always accepted)");
            }
            return add(key, new Rule(Treatment.REFUSED, Role.PLAIN, List.copyOf(Arrays.asList(accepted)), why));
        }

        public KeyPolicy build() {
            return new KeyPolicy(rules);
        }
    }
}
