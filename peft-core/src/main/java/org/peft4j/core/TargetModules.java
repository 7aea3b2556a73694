package org.peft4j.core;

import com.google.re2j.Pattern;
import com.google.re2j.PatternSyntaxException;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Objects;
import java.util.Set;
import org.peft4j.core.spi.Messages;

/**
 * A selection of layers by name, with Hugging Face PEFT's semantics of {@code target_modules}
 * (and of {@code exclude_modules}, which uses the same forms):
 * <ul>
 *   <li>{@link #names}: a layer is chosen when its name equals an entry or ends with {@code "."}
 *       plus an entry, so {@code "q"} chooses {@code q} and {@code block0.attn.q} but not
 *       {@code block0.attn.kq};</li>
 *   <li>{@link #regex}: a regular expression that must match the whole layer name;</li>
 *   <li>{@link #ALL_LINEAR}: every dense-type layer except the network's outputs (PEFT's
 *       {@code "all-linear"}, which skips the output head).</li>
 * </ul>
 * Whether a selection that chooses nothing is an error is decided where it is used: targets must
 * choose at least one layer overall (not every entry needs to match), exclusions need not.
 *
 * <p>Expressions run on RE2/J, whose matching time is linear in the length of the name whatever
 * the expression, so a pattern read from an adapter file such as {@code (.*){12}X} cannot stall
 * wrapping or loading. Constructs RE2 does not support (back-references, look-around) are refused
 * when the selection is built.
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
     * Layers whose name equals one of {@code names} or ends with {@code "."} plus one of them.
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
     * Layers whose whole name matches the regular expression {@code regex} (RE2 syntax, which is
     * Java's and Python's for everything but back-references and look-around).
     *
     * @throws IllegalArgumentException if the expression does not compile or uses a construct RE2
     *     does not support; the message names the expression
     */
    public static TargetModules regex(String regex) {
        return new TargetModules(Kind.REGEX, Set.of(), compile(regex, "target modules"));
    }

    /**
     * Compiles a user's regular expression with RE2/J (linear-time matching).
     *
     * @param what names the option in the message, e.g. {@code "rank_pattern"}
     * @throws IllegalArgumentException naming the expression if RE2 refuses it
     */
    static Pattern compile(String regex, String what) {
        Objects.requireNonNull(regex, "regex must not be null");
        try {
            return Pattern.compile(regex);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException(what + ": the regular expression \"" + Messages.shorten(regex)
                    + "\" is invalid or uses "
                    + "a construct RE2 does not support (back-references and look-around are not; matching must run "
                    + "in linear time): " + e.getDescription(), e);
        }
    }

    public Kind kind() {
        return kind;
    }

    /** The names (empty unless {@link Kind#NAMES}). */
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
     * @param denseType whether the layer is dense-type ({@link TargetKind#DENSE})
     * @param networkOutput whether the layer is one of the network's outputs
     */
    public boolean matches(String layerName, boolean denseType, boolean networkOutput) {
        switch (kind) {
            case NAMES:
                return matchesName(names, layerName);
            case REGEX:
                return regex.matches(layerName);
            case ALL_LINEAR:
                return denseType && !networkOutput;
            default:
                throw new AssertionError(kind);
        }
    }

    /** Whether {@code layerName} equals one of {@code entries} or ends with {@code "."} plus one of them. */
    static boolean matchesName(Iterable<String> entries, String layerName) {
        for (String n : entries) {
            if (layerName.equals(n) || layerName.endsWith("." + n)) {
                return true;
            }
        }
        return false;
    }

    /** This selection as {@code adapter_config.json} holds it: a list of names, a regex string, or {@code "all-linear"}. */
    public Object toJson() {
        switch (kind) {
            case NAMES:
                return new java.util.ArrayList<>(names);
            case REGEX:
                return regex.pattern();
            default:
                return "all-linear";
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
