package org.peft4j.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The correspondence between the module paths of a PyTorch model ({@code named_modules()} names such
 * as {@code encoder.layer.0.attention.self.query}) and the layer names of a graph that computes the
 * same model ({@code block0.attn.q}), supplied by whoever built the graph: for BERT-family encoders
 * {@link org.peft4j.core.onnx.BertOnnxImport#moduleNames}.
 *
 * <p>With it, {@link Peft#load(org.deeplearning4j.nn.graph.ComputationGraph, java.nio.file.Path, ModuleNames)}
 * reads an adapter that Hugging Face PEFT wrote for the PyTorch model (tensors
 * {@code base_model.model.<module path>.lora_A.weight}, {@code target_modules} such as
 * {@code ["query", "value"]} matched against module paths), and
 * {@link PeftModel#saveAdapter(java.nio.file.Path, ModuleNames)} writes one in those names.
 * Parameters of trained modules are PyTorch's ({@code weight}, {@code bias}) in both directions.
 *
 * <p>Three kinds of entries:
 * <ul>
 *   <li><b>mapped</b> modules ({@link Builder#map}): a module path and the layer that holds its
 *       parameters, one to one;</li>
 *   <li><b>unmapped</b> modules ({@link Builder#unmapped}): modules of the PyTorch model with no
 *       layer in the graph (BERT's {@code pooler.dense}). They are listed so that PEFT's suffix
 *       matching sees them as PEFT did: {@code target_modules ["dense"]} chose {@code pooler.dense}
 *       too, and an adapter on it cannot be loaded here;</li>
 *   <li><b>tolerated prefixes</b> ({@link Builder#tolerate}): what a file may put in front of the
 *       paths because PEFT wrapped a bigger model around the same modules ({@code bert.} for
 *       {@code BertForSequenceClassification}, {@code 0.auto_model.} for a sentence-transformers
 *       model). Prefix {@code ""} is always tolerated.</li>
 * </ul>
 * Paths are of leaf modules (those holding parameters); the modules that contain them (such as
 * {@code encoder.layer.0.attention}) are derived from the paths.
 *
 * <p>Thread-safety: immutable.
 */
public final class ModuleNames {

    private final Map<String, String> layerByPath;
    private final Map<String, String> pathByLayer;
    private final Set<String> unmapped;
    private final List<String> prefixes;

    private ModuleNames(Builder b) {
        this.layerByPath = Collections.unmodifiableMap(new TreeMap<>(b.layerByPath));
        Map<String, String> inverse = new TreeMap<>();
        b.layerByPath.forEach((p, l) -> inverse.put(l, p));
        this.pathByLayer = Collections.unmodifiableMap(inverse);
        this.unmapped = Collections.unmodifiableSet(new TreeSet<>(b.unmapped));
        List<String> pre = new ArrayList<>(b.prefixes);
        pre.add("");
        pre.sort(Comparator.comparingInt(String::length).reversed().thenComparing(Comparator.naturalOrder()));
        this.prefixes = List.copyOf(new LinkedHashSet<>(pre));
    }

    /** A builder. */
    public static Builder builder() {
        return new Builder();
    }

    /** Mapped module paths and their layers, sorted by path. */
    public Map<String, String> layersByPath() {
        return layerByPath;
    }

    /** The layer that holds module {@code path}'s parameters, if the module is mapped. */
    public Optional<String> layerOf(String path) {
        return Optional.ofNullable(layerByPath.get(path));
    }

    /** The module path of layer {@code layerName}, if it is mapped. */
    public Optional<String> pathOf(String layerName) {
        return Optional.ofNullable(pathByLayer.get(layerName));
    }

    /** Modules of the PyTorch model that have no layer in the graph, sorted. */
    public Set<String> unmapped() {
        return unmapped;
    }

    /** Every known leaf module path, mapped or not, sorted. */
    public Set<String> paths() {
        Set<String> all = new TreeSet<>(layerByPath.keySet());
        all.addAll(unmapped);
        return Collections.unmodifiableSet(all);
    }

    /** The tolerated prefixes, longest first, ending with {@code ""}. */
    public List<String> prefixes() {
        return prefixes;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof ModuleNames)) {
            return false;
        }
        ModuleNames m = (ModuleNames) o;
        return layerByPath.equals(m.layerByPath) && unmapped.equals(m.unmapped) && prefixes.equals(m.prefixes);
    }

    @Override
    public int hashCode() {
        return Objects.hash(layerByPath, unmapped, prefixes);
    }

    /** {@code ModuleNames(mapped=…, unmapped=…, prefixes=…)}. */
    @Override
    public String toString() {
        return "ModuleNames(mapped=" + layerByPath + ", unmapped=" + unmapped + ", prefixes=" + prefixes + ")";
    }

    /**
     * Builds {@link ModuleNames}; every setter checks its argument at once.
     *
     * <p>Thread-safety: not thread-safe.
     */
    public static final class Builder {
        private final Map<String, String> layerByPath = new LinkedHashMap<>();
        private final Set<String> layers = new LinkedHashSet<>();
        private final Set<String> unmapped = new LinkedHashSet<>();
        private final Set<String> prefixes = new LinkedHashSet<>();

        private Builder() {
        }

        private static String checkPath(String path, String what) {
            Objects.requireNonNull(path, what + " must not be null");
            if (path.isEmpty() || path.startsWith(".") || path.endsWith(".") || path.contains("..")
                    || path.chars().anyMatch(Character::isWhitespace)) {
                throw new IllegalArgumentException(what + " must be a dotted module path such as "
                        + "\"encoder.layer.0.attention.self.query\"; got \"" + path + "\"");
            }
            if (path.startsWith("base_model.model.")) {
                throw new IllegalArgumentException(what + " \"" + path + "\" starts with PEFT's wrapper prefix "
                        + "\"base_model.model.\"; give the path inside the model");
            }
            return path;
        }

        private void checkNew(String path) {
            if (layerByPath.containsKey(path) || unmapped.contains(path)) {
                throw new IllegalArgumentException("module path \"" + path + "\" is given twice");
            }
        }

        /**
         * Module {@code path} of the PyTorch model is layer {@code layerName} of the graph.
         *
         * @throws IllegalArgumentException if the path or layer is blank or malformed, or either is
         *     given twice
         */
        public Builder map(String path, String layerName) {
            checkPath(path, "module path");
            Objects.requireNonNull(layerName, "layer name must not be null");
            if (layerName.isBlank()) {
                throw new IllegalArgumentException("layer name of \"" + path + "\" must not be blank");
            }
            checkNew(path);
            if (!layers.add(layerName)) {
                throw new IllegalArgumentException("layer \"" + layerName + "\" is given for two module paths");
            }
            layerByPath.put(path, layerName);
            return this;
        }

        /** Modules of the PyTorch model that have no layer in the graph. */
        public Builder unmapped(String... paths) {
            Objects.requireNonNull(paths, "paths must not be null");
            for (String p : paths) {
                checkPath(p, "unmapped module path");
                checkNew(p);
                unmapped.add(p);
            }
            return this;
        }

        /**
         * Prefixes a file may put in front of every path, e.g. {@code "bert."} (each ends with {@code "."}).
         */
        public Builder tolerate(String... prefixes) {
            Objects.requireNonNull(prefixes, "prefixes must not be null");
            for (String p : prefixes) {
                Objects.requireNonNull(p, "prefix must not be null");
                if (!p.isEmpty()) {
                    checkPath(p.substring(0, Math.max(0, p.length() - 1)), "prefix");
                    if (!p.endsWith(".")) {
                        throw new IllegalArgumentException("prefix \"" + p + "\" must end with \".\"");
                    }
                }
                this.prefixes.add(p);
            }
            return this;
        }

        /**
         * @throws IllegalStateException if no module is mapped
         */
        public ModuleNames build() {
            if (layerByPath.isEmpty()) {
                throw new IllegalStateException("map at least one module path to a layer");
            }
            return new ModuleNames(this);
        }
    }
}
