package org.peft4j.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.peft4j.core.internal.Messages;

/**
 * Which layers of a base model an adapter targets, chosen as in Hugging Face PEFT's
 * {@code target_modules}: a set of exact layer names, one regular expression matched against the
 * whole layer name, or {@link #ALL_LINEAR} (every dense-type layer except the network's output
 * layers, like PEFT's {@code "all-linear"}, which skips the output head).
 *
 * <p>Thread-safety: immutable.
 */
public final class TargetModules {

    /** Every dense-type layer that is not a network output. */
    public static final TargetModules ALL_LINEAR = new TargetModules(Kind.ALL_LINEAR, Set.of(), null);

    /** How layers are chosen. */
    public enum Kind { NAMES, REGEX, ALL_LINEAR }

    private final Kind kind;
    private final Set<String> names;
    private final Pattern regex;

    private TargetModules(Kind kind, Set<String> names, Pattern regex) {
        this.kind = kind;
        this.names = names;
        this.regex = regex;
    }

    /**
     * Exact layer names.
     *
     * @throws IllegalArgumentException if no name is given, or a name is null, blank or repeated
     */
    public static TargetModules names(String... names) {
        Objects.requireNonNull(names, "names must not be null");
        if (names.length == 0) {
            throw new IllegalArgumentException("target modules: give at least one layer name");
        }
        Set<String> set = new LinkedHashSet<>();
        for (String n : names) {
            if (n == null || n.isBlank()) {
                throw new IllegalArgumentException("target modules: layer names must not be null or blank; got "
                        + Messages.list(Arrays.asList(names)));
            }
            if (!set.add(n)) {
                throw new IllegalArgumentException("target modules: layer name \"" + Messages.shorten(n)
                        + "\" is given twice");
            }
        }
        return new TargetModules(Kind.NAMES, Collections.unmodifiableSet(set), null);
    }

    /**
     * A regular expression that must match the whole layer name ({@link java.util.regex.Matcher#matches()}).
     *
     * @throws IllegalArgumentException if the expression does not compile
     */
    public static TargetModules regex(String regex) {
        Objects.requireNonNull(regex, "regex must not be null");
        try {
            return new TargetModules(Kind.REGEX, Set.of(), Pattern.compile(regex));
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException("target modules: invalid regular expression \"" + regex + "\": "
                    + e.getDescription(), e);
        }
    }

    public Kind kind() {
        return kind;
    }

    /** The exact names (empty unless {@link Kind#NAMES}). */
    public Set<String> names() {
        return names;
    }

    /** The expression (null unless {@link Kind#REGEX}). */
    public String regex() {
        return regex == null ? null : regex.pattern();
    }

    /**
     * Whether a layer is chosen by this selection.
     *
     * @param layerName the layer (vertex) name
     * @param denseType whether the layer is dense-type (dense, output, RNN output)
     * @param networkOutput whether the layer is one of the network's outputs
     */
    public boolean matches(String layerName, boolean denseType, boolean networkOutput) {
        switch (kind) {
            case NAMES:
                return names.contains(layerName);
            case REGEX:
                return regex.matcher(layerName).matches();
            case ALL_LINEAR:
                return denseType && !networkOutput;
            default:
                throw new AssertionError(kind);
        }
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof TargetModules)) {
            return false;
        }
        TargetModules t = (TargetModules) o;
        return kind == t.kind && names.equals(t.names) && Objects.equals(regex(), t.regex());
    }

    @Override
    public int hashCode() {
        return Objects.hash(kind, names, regex());
    }

    @Override
    public String toString() {
        switch (kind) {
            case NAMES:
                return names.toString();
            case REGEX:
                return "regex(" + regex.pattern() + ")";
            default:
                return "all-linear";
        }
    }
}
