package org.peft4j.core;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.internal.AdapterFiles;
import org.peft4j.core.internal.AdapterReader;
import org.peft4j.core.internal.BaseFingerprint;
import org.peft4j.core.internal.GraphRewriter;
import org.peft4j.core.io.DirectoryTransaction;

/**
 * Entry point: wraps a DL4J base model for parameter-efficient fine-tuning, and loads saved
 * adapters onto a base model.
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(graph, LoraConfig.builder().rank(8).alpha(16)
 *         .targetModules("dense1", "dense2").build());
 * peft.graph().fit(iterator, epochs);
 * peft.saveAdapter(dir);
 * PeftModel again = Peft.load(graph, dir);
 * }</pre>
 *
 * <p>The base model is never modified: wrapping builds a new configuration and a new graph, with
 * copies of the base weights. Thread-safety: stateless; wrapping reads the base model, so do not
 * train it on another thread meanwhile.
 */
public final class Peft {

    private Peft() {
    }

    /**
     * Wraps a computation graph.
     *
     * @throws NullPointerException if an argument is null
     * @throws IllegalArgumentException if the config does not fit the graph (no target matched, a
     *     target of an unsupported type, an unknown {@code modulesToSave} name, an already wrapped
     *     graph); the message says what was found and what exists
     * @throws IllegalStateException if the graph is not initialized
     */
    public static PeftModel wrap(ComputationGraph base, PeftConfig config) {
        return wrap(base, config, plan -> { });
    }

    /** As {@link #wrap(ComputationGraph, PeftConfig)}; {@code check} sees the plan before the wrapped graph is allocated. */
    private static PeftModel wrap(ComputationGraph base, PeftConfig config, Consumer<GraphRewriter.Plan> check) {
        Objects.requireNonNull(base, "base model must not be null");
        Objects.requireNonNull(config, "config must not be null");
        if (base.getVertices() == null) { // set by init(); params() is an empty array before it, not null
            throw new IllegalStateException("the base graph has no parameters yet; call init() on it before wrapping");
        }
        if (config.trainsEverything()) {
            return new PeftModel(GraphRewriter.independentClone(base),
                    GraphRewriter.independentConf(base.getConfiguration()), config, Map.of(), BaseFingerprint.of(base),
                    Map.of());
        }
        GraphRewriter.Plan plan = GraphRewriter.plan(base, config);
        check.accept(plan);
        GraphRewriter.Result r = plan.build();
        Map<String, Map<String, INDArray>> originals = new LinkedHashMap<>();
        for (String s : plan.saved()) {
            Map<String, INDArray> t = new LinkedHashMap<>();
            base.getLayer(s).paramTable().forEach((k, v) -> t.put(k, GraphRewriter.detachedCopy(v)));
            originals.put(s, t);
        }
        return new PeftModel(r.graph(), GraphRewriter.independentConf(base.getConfiguration()), config,
                r.projectionVertexOf(), BaseFingerprint.of(base), originals);
    }

    /**
     * Wraps a multi-layer network by way of its computation-graph form
     * ({@link MultiLayerNetwork#toComputationGraph()}); layer names are those of that form.
     */
    public static PeftModel wrap(MultiLayerNetwork base, PeftConfig config) {
        Objects.requireNonNull(base, "base model must not be null");
        Objects.requireNonNull(config, "config must not be null");
        if (!base.isInitCalled()) {
            throw new IllegalStateException("the base network has no parameters yet; call init() on it before wrapping");
        }
        return wrap(base.toComputationGraph(), config);
    }

    /**
     * Rebuilds a wrapped model from {@link PeftModel#saveAdapter} output: the adapter in {@code dir}
     * becomes the default adapter, and every adapter its config lists as saved with it is loaded
     * from the sub-directory of its name (other sub-directories are left alone). For a directory
     * another writer made, whose config lists none, every sub-directory holding an adapter is
     * loaded under its directory name. The files and the base model's fingerprint are checked
     * before anything is built, a weights file against the SHA-256 its config recorded, and every
     * tensor's name and shape against the wrapped graph before any weight is set; {@code base} is
     * only read. A config describing a graph larger than its weights file plus the base model is
     * refused before that graph is allocated.
     *
     * @throws AdapterFormatException if a file is missing or malformed, the files come from
     *     different saves, or an adapter in a sub-directory cannot be loaded under that directory's name
     * @throws IncompatibleAdapterException if the adapter was trained on another base model or
     *     does not fit its layers
     */
    public static PeftModel load(ComputationGraph base, Path dir) throws IOException {
        return load(base, dir, false);
    }

    /** As {@link #load(ComputationGraph, Path)}; {@code ignoreFingerprint} deliberately accepts other base weights. */
    public static PeftModel load(ComputationGraph base, Path dir, boolean ignoreFingerprint) throws IOException {
        return load(base, dir, UnaryOperator.identity(), ignoreFingerprint);
    }

    /**
     * As {@link #load(ComputationGraph, Path, boolean)}, with {@code configure} turning each config
     * read from a file into the one to wrap with, e.g. a LoRA config into QLoRA over a 4-bit base:
     * {@code c -> QLoraConfig.of((LoraConfig) c, spec)}. The model applies it to adapters it
     * loads later too.
     */
    public static PeftModel load(ComputationGraph base, Path dir, UnaryOperator<PeftConfig> configure,
                                 boolean ignoreFingerprint) throws IOException {
        Objects.requireNonNull(base, "base model must not be null");
        Objects.requireNonNull(dir, "directory must not be null");
        Objects.requireNonNull(configure, "configure must not be null");
        AdapterReader.Loaded read = AdapterReader.read(dir, BaseFingerprint.of(base), ignoreFingerprint);
        AdapterReader.Loaded loaded = read.withConfig(configure.apply(read.config()));
        Map<String, String> savedWith = loaded.savedWith(dir);
        PeftModel m;
        try {
            m = wrap(base, loaded.config(), plan -> AdapterReader.checkSize(plan, loaded, base.numParams(), dir));
        } catch (IllegalArgumentException e) {
            throw AdapterReader.doesNotFit(dir, AdapterFiles.CONFIG_FILE, e);
        }
        AdapterReader.assign(loaded, m.graph(), dir);
        m.setLoadConfigurer(configure);
        if (savedWith != null) {
            for (Map.Entry<String, String> e : savedWith.entrySet()) {
                try {
                    m.loadAdapter(dir.resolve(e.getKey()), e.getKey(), ignoreFingerprint, e.getValue());
                } catch (IllegalArgumentException | AdapterFormatException ex) {
                    throw new AdapterFormatException(dir.resolve(AdapterFiles.CONFIG_FILE) + " lists adapter \""
                            + e.getKey() + "\" as saved with it, which cannot be loaded: " + ex.getMessage(), ex);
                }
            }
            return m;
        }
        List<Path> subdirs;
        try (Stream<Path> s = Files.list(dir)) {
            subdirs = s.filter(p -> !DirectoryTransaction.isInternal(p.getFileName().toString())
                    && Files.isRegularFile(p.resolve(AdapterFiles.CONFIG_FILE))).sorted().toList();
        }
        for (Path sub : subdirs) {
            try {
                m.loadAdapter(sub, sub.getFileName().toString(), ignoreFingerprint);
            } catch (IllegalArgumentException e) {
                throw new AdapterFormatException("sub-directory " + sub + " holds an adapter that cannot be loaded: "
                        + e.getMessage() + "; rename it or move it out of " + dir);
            }
        }
        return m;
    }
}
