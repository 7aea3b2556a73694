package org.peft4j.examples;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An ordered, immutable set of {@link TuningMethod}s one example compares, with the baseline that
 * does not train (always run first) and the command-line parsing of {@code --method}.
 *
 * <p>Thread-safety: immutable.
 */
final class MethodRegistry {

    private final String baseline;
    private final Map<String, TuningMethod> methods;

    /**
     * A registry of {@code methods} in table order.
     *
     * @throws IllegalArgumentException if a name repeats or {@code baseline} is not one of them
     */
    MethodRegistry(String baseline, List<TuningMethod> methods) {
        Map<String, TuningMethod> m = new LinkedHashMap<>();
        for (TuningMethod t : methods) {
            if (m.putIfAbsent(t.name(), t) != null) {
                throw new IllegalArgumentException("method " + t.name() + " is registered twice");
            }
        }
        if (!m.containsKey(baseline)) {
            throw new IllegalArgumentException("baseline " + baseline + " is not among " + m.keySet());
        }
        this.baseline = baseline;
        this.methods = java.util.Collections.unmodifiableMap(m);
    }

    /** Name of the baseline. */
    String baseline() {
        return baseline;
    }

    /** Every method, in table order. */
    List<TuningMethod> all() {
        return List.copyOf(methods.values());
    }

    /**
     * The methods named in {@code spec}: a comma-separated list of names, or {@code all}. The
     * baseline is always included first (every other row is compared with it).
     *
     * @throws IllegalArgumentException for an unknown or repeated name, naming the known ones
     */
    List<TuningMethod> parse(String spec) {
        List<TuningMethod> out = new ArrayList<>();
        out.add(methods.get(baseline));
        if (spec.strip().equals("all")) {
            methods.values().stream().filter(TuningMethod::trains).forEach(out::add);
            return out;
        }
        for (String raw : spec.split(",")) {
            String n = raw.strip();
            if (n.isEmpty() || n.equals(baseline)) {
                continue;
            }
            TuningMethod m = methods.get(n);
            if (m == null) {
                throw new IllegalArgumentException("unknown method \"" + n + "\"; known: all, " + names());
            }
            if (out.contains(m)) {
                throw new IllegalArgumentException("method \"" + n + "\" is named twice");
            }
            out.add(m);
        }
        return out;
    }

    /** The names, comma-separated. */
    String names() {
        return String.join(", ", methods.keySet());
    }
}
