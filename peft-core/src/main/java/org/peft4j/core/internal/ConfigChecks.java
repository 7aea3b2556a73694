package org.peft4j.core.internal;

import java.util.Arrays;
import java.util.Objects;
import java.util.Set;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.peft4j.core.TargetModules;

/**
 * The argument checks that every tuner config builder ({@code LoraConfig}, {@code Ia3Config},
 * {@code AdapterConfig}, {@code PrefixConfig}, {@code PromptTuningConfig}) makes for the options
 * they share, with one wording for each failure.
 *
 * <p>Thread-safety: stateless.
 */
public final class ConfigChecks {

    private ConfigChecks() {
    }

    /**
     * Adds layer names to a builder's {@code modulesToSave}, in order.
     *
     * @throws NullPointerException if {@code names} is null
     * @throws IllegalArgumentException if a name is null or blank, or already in {@code into}
     */
    public static void addModulesToSave(Set<String> into, String... names) {
        Objects.requireNonNull(names, "modulesToSave must not be null");
        for (String n : names) {
            if (n == null || n.isBlank()) {
                throw new IllegalArgumentException("modulesToSave names must not be null or blank; got "
                        + Messages.list(Arrays.asList(names)));
            }
            if (!into.add(n)) {
                throw new IllegalArgumentException("modulesToSave: \"" + Messages.shorten(n) + "\" is given twice");
            }
        }
    }

    /**
     * Adds layer configuration classes to a builder's {@code targetTypes}.
     *
     * @throws NullPointerException if {@code types} is null or contains null
     */
    @SafeVarargs
    public static void addTargetTypes(Set<Class<? extends Layer>> into, Class<? extends Layer>... types) {
        Objects.requireNonNull(types, "targetTypes must not be null");
        for (Class<? extends Layer> t : types) {
            Objects.requireNonNull(t, "targetTypes must not contain null");
            into.add(t);
        }
    }

    /**
     * The value for a builder's {@code targetModules}, which may be set once.
     *
     * @param current the value set so far, null if none
     * @throws NullPointerException if {@code targets} is null
     * @throws IllegalStateException if {@code current} is not null
     */
    public static TargetModules setTargetModulesOnce(TargetModules current, TargetModules targets) {
        Objects.requireNonNull(targets, "targetModules must not be null");
        if (current != null) {
            throw new IllegalStateException("targetModules was already set to " + current);
        }
        return targets;
    }

    /**
     * Checks in {@code build()} that {@code targetModules} was set.
     *
     * @throws IllegalStateException if {@code targetModules} is null
     */
    public static TargetModules requireTargetModules(TargetModules targetModules) {
        if (targetModules == null) {
            throw new IllegalStateException("targetModules must be set: layer names, a regex, or "
                    + "TargetModules.ALL_LINEAR");
        }
        return targetModules;
    }
}
