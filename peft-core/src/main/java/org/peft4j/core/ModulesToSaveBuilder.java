package org.peft4j.core;

import java.util.Objects;

/**
 * The base of a tuner config's builder for the options every method has: {@code modulesToSave}
 * (and {@link #targeting(Targeting)} to set them all from a value read from a file or taken from
 * another config). Methods that also target layers extend {@link TargetingBuilder}.
 *
 * <p>Thread-safety: not thread-safe.
 *
 * @param <B> the concrete builder, returned by every setter
 */
public abstract class ModulesToSaveBuilder<B extends ModulesToSaveBuilder<B>> {

    private final Targeting.Scope scope;
    private Targeting.Builder targeting;
    private boolean touched;

    /** @param scope the options the built config has */
    protected ModulesToSaveBuilder(Targeting.Scope scope) {
        this.scope = Objects.requireNonNull(scope, "scope must not be null");
        this.targeting = Targeting.builder(scope);
    }

    /** This builder, as its concrete type. */
    @SuppressWarnings("unchecked")
    protected final B self() {
        return (B) this;
    }

    /** The shared options being built, for the setters of subclasses. */
    protected final Targeting.Builder targetingBuilder() {
        touched = true;
        return targeting;
    }

    /**
     * Layers trained in full alongside the adapter (e.g. a new head). An entry chooses a layer whose
     * name equals it or ends with {@code "."} plus the entry; together the entries must choose at
     * least one layer when wrapping.
     */
    public B modulesToSave(String... names) {
        targetingBuilder().modulesToSave(names);
        return self();
    }

    /**
     * Sets every shared option from {@code value} (its scope must be this config's): what factories
     * use for a value read from a file.
     *
     * @throws IllegalStateException if a shared option was set already
     * @throws IllegalArgumentException if {@code value} has another scope
     */
    public B targeting(Targeting value) {
        Objects.requireNonNull(value, "targeting must not be null");
        if (value.scope() != scope) {
            throw new IllegalArgumentException("targeting of scope " + value.scope() + " given to a config of scope "
                    + scope);
        }
        if (touched) {
            throw new IllegalStateException("targeting(...) replaces every shared option, but some were already set");
        }
        this.targeting = value.toBuilder();
        this.touched = true;
        return self();
    }

    /**
     * The shared options, validated.
     *
     * @throws IllegalStateException if a targeted config has no target modules
     */
    protected final Targeting buildTargeting() {
        return targeting.build();
    }
}
