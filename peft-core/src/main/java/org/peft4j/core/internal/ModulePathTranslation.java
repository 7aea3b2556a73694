package org.peft4j.core.internal;

import com.google.re2j.Pattern;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.TargetModules;
import org.peft4j.core.Targeting;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.spi.KeyPolicy;

/**
 * Translates adapter files between a PyTorch model's module paths and a graph's layer names
 * ({@link ModuleNames}): tensor names, and the config keys that name modules
 * ({@code target_modules}, {@code exclude_modules}, {@code layers_to_transform},
 * {@code modules_to_save}, and the keys a tuner's {@link KeyPolicy} marks as
 * {@link KeyPolicy.Role#MODULE_SELECTION} or {@link KeyPolicy.Role#MODULE_PATTERNS}).
 *
 * <p>Reading resolves each selection over the module paths with PEFT's rules, as PEFT resolved it
 * over the PyTorch model, and writes the result as the exact layers it chose; a file's module path
 * may carry one of the name map's tolerated prefixes, and a selection matches a module when it
 * matches the path with any of them. Writing does the reverse: every selection becomes the
 * shortest module-path suffixes that choose exactly the same modules among all the model's modules
 * (those that contain others included, since PEFT matches against every {@code named_modules()}
 * name): on BERT, LoRA on every query and value projection becomes {@code ["query", "value"]}, LoRA
 * on the attention output only {@code ["attention.output.dense"]} (as {@code "output.dense"} would
 * also choose the MLP's output).
 *
 * <p>Thread-safety: stateless.
 */
final class ModulePathTranslation {

    private static final String PREFIX = AdapterLayout.PREFIX;

    private ModulePathTranslation() {
    }

    /** Module paths resolved against a graph: which are mapped to one of its layers. */
    private static final class Paths {
        final ModuleNames names;
        /** Mapped paths whose layer the graph has. */
        final Map<String, String> layerByPath = new TreeMap<>();
        /** Every known leaf path, mapped or not. */
        final Set<String> leaves = new TreeSet<>();
        /** Leaves and the modules that contain them. */
        final Set<String> universe = new TreeSet<>();

        Paths(ModuleNames names, Collection<String> layerNames) {
            this.names = names;
            Set<String> layers = new java.util.HashSet<>(layerNames);
            names.layersByPath().forEach((p, l) -> {
                if (layers.contains(l)) {
                    layerByPath.put(p, l);
                }
            });
            leaves.addAll(names.paths());
            for (String p : leaves) {
                universe.add(p);
                for (int i = p.indexOf('.'); i > 0; i = p.indexOf('.', i + 1)) {
                    universe.add(p.substring(0, i));
                }
            }
        }

        /** The names a file may give module {@code path}: with each tolerated prefix. */
        List<String> candidates(String path) {
            List<String> out = new ArrayList<>();
            for (String p : names.prefixes()) {
                out.add(p + path);
            }
            return out;
        }

        /**
         * The known leaf path and the rest of a name {@code rest} ({@code <prefix><path>.<rest>}),
         * longest path first, or null.
         */
        String[] resolve(String name) {
            for (String prefix : names.prefixes()) {
                if (!name.startsWith(prefix)) {
                    continue;
                }
                String r = name.substring(prefix.length());
                for (int dot = r.lastIndexOf('.'); dot > 0; dot = r.lastIndexOf('.', dot - 1)) {
                    String path = r.substring(0, dot);
                    if (leaves.contains(path)) {
                        return new String[] {path, r.substring(dot + 1)};
                    }
                }
            }
            return null;
        }
    }

    // ---------------------------------------------------------------- reading

    /**
     * Whether {@code module} (a module name as a file writes it, without {@code base_model.model.})
     * is a mapped module whose layer the graph has.
     */
    static boolean isMappedModule(String module, ModuleNames names, Collection<String> layerNames) {
        Paths paths = new Paths(names, layerNames);
        String[] r = paths.resolve(module + ".x");
        return r != null && r[1].equals("x") && paths.layerByPath.containsKey(r[0]);
    }

    /** The known leaf paths of {@code names}, with every tolerated prefix: the module names a file may use. */
    static Set<String> moduleNamesInFiles(ModuleNames names) {
        Set<String> out = new TreeSet<>();
        for (String path : names.paths()) {
            for (String p : names.prefixes()) {
                out.add(p + path);
            }
        }
        return out;
    }

    /**
     * The names of a file's tensors in the graph's terms: {@code base_model.model.<layer>.<suffix>}
     * for {@code base_model.model.<prefix><module path>.<suffix>} (or the same without
     * {@code base_model.model.}, as transformers' own adapter saving may write them), the name
     * itself for a model-level tensor (a name without a {@code "."}, such as
     * {@code prompt_embeddings}); as a map of graph name → file name.
     *
     * @throws IncompatibleAdapterException naming the tensors of modules the graph does not have
     *     or the name map does not know
     */
    static Map<String, String> tensorNamesToLayers(Collection<String> fileNames, ModuleNames names,
                                                   Collection<String> layerNames, String what) {
        Paths paths = new Paths(names, layerNames);
        Map<String, String> out = new LinkedHashMap<>();
        Set<String> unknown = new TreeSet<>();
        Set<String> unmapped = new TreeSet<>();
        for (String name : fileNames) {
            if (!name.contains(".")) {
                out.put(name, name);
                continue;
            }
            String rest = name.startsWith(PREFIX) ? name.substring(PREFIX.length()) : name;
            String[] r = paths.resolve(rest);
            if (r == null) {
                unknown.add(name);
                continue;
            }
            String layer = paths.layerByPath.get(r[0]);
            if (layer == null) {
                unmapped.add(r[0]);
                continue;
            }
            String renamed = PREFIX + layer + "." + r[1];
            String earlier = out.put(renamed, name);
            if (earlier != null) {
                throw new AdapterFormatException(what + ": tensors " + earlier + " and " + name + " are the same parameter "
                        + "of module " + r[0] + " (layer " + layer + ")");
            }
        }
        List<String> problems = new ArrayList<>();
        if (!unmapped.isEmpty()) {
            problems.add("it holds tensors of modules " + unmapped + ", which have no layer in this graph");
        }
        if (!unknown.isEmpty()) {
            problems.add("tensors " + first(unknown) + " belong to no module path of the name map (known prefixes "
                    + names.prefixes() + ", paths such as " + first(names.layersByPath().keySet()) + ")");
        }
        if (!problems.isEmpty()) {
            throw new IncompatibleAdapterException(what + " does not fit this graph under its module names: "
                    + String.join("; ", problems));
        }
        return out;
    }

    /**
     * The config keys that name modules, resolved over the module paths and written as the layers
     * they choose: {@code target_modules} exactly the targets (with {@code exclude_modules},
     * {@code layers_to_transform}, {@code layers_pattern} and the modules to save applied and then
     * set to null), {@code modules_to_save} the saved layers, selections and pattern keys of the
     * tuner's {@code policy} the layers they choose.
     *
     * @param json the config as the file holds it (after {@link PeftFileSemantics}); not modified
     * @throws IncompatibleAdapterException if no module matched {@code target_modules}, or a chosen
     *     module has no layer in this graph
     */
    static Map<String, Object> configToLayers(Map<String, Object> json, ModuleNames names, KeyPolicy policy,
                                             Collection<String> layerNames, String what) {
        Paths paths = new Paths(names, layerNames);
        Map<String, Object> out = new TreeMap<>(json);
        boolean targeted = json.containsKey("target_modules");
        Targeting t = Targeting.fromJson(json, targeted ? Targeting.Scope.TARGETS : Targeting.Scope.MODULES_TO_SAVE);

        Set<String> savedPaths = new TreeSet<>();
        for (String p : paths.leaves) {
            if (paths.candidates(p).stream().anyMatch(t::isModuleToSave)) {
                savedPaths.add(p);
            }
        }
        Set<String> savedLayers = layersOf(savedPaths, paths, null, what);
        if (!t.modulesToSave().isEmpty()) {
            out.put("modules_to_save", savedLayers.isEmpty() ? null : exactModulesToSave(savedLayers, layerNames, what));
        }
        if (!targeted) {
            return out;
        }
        List<String> targets = new ArrayList<>();
        if (t.targetModules().kind() == TargetModules.Kind.ALL_LINEAR) {
            Set<String> excluded = new TreeSet<>();
            for (String p : paths.leaves) {
                if (paths.candidates(p).stream().anyMatch(t::isExcluded)) {
                    excluded.add(p);
                }
            }
            Set<String> excludedLayers = layersOf(excluded, paths, null, what);
            out.put("exclude_modules", excludedLayers.isEmpty() ? null
                    : TargetModules.exactly(excludedLayers, layerNames).toJson());
            return out;
        }
        Set<String> chosen = new TreeSet<>();
        for (String p : paths.leaves) {
            if (savedPaths.contains(p)) {
                continue;
            }
            List<String> c = paths.candidates(p);
            if (c.stream().anyMatch(t::isExcluded)) {
                continue;
            }
            if (c.stream().anyMatch(n -> t.selects(n, true, false))) {
                chosen.add(p);
            }
        }
        if (chosen.isEmpty()) {
            throw new IncompatibleAdapterException(what + ": no module matched target_modules " + t.targetModules()
                    + (t.excludeModules() == null ? "" : " outside exclude_modules " + t.excludeModules())
                    + (t.layersToTransform() == null ? "" : " in layers_to_transform " + t.layersToTransform())
                    + "; module paths are: " + first(paths.leaves));
        }
        targets.addAll(layersOf(chosen, paths, "target_modules " + t.targetModules(), what));
        out.put("target_modules", TargetModules.exactly(targets, layerNames).toJson());
        out.put("exclude_modules", null);
        out.put("layers_to_transform", null);
        out.put("layers_pattern", null);

        for (String key : policy.keys(KeyPolicy.Role.MODULE_SELECTION)) {
            Object v = json.get(key);
            if (v == null || (v instanceof List<?> l && l.isEmpty())) {
                continue;
            }
            TargetModules sel = Targeting.selectionFromJson(v, key, false);
            Set<String> selPaths = new TreeSet<>();
            for (String p : chosen) {
                if (paths.candidates(p).stream().anyMatch(n -> sel.matches(n, true, false))) {
                    selPaths.add(p);
                }
            }
            Set<String> selLayers = layersOf(selPaths, paths, key, what);
            out.put(key, selLayers.isEmpty() ? null : TargetModules.exactly(selLayers, layerNames).toJson());
        }
        for (String key : policy.keys(KeyPolicy.Role.MODULE_PATTERNS)) {
            Object v = json.get(key);
            if (!(v instanceof Map<?, ?> patterns) || patterns.isEmpty()) {
                continue;
            }
            Map<String, Object> translated = new TreeMap<>();
            for (String p : chosen) {
                String layer = paths.layerByPath.get(p);
                for (Map.Entry<?, ?> e : patterns.entrySet()) {
                    Pattern k = compilePatternKey(String.valueOf(e.getKey()), key, what);
                    if (paths.candidates(p).stream().anyMatch(n -> k.matches(n))) {
                        translated.put(exactPatternKey(layer, targets), e.getValue());
                        break;
                    }
                }
            }
            out.put(key, translated);
        }
        return out;
    }

    /** The layers of mapped paths; an unmapped one is refused when {@code selection} names what chose it. */
    private static Set<String> layersOf(Set<String> chosen, Paths paths, String selection, String what) {
        Set<String> layers = new TreeSet<>();
        Set<String> missing = new TreeSet<>();
        for (String p : chosen) {
            String l = paths.layerByPath.get(p);
            if (l == null) {
                missing.add(p);
            } else {
                layers.add(l);
            }
        }
        if (selection != null && !missing.isEmpty()) {
            throw new IncompatibleAdapterException(what + ": " + selection + " chose modules " + missing + ", which have "
                    + "no layer in this graph (PEFT adapted them, and this graph cannot hold their adapter)");
        }
        return layers;
    }

    /** {@code modules_to_save} naming exactly {@code saved} among {@code layerNames} (PEFT's endswith matching). */
    private static List<String> exactModulesToSave(Set<String> saved, Collection<String> layerNames, String what) {
        List<String> list = new ArrayList<>(saved);
        for (String l : layerNames) {
            if (!saved.contains(l) && TargetModules.matchesModuleToSave(list, l)) {
                throw new IncompatibleAdapterException(what + ": modules_to_save chooses layers " + saved + ", and no "
                        + "list of layer names chooses exactly them in this graph (\"" + l + "\" would be chosen too)");
            }
        }
        return list;
    }

    /** A key of PEFT's {@code get_pattern_key}: it matches names that end with it at a {@code "."}. */
    private static Pattern compilePatternKey(String key, String option, String what) {
        try {
            return Pattern.compile("(?:.*\\.)?(?:" + key + ")");
        } catch (com.google.re2j.PatternSyntaxException e) {
            throw new AdapterFormatException(what + ": \"" + option + "\" key \"" + key + "\" is not a regular expression "
                    + "RE2 accepts: " + e.getDescription());
        }
    }

    /**
     * A pattern key that chooses layer {@code layer} and no other of {@code targets}: its name with
     * regex characters escaped, anchored with {@code ^} if another target's name ends with {@code "."} plus it.
     */
    private static String exactPatternKey(String layer, Collection<String> targets) {
        String escaped = escape(layer);
        for (String t : targets) {
            if (t.endsWith("." + layer)) {
                return "^" + escaped;
            }
        }
        return escaped;
    }

    /** {@code s} with every character other than letters, digits and {@code _} backslash-escaped (valid in RE2 and Python). */
    static String escape(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!(Character.isLetterOrDigit(c) || c == '_')) {
                b.append('\\');
            }
            b.append(c);
        }
        return b.toString();
    }

    // ---------------------------------------------------------------- writing

    /**
     * The wrapped graph's tensors renamed from {@code base_model.model.<layer>.<suffix>} to
     * {@code base_model.model.<module path>.<suffix>}; model-level tensors are kept.
     *
     * @throws IllegalArgumentException naming the layers the name map has no path for
     */
    static Map<String, SafeTensor> tensorsToPaths(Map<String, SafeTensor> tensors, ModuleNames names,
                                                  Collection<String> layerNames) {
        Map<String, SafeTensor> out = new LinkedHashMap<>();
        Set<String> missing = new TreeSet<>();
        List<String> layers = new ArrayList<>(layerNames);
        layers.sort((a, b) -> Integer.compare(b.length(), a.length()));
        for (Map.Entry<String, SafeTensor> e : tensors.entrySet()) {
            String name = e.getKey();
            if (!name.startsWith(PREFIX)) {
                out.put(name, e.getValue());
                continue;
            }
            String rest = name.substring(PREFIX.length());
            String layer = layers.stream().filter(l -> rest.startsWith(l + ".")).findFirst().orElse(null);
            String path = layer == null ? null : names.pathOf(layer).orElse(null);
            if (path == null) {
                missing.add(layer == null ? rest : layer);
                continue;
            }
            out.put(PREFIX + path + rest.substring(layer.length()), e.getValue());
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("the name map gives no module path for layers " + missing + " whose "
                    + "parameters the adapter saves; map them with ModuleNames.Builder.map(path, layer)");
        }
        return out;
    }

    /**
     * The config keys that name modules, written in module paths: {@code target_modules} the
     * shortest path suffixes that choose exactly the paths of {@code targets} among all the model's
     * modules ({@code exclude_modules}, {@code layers_to_transform} and {@code layers_pattern} set to
     * null, since the list already applies them), {@code modules_to_save} likewise for
     * {@code saved} with PEFT's endswith matching, selections of the tuner's {@code policy} the paths
     * of the targets they choose, pattern keys the escaped path of each target they give a value.
     *
     * @param json the config of layer names ({@link org.peft4j.core.PeftConfig#toAdapterConfig})
     * @param targets the layers the adapter adapts
     * @param saved the layers it trains in full
     */
    static Map<String, Object> configToPaths(Map<String, Object> json, ModuleNames names, KeyPolicy policy,
                                             Collection<String> targets, Collection<String> saved) {
        Map<String, Object> out = new TreeMap<>(json);
        Set<String> universe = new Paths(names, List.of()).universe;
        if (out.containsKey("modules_to_save") && !saved.isEmpty()) {
            Set<String> savedPaths = pathsOf(saved, names);
            List<String> entries = new ArrayList<>();
            for (String p : savedPaths) {
                entries.add(shortestSuffix(p, s -> universe.stream()
                        .filter(u -> names.paths().contains(u) && TargetModules.matchesModuleToSave(List.of(s), u))
                        .allMatch(savedPaths::contains)));
            }
            out.put("modules_to_save", new ArrayList<>(new TreeSet<>(entries)));
        }
        if (!json.containsKey("target_modules") || targets.isEmpty()) {
            return out;
        }
        Set<String> targetPaths = pathsOf(targets, names);
        out.put("target_modules", suffixesChoosing(targetPaths, universe));
        out.remove("exclude_modules");
        out.remove("layers_to_transform");
        out.remove("layers_pattern");
        for (String key : policy.keys(KeyPolicy.Role.MODULE_SELECTION)) {
            Object v = json.get(key);
            if (v == null || (v instanceof List<?> l && l.isEmpty())) {
                continue;
            }
            TargetModules sel = Targeting.selectionFromJson(v, key, false);
            Set<String> chosen = new TreeSet<>();
            for (String l : targets) {
                if (sel.matches(l, true, false)) {
                    chosen.add(l);
                }
            }
            out.put(key, chosen.isEmpty() ? null : suffixesChoosing(pathsOf(chosen, names), universe));
        }
        for (String key : policy.keys(KeyPolicy.Role.MODULE_PATTERNS)) {
            Object v = json.get(key);
            if (!(v instanceof Map<?, ?> patterns) || patterns.isEmpty()) {
                continue;
            }
            Map<String, Object> translated = new TreeMap<>();
            for (String l : targets) {
                for (Map.Entry<?, ?> e : patterns.entrySet()) {
                    if (compilePatternKey(String.valueOf(e.getKey()), key, key).matches(l)) {
                        translated.put(escape(names.pathOf(l).orElseThrow()), e.getValue());
                        break;
                    }
                }
            }
            out.put(key, translated);
        }
        return out;
    }

    private static Set<String> pathsOf(Collection<String> layers, ModuleNames names) {
        Set<String> out = new TreeSet<>();
        Set<String> missing = new TreeSet<>();
        for (String l : layers) {
            names.pathOf(l).ifPresentOrElse(out::add, () -> missing.add(l));
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("the name map gives no module path for layers " + missing + " of the "
                    + "adapter; map them with ModuleNames.Builder.map(path, layer)");
        }
        return out;
    }

    /** For each path, the shortest suffix (in whole parts) that PEFT's target matching resolves within {@code chosen}. */
    private static List<String> suffixesChoosing(Set<String> chosen, Set<String> universe) {
        Set<String> out = new TreeSet<>();
        for (String p : chosen) {
            out.add(shortestSuffix(p, s -> universe.stream().filter(u -> u.equals(s) || u.endsWith("." + s))
                    .allMatch(chosen::contains)));
        }
        return new ArrayList<>(out);
    }

    /** The shortest suffix of {@code path} made of whole parts that {@code fits}, else the whole path. */
    private static String shortestSuffix(String path, java.util.function.Predicate<String> fits) {
        for (int dot = path.lastIndexOf('.'); dot > 0; dot = path.lastIndexOf('.', dot - 1)) {
            String s = path.substring(dot + 1);
            if (fits.test(s)) {
                return s;
            }
        }
        return path;
    }

    private static String first(Collection<String> items) {
        List<String> l = new ArrayList<>(new LinkedHashSet<>(items));
        return l.size() <= 8 ? l.toString() : l.subList(0, 8) + " and " + (l.size() - 8) + " more";
    }
}
