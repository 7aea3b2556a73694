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
import com.google.re2j.Pattern;
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
 * With a list, {@code layersToTransform} keeps only layers whose index (the first number after
 * {@code "<layersPattern>."}, or after any name part when no pattern is given) is listed, unless
 * the layer's name equals an entry. {@code excludeModules} uses the same forms as the targets and
 * removes layers from them, and so do the {@code modulesToSave} layers (a layer is trained in
 * full or adapted, never both). A {@code modulesToSave} entry chooses, as in PEFT, every layer
 * whose name, or the name of a module containing it (the name up to one of its {@code "."}),
 * ends with the entry, with no {@code "."} required: {@code "classifier"} chooses
 * {@code classifier}, {@code classifier.dense} and {@code pre_classifier}. A type filter, which
 * PEFT lacks, keeps only targets whose layer configuration is an instance of one of the given
 * classes; files record the layers it resolved to instead ({@link #writeResolvedJson}).
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
    private final List<Integer> layersToTransform;
    private final List<String> layersPattern;
    private final List<Pattern> layerIndexPatterns;

    private Targeting(Builder b) {
        this.scope = b.scope;
        this.targetModules = b.targetModules;
        this.targetTypes = Set.copyOf(b.targetTypes);
        this.excludeModules = b.excludeModules;
        this.modulesToSave = List.copyOf(b.modulesToSave);
        this.bias = b.bias;
        this.layersToTransform = b.layersToTransform == null ? null : List.copyOf(b.layersToTransform);
        this.layersPattern = List.copyOf(b.layersPattern);
        List<Pattern> ps = new ArrayList<>();
        if (layersPattern.isEmpty()) {
            ps.add(Pattern.compile("^.*?\\.[^.]*\\.(\\d+)\\."));
        }
        for (String p : layersPattern) {
            ps.add(TargetModules.compile("^.*?\\.(?:" + p + ")\\.(\\d+)\\.", "layersPattern"));
        }
        this.layerIndexPatterns = List.copyOf(ps);
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
        b.layersToTransform = layersToTransform == null ? null : new ArrayList<>(layersToTransform);
        b.layersPattern.addAll(layersPattern);
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

    /**
     * Layers trained in full: an entry chooses a layer whose name, or the name of a module that
     * contains it, ends with the entry ({@link #isModuleToSave}).
     */
    public List<String> modulesToSave() {
        return modulesToSave;
    }

    /** The layer indices a list of target names is restricted to, or null for every layer. */
    public List<Integer> layersToTransform() {
        return layersToTransform;
    }

    /** The name parts the layer index follows (empty: any part); used with {@link #layersToTransform()}. */
    public List<String> layersPattern() {
        return layersPattern;
    }

    /** Which biases train ({@link BiasMode#NONE} for methods without the option). */
    public BiasMode bias() {
        return bias;
    }

    /**
     * Whether layer {@code layerName} is one of {@link #modulesToSave()}: its name, or its name up to
     * one of its {@code "."} (a module containing it), ends with an entry, as PEFT's
     * {@code _set_trainable} matches {@code named_modules()}.
     */
    public boolean isModuleToSave(String layerName) {
        return TargetModules.matchesModuleToSave(modulesToSave, layerName);
    }

    /**
     * Whether {@link #targetModules()} with {@link #layersToTransform()} chooses layer
     * {@code layerName} (exclusions and modules to save not applied).
     *
     * @param denseType whether the layer is dense-type ({@link TargetKind#DENSE})
     * @param networkOutput whether the layer is one of the network's outputs
     */
    public boolean selects(String layerName, boolean denseType, boolean networkOutput) {
        if (targetModules == null || !targetModules.matches(layerName, denseType, networkOutput)) {
            return false;
        }
        if (layersToTransform == null || targetModules.kind() != TargetModules.Kind.NAMES
                || targetModules.names().contains(layerName)) {
            return true;
        }
        Integer index = layerIndex(layerName);
        return index != null && layersToTransform.contains(index);
    }

    /** The layer index of a name for {@link #layersToTransform()}, or null when it has none. */
    Integer layerIndex(String layerName) {
        for (Pattern p : layerIndexPatterns) {
            com.google.re2j.Matcher m = p.matcher(layerName);
            if (m.find()) {
                try {
                    return Integer.valueOf(m.group(1));
                } catch (NumberFormatException e) {
                    return null;
                }
            }
        }
        return null;
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
                + " exclude=" + excludeModules + " layers=" + layersToTransform + "/" + layersPattern + " save="
                + modulesToSave + " bias=" + bias.jsonName();
    }

    // ---------------------------------------------------------------- adapter_config.json

    /**
     * Writes this value's keys into {@code json}: {@code modules_to_save} (for targeted scopes null
     * when empty; for {@link Scope#MODULES_TO_SAVE} only when not empty, since PEFT's prompt
     * learning configs before 0.17 refuse the key), and for targeted scopes {@code target_modules}
     * (names, a regex or {@code "all-linear"}), {@code exclude_modules} (only when set: PEFT before
     * 0.14 refuses the key), {@code layers_to_transform} and {@code layers_pattern} (only when set),
     * and for {@link Scope#TARGETS_AND_BIAS} {@code bias}.
     */
    public void writeJson(Map<String, Object> json) {
        if (!scope.targeted()) {
            if (!modulesToSave.isEmpty()) {
                json.put("modules_to_save", new ArrayList<>(modulesToSave));
            }
            return;
        }
        json.put("modules_to_save", modulesToSave.isEmpty() ? null : new ArrayList<>(modulesToSave));
        json.put("target_modules", targetModules.toJson());
        if (excludeModules != null) {
            json.put("exclude_modules", excludeModules.toJson());
        }
        if (layersToTransform != null) {
            json.put("layers_to_transform", new ArrayList<>(layersToTransform));
            json.put("layers_pattern", layersPattern.isEmpty() ? null
                    : layersPattern.size() == 1 ? layersPattern.get(0) : new ArrayList<>(layersPattern));
        }
        if (scope == Scope.TARGETS_AND_BIAS) {
            json.put("bias", bias.jsonName());
        }
    }

    /**
     * Whether the file of a wrapped graph records the layers the targets resolved to rather than
     * the options as given ({@link #writeResolvedJson}): with a type filter (which PEFT lacks) or
     * {@code excludeModules} (a key PEFT reads only from 0.14 on).
     */
    public boolean writesResolvedTargets() {
        return scope.targeted() && (!targetTypes.isEmpty() || excludeModules != null);
    }

    /**
     * {@link #writeJson} as the file of a wrapped graph records it: when
     * {@link #writesResolvedTargets()}, {@code target_modules} holds the layers the options resolved
     * to, {@code resolved} among {@code layerNames} ({@link TargetModules#exactly}), and
     * {@code exclude_modules}, {@code layers_to_transform} and {@code layers_pattern} are left out,
     * since the list already applies them; otherwise the options as given.
     */
    public void writeResolvedJson(Map<String, Object> json, Collection<String> resolved, Collection<String> layerNames) {
        writeJson(json);
        if (writesResolvedTargets()) {
            json.put("target_modules", TargetModules.exactly(resolved, layerNames).toJson());
            json.remove("exclude_modules");
            json.remove("layers_to_transform");
            json.remove("layers_pattern");
        }
    }

    /**
     * Reads the keys of {@code scope} from an {@code adapter_config.json}: {@code target_modules}
     * (required when targeted), {@code exclude_modules}, {@code layers_to_transform},
     * {@code layers_pattern}, {@code modules_to_save} (repeated entries dropped: PEFT appends
     * {@code ["classifier", "score"]} to the user's list for sequence classification, so real files
     * repeat them) and {@code bias} (default {@code "none"}). {@code target_parameters}, which PEFT
     * applies instead of targets and peft4j cannot honour, is refused rather than dropped.
     *
     * @throws AdapterFormatException naming the key, what was found and what was expected
     */
    public static Targeting fromJson(Map<String, Object> json, Scope scope) {
        Builder b = builder(scope);
        try {
            String[] save = ConfigJson.optionalStrings(json, "modules_to_save");
            if (save != null) {
                b.modulesToSave(new LinkedHashSet<>(Arrays.asList(save)).toArray(new String[0]));
            }
            if (!scope.targeted()) {
                return b.build();
            }
            b.targetModules(selectionFromJson(json.get("target_modules"), "target_modules", true));
            Object exclude = json.get("exclude_modules");
            if (exclude != null && !(exclude instanceof List<?> l && l.isEmpty())) {
                b.excludeModules(selectionFromJson(exclude, "exclude_modules", false));
            }
            Object target = json.get("target_parameters");
            if (target != null && !(target instanceof List<?> l && l.isEmpty())) {
                throw new AdapterFormatException("\"target_parameters\" " + ConfigJson.describe(target)
                        + " is not supported; only null is (dropping it would adapt other parameters than the file's)");
            }
            List<Integer> layers = layerIndices(json.get("layers_to_transform"));
            if (layers != null) {
                b.layersToTransform(layers.stream().mapToInt(Integer::intValue).toArray());
                Object pattern = json.get("layers_pattern");
                if (pattern instanceof String p && !p.isEmpty()) {
                    b.layersPattern(p);
                } else if (pattern instanceof List<?> l && !l.isEmpty()) {
                    b.layersPattern(ConfigJson.optionalStrings(json, "layers_pattern"));
                } else if (pattern != null && !(pattern instanceof String) && !(pattern instanceof List)) {
                    throw new AdapterFormatException("\"layers_pattern\" must be a string or a list of strings; got "
                            + ConfigJson.describe(pattern));
                }
            }
            if (scope == Scope.TARGETS_AND_BIAS) {
                String bias = ConfigJson.optionalString(json, "bias");
                b.bias(BiasMode.fromJsonName(bias == null ? "none" : bias));
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException(e.getMessage(), e);
        }
    }

    /** {@code layers_to_transform}: null, an integer or a list of integers (an empty list is null). */
    private static List<Integer> layerIndices(Object v) {
        if (v == null || (v instanceof List<?> l && l.isEmpty())) {
            return null;
        }
        List<?> items = v instanceof List<?> l ? l : List.of(v);
        List<Integer> out = new ArrayList<>();
        for (Object o : items) {
            if (!(o instanceof Integer || o instanceof Long) || ((Number) o).longValue() != ((Number) o).intValue()) {
                throw new AdapterFormatException("\"layers_to_transform\" must be an integer or a list of integers; got "
                        + ConfigJson.describe(v));
            }
            out.add(((Number) o).intValue());
        }
        return out;
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
            throw new AdapterFormatException("\"" + key + "\": " + e.getMessage(), e);
        }
        throw new AdapterFormatException("\"" + key + "\" must be a list of layer names or a "
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
                && bias == t.bias && Objects.equals(layersToTransform, t.layersToTransform)
                && layersPattern.equals(t.layersPattern);
    }

    @Override
    public int hashCode() {
        return Objects.hash(scope, targetModules, targetTypes, excludeModules, modulesToSave, bias, layersToTransform,
                layersPattern);
    }

    /** {@code targetModules=..., targetTypes=..., excludeModules=..., layersToTransform=..., modulesToSave=..., bias=...}, the parts of the scope. */
    @Override
    public String toString() {
        StringJoiner j = new StringJoiner(", ");
        if (scope.targeted()) {
            j.add("targetModules=" + targetModules);
            j.add("targetTypes=" + targetTypes.stream().map(Class::getSimpleName).sorted().toList());
            if (excludeModules != null) {
                j.add("excludeModules=" + excludeModules);
            }
            if (layersToTransform != null) {
                j.add("layersToTransform=" + layersToTransform + (layersPattern.isEmpty() ? ""
                        : ", layersPattern=" + layersPattern));
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
        private List<Integer> layersToTransform;
        private final List<String> layersPattern = new ArrayList<>();

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

        /**
         * Restricts a list of target names to the layers whose index is one of {@code indices}
         * (once): the first number following a name part (any part, or one matching
         * {@link #layersPattern}), as PEFT's {@code layers_to_transform}. A layer whose name
         * equals a target entry is chosen whatever its index; a regex target ignores the option.
         *
         * @throws IllegalArgumentException if no index is given or one is negative or repeated
         */
        public Builder layersToTransform(int... indices) {
            requireScope(Scope.TARGETS, "layersToTransform");
            Objects.requireNonNull(indices, "layersToTransform must not be null");
            if (layersToTransform != null) {
                throw new IllegalStateException("layersToTransform was already set to " + layersToTransform);
            }
            if (indices.length == 0) {
                throw new IllegalArgumentException("layersToTransform: give at least one layer index");
            }
            List<Integer> l = new ArrayList<>();
            for (int i : indices) {
                if (i < 0 || l.contains(i)) {
                    throw new IllegalArgumentException("layersToTransform: indices must be non-negative and distinct; got "
                            + Arrays.toString(indices));
                }
                l.add(i);
            }
            this.layersToTransform = l;
            return this;
        }

        /**
         * The name parts (regular expressions, RE2) a layer index of {@link #layersToTransform}
         * follows, e.g. {@code "layers"} for {@code model.layers.3.self_attn.q_proj} (once; PEFT's
         * {@code layers_pattern}).
         */
        public Builder layersPattern(String... patterns) {
            requireScope(Scope.TARGETS, "layersPattern");
            Objects.requireNonNull(patterns, "layersPattern must not be null");
            if (!layersPattern.isEmpty()) {
                throw new IllegalStateException("layersPattern was already set to " + layersPattern);
            }
            for (String p : patterns) {
                if (p == null || p.isEmpty()) {
                    throw new IllegalArgumentException("layersPattern entries must not be null or empty; got "
                            + Arrays.toString(patterns));
                }
                TargetModules.compile(p, "layersPattern");
                layersPattern.add(p);
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
            if (!layersPattern.isEmpty() && layersToTransform == null) {
                throw new IllegalStateException("layersPattern " + layersPattern + " is used only with layersToTransform, "
                        + "which is not set");
            }
            return new Targeting(this);
        }
    }
}
