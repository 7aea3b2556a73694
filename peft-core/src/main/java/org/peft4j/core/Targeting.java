package org.peft4j.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.StringJoiner;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.core.spi.Messages;

/**
 * What every tuner config shares: which layers it adapts ({@code targetModules}, narrowed by a
 * layer-type filter and by {@code excludeModules}), which layers train in full
 * ({@code modulesToSave}) and which biases train ({@code bias}), with their
 * {@code adapter_config.json} keys read and written here, in one place.
 *
 * <p>Matching follows Hugging Face PEFT: a list entry chooses a layer whose name equals it or ends
 * with {@code "."} plus the entry, a string is a regular expression matched against the whole
 * name ({@link TargetModules}); a list must match at least one layer overall, not every entry.
 * {@code excludeModules} uses the same forms and removes layers from the targets, and so do the
 * {@code modulesToSave} layers (a layer is trained in full or adapted, never both). A type
 * filter, which PEFT lacks, keeps only targets whose layer configuration is an instance of one
 * of the given classes; files record the layers it resolved to instead
 * ({@link #targetModulesJson}).
 *
 * <p>A method has some of these options, not always all ({@link Scope}): LoRA all of them, IA3 no
 * bias option (PEFT's IA3 has none), bottleneck adapters and prompt or prefix tuning only
 * {@code modulesToSave}. Configs are built with the builder that matches their scope
 * ({@link ModulesToSaveBuilder}, {@link TargetingBuilder}, {@link BiasTargetingBuilder}).
 *
 * <p>Thread-safety: immutable.
 */
public final class Targeting {

    /** Which of the shared options a method has, and so which keys its files hold. */
    public enum Scope {
        /** Only {@code modules_to_save}: methods that adapt no layer in place. */
        MODULES_TO_SAVE,
        /** Targets, type filter, exclusions and {@code modules_to_save}; no bias option (IA3). */
        TARGETS,
        /** Everything, {@code bias} included (LoRA). */
        TARGETS_AND_BIAS;

        boolean targeted() {
            return this != MODULES_TO_SAVE;
        }
    }

    private final Scope scope;
    private final TargetModules targetModules;
    private final Set<Class<? extends Layer>> targetTypes;
    private final TargetModules excludeModules;
    private final List<String> modulesToSave;
    private final BiasMode bias;

    private Targeting(Builder b) {
        this.scope = b.scope;
        this.targetModules = b.targetModules;
        this.targetTypes = Set.copyOf(b.targetTypes);
        this.excludeModules = b.excludeModules;
        this.modulesToSave = List.copyOf(b.modulesToSave);
        this.bias = b.bias;
    }

    /** A builder for a method with the options of {@code scope}. */
    public static Builder builder(Scope scope) {
        return new Builder(Objects.requireNonNull(scope, "scope must not be null"));
    }

    /** The targeting of a method that adapts no layer in place and trains {@code names} in full. */
    public static Targeting ofModulesToSave(String... names) {
        return builder(Scope.MODULES_TO_SAVE).modulesToSave(names).build();
    }

    /** A builder holding this value, to derive a variant. */
    public Builder toBuilder() {
        Builder b = new Builder(scope);
        b.targetModules = targetModules;
        b.targetTypes.addAll(targetTypes);
        b.excludeModules = excludeModules;
        b.modulesToSave.addAll(modulesToSave);
        b.bias = bias;
        return b;
    }

    public Scope scope() {
        return scope;
    }

    /** The layers the method adapts, or null when it adapts none ({@link Scope#MODULES_TO_SAVE}). */
    public TargetModules targetModules() {
        return targetModules;
    }

    /** Layer configuration classes a target must be an instance of (empty: any). */
    public Set<Class<? extends Layer>> targetTypes() {
        return targetTypes;
    }

    /** Layers never adapted even when {@link #targetModules()} chooses them, or null. */
    public TargetModules excludeModules() {
        return excludeModules;
    }

    /** Layers trained in full (entries matched like target names: equal, or a {@code "."}-suffix). */
    public List<String> modulesToSave() {
        return modulesToSave;
    }

    /** Which biases train ({@link BiasMode#NONE} for methods without the option). */
    public BiasMode bias() {
        return bias;
    }

    /**
     * Whether layer {@code layerName} is one of {@link #modulesToSave()}: its name equals an entry
     * or ends with {@code "."} plus one.
     */
    public boolean isModuleToSave(String layerName) {
        return TargetModules.matchesName(modulesToSave, layerName);
    }

    /** Whether {@link #excludeModules()} removes layer {@code layerName} from the targets. */
    public boolean isExcluded(String layerName) {
        return excludeModules != null && excludeModules.matches(layerName, false, false);
    }

    /** Whether the type filter lets {@code layer} be a target (always, when there is no filter). */
    public boolean typeAllowed(Layer layer) {
        return targetTypes.isEmpty() || targetTypes.stream().anyMatch(c -> c.isInstance(layer));
    }

    /**
     * What fixes the wrapped graph's layout among these options, for
     * {@link PeftConfig#layoutSignature()}.
     */
    public String signature() {
        return "targets=" + targetModules + " types=" + targetTypes.stream().map(Class::getName).sorted().toList()
                + " exclude=" + excludeModules + " save=" + modulesToSave + " bias=" + bias.jsonName();
    }

    // ---------------------------------------------------------------- adapter_config.json

    /**
     * Writes this value's keys into {@code json}: {@code modules_to_save} (null when empty), and
     * for targeted scopes {@code target_modules} (names, a regex or {@code "all-linear"}) and
     * {@code exclude_modules} (only when set: PEFT before 0.14 refuses the key), and for
     * {@link Scope#TARGETS_AND_BIAS} {@code bias}.
     */
    public void writeJson(Map<String, Object> json) {
        json.put("modules_to_save", modulesToSave.isEmpty() ? null : new ArrayList<>(modulesToSave));
        if (!scope.targeted()) {
            return;
        }
        json.put("target_modules", targetModules.toJson());
        if (excludeModules != null) {
            json.put("exclude_modules", excludeModules.toJson());
        }
        if (scope == Scope.TARGETS_AND_BIAS) {
            json.put("bias", bias.jsonName());
        }
    }

    /**
     * {@code target_modules} as the file of a wrapped graph records it. Without a type filter:
     * the selection as configured. With one (which PEFT lacks, so it cannot be written): the
     * layers it resolved to, {@code resolved} among {@code layerNames}, as a list of names when
     * PEFT's suffix matching of that list chooses exactly them, else as an anchored alternation
     * of the quoted names (a regex, which chooses exactly them).
     */
    public Object targetModulesJson(Collection<String> resolved, Collection<String> layerNames) {
        if (targetTypes.isEmpty()) {
            return targetModules.toJson();
        }
        Set<String> wanted = new TreeSet<>(resolved);
        Set<String> bySuffix = new TreeSet<>();
        for (String n : layerNames) {
            if (TargetModules.matchesName(wanted, n)) {
                bySuffix.add(n);
            }
        }
        if (bySuffix.equals(wanted)) {
            return new ArrayList<>(wanted);
        }
        StringJoiner j = new StringJoiner("|", "(?:", ")");
        wanted.forEach(n -> j.add(com.google.re2j.Pattern.quote(n)));
        return j.toString();
    }

    /**
     * Reads the keys of {@code scope} from an {@code adapter_config.json}: {@code target_modules}
     * (required when targeted), {@code exclude_modules}, {@code modules_to_save} and
     * {@code bias} (default {@code "none"}). Options PEFT applies to targets and peft4j cannot
     * honour ({@code layers_to_transform}, {@code target_parameters}) are refused rather than
     * dropped, since dropping them would change which layers the adapter covers.
     *
     * @throws AdapterFormatException naming the key, what was found and what was expected
     */
    public static Targeting fromJson(Map<String, Object> json, Scope scope) {
        Builder b = builder(scope);
        try {
            String[] save = ConfigJson.optionalStrings(json, "modules_to_save");
            if (save != null) {
                b.modulesToSave(save);
            }
            if (!scope.targeted()) {
                return b.build();
            }
            b.targetModules(selectionFromJson(json.get("target_modules"), "target_modules", true));
            Object exclude = json.get("exclude_modules");
            if (exclude != null && !(exclude instanceof List<?> l && l.isEmpty())) {
                b.excludeModules(selectionFromJson(exclude, "exclude_modules", false));
            }
            for (String key : List.of("layers_to_transform", "target_parameters")) {
                Object v = json.get(key);
                if (v != null && !(v instanceof List<?> l && l.isEmpty())) {
                    throw new AdapterFormatException("adapter_config.json: \"" + key + "\" " + ConfigJson.describe(v)
                            + " is not supported; only null is (dropping it would adapt other layers than the file's)");
                }
            }
            if (scope == Scope.TARGETS_AND_BIAS) {
                String bias = ConfigJson.optionalString(json, "bias");
                b.bias(BiasMode.fromJsonName(bias == null ? "none" : bias));
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }

    /**
     * A selection as PEFT writes it: a list of names, a regex string, or (when
     * {@code allLinear}) {@code "all-linear"}.
     *
     * @throws AdapterFormatException if {@code v} is none of these
     */
    public static TargetModules selectionFromJson(Object v, String key, boolean allLinear) {
        if (allLinear && "all-linear".equals(v)) {
            return TargetModules.ALL_LINEAR;
        }
        try {
            if (v instanceof String) {
                return TargetModules.regex((String) v);
            }
            if (v instanceof List) {
                return TargetModules.names(ConfigJson.optionalStrings(Map.of(key, v), key));
            }
        } catch (IllegalArgumentException e) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\": " + e.getMessage(), e);
        }
        throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a list of layer names or a "
                + "regex string" + (allLinear ? " (or \"all-linear\")" : "") + "; got " + ConfigJson.describe(v));
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof Targeting)) {
            return false;
        }
        Targeting t = (Targeting) o;
        return scope == t.scope && Objects.equals(targetModules, t.targetModules) && targetTypes.equals(t.targetTypes)
                && Objects.equals(excludeModules, t.excludeModules) && modulesToSave.equals(t.modulesToSave)
                && bias == t.bias;
    }

    @Override
    public int hashCode() {
        return Objects.hash(scope, targetModules, targetTypes, excludeModules, modulesToSave, bias);
    }

    /** {@code targetModules=..., targetTypes=..., excludeModules=..., modulesToSave=..., bias=...}, the parts of the scope. */
    @Override
    public String toString() {
        StringJoiner j = new StringJoiner(", ");
        if (scope.targeted()) {
            j.add("targetModules=" + targetModules);
            j.add("targetTypes=" + targetTypes.stream().map(Class::getSimpleName).sorted().toList());
            if (excludeModules != null) {
                j.add("excludeModules=" + excludeModules);
            }
        }
        j.add("modulesToSave=" + modulesToSave);
        if (scope == Scope.TARGETS_AND_BIAS) {
            j.add("bias=" + bias.jsonName());
        }
        return j.toString();
    }

    /**
     * Builds a {@link Targeting}; every setter checks its argument at once and refuses options
     * outside the scope and a second call where a value may be set once. Config builders extend
     * {@link ModulesToSaveBuilder} and its subclasses, which delegate to this one.
     *
     * <p>Thread-safety: not thread-safe.
     */
    public static final class Builder {
        private final Scope scope;
        private TargetModules targetModules;
        private final Set<Class<? extends Layer>> targetTypes = new LinkedHashSet<>();
        private TargetModules excludeModules;
        private final Set<String> modulesToSave = new LinkedHashSet<>();
        private BiasMode bias = BiasMode.NONE;

        private Builder(Scope scope) {
            this.scope = scope;
        }

        private void requireScope(Scope needed, String option) {
            if (scope.compareTo(needed) < 0) {
                throw new IllegalStateException(option + " is not an option of a method with scope " + scope
                        + (needed == Scope.TARGETS_AND_BIAS ? " (only methods of the LoRA family have a bias mode)"
                        : " (it adapts no layer in place)"));
            }
        }

        /** The layers to adapt (once). */
        public Builder targetModules(TargetModules targets) {
            requireScope(Scope.TARGETS, "targetModules");
            Objects.requireNonNull(targets, "targetModules must not be null");
            if (targetModules != null) {
                throw new IllegalStateException("targetModules was already set to " + targetModules);
            }
            this.targetModules = targets;
            return this;
        }

        /** Keep only targets whose layer configuration is an instance of one of these types. */
        @SafeVarargs
        public final Builder targetTypes(Class<? extends Layer>... types) {
            requireScope(Scope.TARGETS, "targetTypes");
            Objects.requireNonNull(types, "targetTypes must not be null");
            for (Class<? extends Layer> t : types) {
                Objects.requireNonNull(t, "targetTypes must not contain null");
                targetTypes.add(t);
            }
            return this;
        }

        /** Layers never adapted (once): names or a regex; {@link TargetModules#ALL_LINEAR} is refused. */
        public Builder excludeModules(TargetModules exclude) {
            requireScope(Scope.TARGETS, "excludeModules");
            Objects.requireNonNull(exclude, "excludeModules must not be null");
            if (exclude.kind() == TargetModules.Kind.ALL_LINEAR) {
                throw new IllegalArgumentException("excludeModules must be names or a regex, not all-linear");
            }
            if (excludeModules != null) {
                throw new IllegalStateException("excludeModules was already set to " + excludeModules);
            }
            this.excludeModules = exclude;
            return this;
        }

        /**
         * Layers trained in full, in order.
         *
         * @throws IllegalArgumentException if a name is null or blank, or given twice
         */
        public Builder modulesToSave(String... names) {
            Objects.requireNonNull(names, "modulesToSave must not be null");
            for (String n : names) {
                if (n == null || n.isBlank()) {
                    throw new IllegalArgumentException("modulesToSave names must not be null or blank; got "
                            + Messages.list(Arrays.asList(names)));
                }
                if (!modulesToSave.add(n)) {
                    throw new IllegalArgumentException("modulesToSave: \"" + Messages.shorten(n) + "\" is given twice");
                }
            }
            return this;
        }

        /** Which biases train (default {@link BiasMode#NONE}). */
        public Builder bias(BiasMode bias) {
            requireScope(Scope.TARGETS_AND_BIAS, "bias");
            this.bias = Objects.requireNonNull(bias, "bias must not be null");
            return this;
        }

        /**
         * @throws IllegalStateException if the scope is targeted and no target modules were set
         */
        public Targeting build() {
            if (scope.targeted() && targetModules == null) {
                throw new IllegalStateException("targetModules must be set: layer names, a regex, or "
                        + "TargetModules.ALL_LINEAR");
            }
            return new Targeting(this);
        }
    }
}
