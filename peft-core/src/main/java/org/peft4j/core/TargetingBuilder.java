package org.peft4j.core;

import org.deeplearning4j.nn.conf.layers.Layer;

/**
 * The base of the builder of a tuner config that adapts layers in place: target modules (names,
 * a regex or {@link TargetModules#ALL_LINEAR}), a layer-type filter and excluded modules, on top
 * of {@code modulesToSave}. Matching follows Hugging Face PEFT; see {@link Targeting}.
 *
 * <p>Thread-safety: not thread-safe.
 *
 * @param <B> the concrete builder, returned by every setter
 */
public abstract class TargetingBuilder<B extends TargetingBuilder<B>> extends ModulesToSaveBuilder<B> {

    /** For methods without a bias option. */
    protected TargetingBuilder() {
        this(Targeting.Scope.TARGETS);
    }

    /** @param scope {@link Targeting.Scope#TARGETS} or {@link Targeting.Scope#TARGETS_AND_BIAS} */
    protected TargetingBuilder(Targeting.Scope scope) {
        super(scope);
    }

    /** Target layers whose name equals one of {@code names} or ends with {@code "."} plus one of them. */
    public B targetModules(String... names) {
        return targetModules(TargetModules.names(names));
    }

    /** Target layers by a selection ({@link TargetModules#ALL_LINEAR}, names or regex); set once. */
    public B targetModules(TargetModules targets) {
        targetingBuilder().targetModules(targets);
        return self();
    }

    /** Target layers whose whole name matches {@code regex} (RE2 syntax). */
    public B targetModulesRegex(String regex) {
        return targetModules(TargetModules.regex(regex));
    }

    /** Keep only targets whose layer configuration is an instance of one of these types. */
    @SafeVarargs
    public final B targetTypes(Class<? extends Layer>... types) {
        targetingBuilder().targetTypes(types);
        return self();
    }

    /** Never adapt layers whose name equals one of {@code names} or ends with {@code "."} plus one of them. */
    public B excludeModules(String... names) {
        return excludeModules(TargetModules.names(names));
    }

    /** Never adapt the layers of {@code exclude} (names or a regex); set once. */
    public B excludeModules(TargetModules exclude) {
        targetingBuilder().excludeModules(exclude);
        return self();
    }

    /** Never adapt layers whose whole name matches {@code regex} (RE2 syntax). */
    public B excludeModulesRegex(String regex) {
        return excludeModules(TargetModules.regex(regex));
    }
}
