package org.peft4j.core;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.UnaryOperator;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.internal.AdapterFiles;
import org.peft4j.core.internal.AdapterNames;
import org.peft4j.core.internal.AdapterReader;
import org.peft4j.core.internal.AdapterWriter;
import org.peft4j.core.internal.BaseFingerprint;
import org.peft4j.core.internal.FastAdamUpdater;
import org.peft4j.core.internal.GraphRewriter;
import org.peft4j.core.internal.TrainingStateFiles;
import org.peft4j.core.io.DirectoryTransaction;
import org.peft4j.core.io.SafeTensor;

/**
 * A base model wrapped for fine-tuning: {@link #graph()} is a real DL4J {@link ComputationGraph}
 * ({@code fit}, {@code output}, listeners, {@code Evaluation}, early stopping all work unchanged)
 * whose parameter vector, gradient and optimizer state hold the trainable parameters only.
 *
 * <p><b>Merging.</b> Adapters can be merged into the frozen weights ({@link #merge()}) for
 * inference and unmerged again exactly ({@link #unmerge()}: the unmerged base weight is kept, not
 * recomputed), switched off ({@link #disableAdapter()}), or folded into a plain graph of stock DL4J
 * layers ({@link #mergeAndUnload()}).
 *
 * <p><b>Several adapters over one base.</b> The adapter the model was wrapped with is named
 * {@value #DEFAULT_ADAPTER}; {@link #addAdapter} adds more, {@link #setAdapter} activates one.
 * An adapter is the whole trainable parameter vector (plus its optimizer state), so switching
 * between adapters of the same layout ({@link PeftConfig#layoutSignature()}: same targets, rank,
 * trained biases and modules) copies one vector into the graph: no rebuild, no copy of base
 * weights. Switching to an adapter of another layout rebuilds the wrapped graph from the frozen
 * base weights, and {@link #graph()} then returns the new graph.
 *
 * <p><b>Files.</b> {@link #saveAdapter(Path)} writes every adapter in Hugging Face PEFT's layout
 * ({@code adapter_config.json} + {@code adapter_model.safetensors}; the default adapter in the
 * directory, each other one in a sub-directory of its name); {@link Peft#load} reads them back.
 * {@link #saveCheckpoint(Path)} adds the optimizer state and counters for {@link #resume}.
 *
 * <p><b>Thread-safety.</b> {@link #output(INDArray...)}, {@link #setAdapter}, {@link #addAdapter},
 * {@link #deleteAdapter}, {@link #merge()}, {@link #unmerge()} and the file methods lock this
 * model, so inference through {@link #output} on several threads while another thread switches
 * adapters always yields outputs computed entirely with one adapter. The slow parts of adding,
 * loading and switching to an adapter (reading files, matching target patterns, building the
 * wrapped graph) and of saving (building the graphs of inactive adapters, writing files) run
 * outside the lock, which is taken only to read the model's state and to swap the result in
 * (checking again then that the state still allows it), so {@link #output} is not held up by
 * them. Calling {@code graph().fit} or {@code graph().output} directly bypasses the lock (DL4J
 * graphs are single-threaded): do that from one thread only.
 */
public final class PeftModel {

    /** Name of the adapter a model is wrapped with. */
    public static final String DEFAULT_ADAPTER = "default";

    private final Object lock = new Object();
    /**
     * Taken by saves, before {@link #lock}: two saves of this model run one after the other (a
     * save into a directory removes the staging directory a concurrent save there left), without
     * holding up {@link #output} meanwhile.
     */
    private final Object saveLock = new Object();
    private final ComputationGraphConfiguration baseConf;
    private final Map<String, String> projectionOf;
    private final BaseFingerprint baseFingerprint;
    private final Map<String, Map<String, INDArray>> savedModuleOriginals;
    private final Map<String, Slot> adapters = new LinkedHashMap<>();
    private ComputationGraph graph;
    private String active = DEFAULT_ADAPTER;
    private UnaryOperator<PeftConfig> loadConfigurer = UnaryOperator.identity();
    /** Counts changes of the adapters (added, removed, switched, optimizer state restored); under the lock. */
    private long changes;

    /** A stored adapter: its config, and (unless active) its parameters and optimizer state. */
    private static final class Slot {
        final PeftConfig config;
        INDArray params;
        INDArray updaterState;

        Slot(PeftConfig config) {
            this.config = config;
        }
    }

    PeftModel(ComputationGraph graph, ComputationGraphConfiguration baseConf, PeftConfig config,
              Map<String, String> projectionOf, BaseFingerprint baseFingerprint,
              Map<String, Map<String, INDArray>> savedModuleOriginals) {
        this.graph = graph;
        FastAdamUpdater.install(graph);
        this.baseConf = baseConf;
        this.projectionOf = Map.copyOf(projectionOf);
        this.baseFingerprint = baseFingerprint;
        this.savedModuleOriginals = savedModuleOriginals;
        this.adapters.put(DEFAULT_ADAPTER, new Slot(config));
    }

    /** The wrapped graph, to train and run with plain DL4J. */
    public ComputationGraph graph() {
        synchronized (lock) {
            return graph;
        }
    }

    /** The configuration of the active adapter. */
    public PeftConfig config() {
        synchronized (lock) {
            return adapters.get(active).config;
        }
    }

    /** The fingerprint of the base model (layer names, shapes, SHA-256 of the weights). */
    public BaseFingerprint baseFingerprint() {
        return baseFingerprint;
    }

    /** The base model's output layers that were split into a dense projection and a loss layer, and their projection vertex. */
    public Map<String, String> projectionVertices() {
        return projectionOf;
    }

    /**
     * Runs the active adapter on {@code inputs} under this model's lock (see the class comment).
     * Clears the labels and masks left on the graph by the last {@code fit} first: in DL4J
     * 1.0.0-M2.1 {@code ComputationGraph.batchSize()} prefers stale labels, and preprocessors of
     * per-time-step layers then reshape a batch of another size wrongly.
     */
    public INDArray[] output(INDArray... inputs) {
        synchronized (lock) {
            graph.clear();
            INDArray[] out = graph.output(false, inputs);
            INDArray[] detached = new INDArray[out.length];
            for (int i = 0; i < out.length; i++) {
                detached[i] = out[i].detach();
            }
            return detached;
        }
    }

    /** Parameters that train: the length of the graph's parameter vector. */
    public long trainableParameters() {
        return graph().numParams();
    }

    /** Every parameter: trainable ones plus the frozen base weights held outside the parameter vector. */
    public long allParameters() {
        ComputationGraph g = graph();
        long frozen = 0;
        for (Layer l : g.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenBaseLayer f) {
                frozen += f.frozenElements();
            } else if (c instanceof FrozenParamsLayer && ((FrozenParamsLayer) c).frozenParams() != null) {
                frozen += ((FrozenParamsLayer) c).frozenParams().length();
            }
        }
        return g.numParams() + frozen;
    }

    /**
     * Bytes held by the frozen base weights outside the parameter vector (float or quantized, as
     * held; merged copies not counted).
     */
    public long frozenBytes() {
        long bytes = 0;
        for (Layer l : graph().getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenBaseLayer f) {
                bytes += f.frozenBytes();
            } else if (c instanceof FrozenParamsLayer && ((FrozenParamsLayer) c).frozenParams() != null) {
                INDArray p = ((FrozenParamsLayer) c).frozenParams();
                bytes += p.length() * p.dataType().width();
            }
        }
        return bytes;
    }

    /** {@code "trainable params: N || all params: M || trainable%: P"}, as Hugging Face PEFT prints it. */
    public String trainableParametersSummary() {
        long t = trainableParameters();
        long all = allParameters();
        return String.format(Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f",
                t, all, all == 0 ? 0.0 : 100.0 * t / all);
    }

    /** Prints {@link #trainableParametersSummary()} to standard output. */
    public void printTrainableParameters() {
        System.out.println(trainableParametersSummary());
    }

    /** The layers carrying an adapter, by their vertex name in {@link #graph()}. */
    public Map<String, FrozenBaseLayer> adaptedLayers() {
        Map<String, FrozenBaseLayer> m = new LinkedHashMap<>();
        for (Layer l : graph().getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenBaseLayer f && f.hasAdapter()) {
                m.put(c.getLayerName(), f);
            }
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * The layers and vertices a tuner added or replaced ({@link TunerLayer}: bottleneck adapters,
     * prompts, prefix-aware attention), by vertex name in {@link #graph()}.
     */
    public Map<String, TunerLayer> tunerLayers() {
        Map<String, TunerLayer> m = new LinkedHashMap<>();
        for (Map.Entry<String, GraphVertex> e : graph().getConfiguration().getVertices().entrySet()) {
            GraphVertex v = e.getValue();
            Object c = v instanceof LayerVertex ? ((LayerVertex) v).getLayerConf().getLayer() : v;
            if (c instanceof TunerLayer) {
                m.put(e.getKey(), (TunerLayer) c);
            }
        }
        return Collections.unmodifiableMap(m);
    }

    private void refuseUnmergeable(String operation) {
        Map<String, TunerLayer> added = tunerLayers();
        if (!added.isEmpty()) {
            throw new IllegalStateException(operation + ": " + config().peftType() + " adds layers that no stock DL4J "
                    + "layer can absorb " + added.keySet() + ", so there is nothing to merge into the base weights; "
                    + "run graph() as it is, or use disableAdapter() for the base model's outputs. Tuners that "
                    + "merge: LoRA, IA3");
        }
    }

    /** Whether the adapters are merged into the frozen weights. */
    public boolean isMerged() {
        return adaptedLayers().values().stream().anyMatch(FrozenBaseLayer::isMerged);
    }

    /**
     * Folds each adapter into its layer's weight (each tuner's layer computes its merged weight,
     * e.g. LoRA's {@code W' = W + s·A·B}) so inference runs at the cost of the base model. The unmerged weight is kept, so {@link #unmerge()} restores it
     * exactly. Training while merged is refused with an {@link IllegalStateException}.
     *
     * @throws IllegalStateException if already merged
     */
    public void merge() {
        synchronized (lock) {
            refuseUnmergeable("merge()");
            if (isMerged()) {
                throw new IllegalStateException("adapters are already merged; call unmerge() first");
            }
            if (adaptersDisabled()) {
                throw new IllegalStateException("merge() inside a disableAdapter() scope would merge nothing; close the "
                        + "scope first");
            }
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                for (Map.Entry<String, FrozenBaseLayer> e : adaptedLayers().entrySet()) {
                    e.getValue().merge(graph.getLayer(e.getKey()).paramTable());
                }
            }
        }
    }

    /** Restores the frozen base weights exactly (they were kept while merged). No-op if not merged. */
    public void unmerge() {
        synchronized (lock) {
            for (FrozenBaseLayer f : adaptedLayers().values()) {
                f.unmerge();
            }
        }
    }

    /**
     * Switches every adapter off until the returned scope is closed: inside it, the graph computes
     * exactly the base model's outputs. Inside it, {@link #merge()} and switching to an adapter of
     * another layout are refused (either would switch adapters back on).
     *
     * <pre>{@code
     * var off = peft.disableAdapter();
     * try (off) {
     *     base = peft.graph().outputSingle(x);
     * }}</pre>
     * Declared before the {@code try}, the scope counts as referenced, so {@code javac -Xlint:try}
     * does not warn about a resource that the block never uses.
     *
     * @throws IllegalStateException if the adapters are merged (a merged weight already holds them;
     *     call {@link #unmerge()} first, or use {@link #reconstructBase()})
     */
    public AdapterScope disableAdapter() {
        synchronized (lock) {
            if (isMerged()) {
                throw new IllegalStateException("adapters are merged, so disabling them would not restore the base "
                        + "outputs; call unmerge() first");
            }
            Map<FrozenBaseLayer, Boolean> before = new java.util.IdentityHashMap<>();
            for (FrozenBaseLayer f : adaptedLayers().values()) {
                before.put(f, f.isAdapterEnabled());
                f.setAdapterEnabled(false);
            }
            Map<TunerLayer, Boolean> beforeAdded = new java.util.IdentityHashMap<>();
            for (TunerLayer t : tunerLayers().values()) {
                beforeAdded.put(t, t.isAdapterEnabled());
                t.setAdapterEnabled(false);
            }
            return () -> {
                synchronized (lock) {
                    before.forEach(FrozenBaseLayer::setAdapterEnabled);
                    beforeAdded.forEach(TunerLayer::setAdapterEnabled);
                }
            };
        }
    }

    /** Whether a {@link #disableAdapter()} scope is open: some adapter layer is switched off. */
    private boolean adaptersDisabled() {
        return adaptedLayers().values().stream().anyMatch(f -> !f.isAdapterEnabled())
                || tunerLayers().values().stream().anyMatch(t -> !t.isAdapterEnabled());
    }

    /** A scope that re-enables adapters when closed; closing twice is harmless. */
    @FunctionalInterface
    public interface AdapterScope extends AutoCloseable {
        @Override
        void close();
    }

    // ---------------------------------------------------------------- named adapters

    /** The adapters' names, the default first, in the order they were added. */
    public List<String> adapterNames() {
        synchronized (lock) {
            return List.copyOf(adapters.keySet());
        }
    }

    /** The active adapter's name. */
    public String activeAdapter() {
        synchronized (lock) {
            return active;
        }
    }

    /** The configuration of adapter {@code name}. */
    public PeftConfig adapterConfig(String name) {
        synchronized (lock) {
            return slot(name).config;
        }
    }

    private Slot slot(String name) {
        Objects.requireNonNull(name, "adapter name must not be null");
        Slot s = adapters.get(name);
        if (s == null) {
            throw new IllegalArgumentException("no adapter named \"" + name + "\"; adapters are " + adapters.keySet());
        }
        return s;
    }

    /**
     * Adds a fresh adapter (initialised as {@link Peft#wrap} would: LoRA's {@code B = 0}, trained
     * modules at their base values) without activating it.
     *
     * @throws IllegalArgumentException if the name is taken or not a valid directory name, or the
     *     config does not fit the base model
     */
    public void addAdapter(String name, PeftConfig config) {
        ComputationGraph live;
        synchronized (lock) {
            checkNewName(name);
            Objects.requireNonNull(config, "config must not be null");
            live = graphToPlanOver();
        }
        INDArray params = planOverBase(live, config).build().graph().params().dup();
        put(name, config, params);
    }

    /** Adds a slot under the lock, checking the name again: another thread may have taken it meanwhile. */
    private void put(String name, PeftConfig config, INDArray params) {
        synchronized (lock) {
            checkNewName(name);
            Slot s = new Slot(config);
            s.params = params;
            adapters.put(name, s);
            changes++;
        }
    }

    /**
     * Adds an adapter with given parameters, by vertex name and parameter key of a graph wrapped
     * with {@code config} (tensors missing from {@code params} keep their fresh initial values).
     * Used by adapter loading and by adapter arithmetic such as weighted combinations.
     */
    public void addAdapter(String name, PeftConfig config, Map<String, Map<String, INDArray>> params) {
        ComputationGraph live;
        synchronized (lock) {
            checkNewName(name);
            Objects.requireNonNull(config, "config must not be null");
            live = graphToPlanOver();
        }
        ComputationGraph g = planOverBase(live, config).build().graph();
        for (Map.Entry<String, Map<String, INDArray>> e : params.entrySet()) {
            Layer l = g.getLayer(e.getKey());
            for (Map.Entry<String, INDArray> p : e.getValue().entrySet()) {
                INDArray dst = l == null ? null : l.paramTable().get(p.getKey());
                if (dst == null || dst.length() != p.getValue().length()) {
                    throw new IllegalArgumentException("adapter \"" + name + "\": no parameter " + e.getKey() + "."
                            + p.getKey() + " of " + (p.getValue().length()) + " elements in a graph wrapped with " + config);
                }
                dst.assign(p.getValue().reshape(dst.shape()));
            }
        }
        put(name, config, g.params().dup());
    }

    private void checkNewName(String name) {
        AdapterNames.checkNew(name, adapters.keySet());
    }

    /** The parameters of adapter {@code name}, by vertex name and key (copies). */
    public Map<String, Map<String, INDArray>> adapterParameters(String name) {
        Held held;
        synchronized (lock) {
            Slot s = slot(name);
            if (name.equals(active)) {
                return copyTables(graph);
            }
            held = new Held(s.config, s.params, graphToPlanOver());
        }
        return copyTables(held.build());
    }

    private static Map<String, Map<String, INDArray>> copyTables(ComputationGraph g) {
        Map<String, Map<String, INDArray>> m = new LinkedHashMap<>();
        for (Layer l : g.getLayers()) {
            if (l.numParams() == 0) {
                continue;
            }
            Map<String, INDArray> t = new LinkedHashMap<>();
            l.paramTable().forEach((k, v) -> t.put(k, GraphRewriter.detachedCopy(v)));
            m.put(l.conf().getLayer().getLayerName(), t);
        }
        return m;
    }

    /**
     * Makes adapter {@code name} the active one. Same layout: copies its parameter vector and
     * optimizer state into the graph. Other layout: rebuilds the graph ({@link #graph()} changes).
     *
     * @throws IllegalStateException while adapters are merged
     */
    public void setAdapter(String name) {
        ComputationGraph built = null;
        PeftConfig builtFor = null;
        while (true) {
            ComputationGraph live;
            PeftConfig wanted;
            synchronized (lock) {
                Slot target = slot(name);
                if (!checkSwitch(name, target)) {
                    return;
                }
                if (sameLayout(target) || (built != null && builtFor == target.config)) {
                    swapTo(name, target, built);
                    return;
                }
                live = graphToPlanOver();
                wanted = target.config;
            }
            // Another layout: the new graph is planned and built without the lock; the state it
            // was planned for is checked again when it is swapped in.
            built = planOverBase(live, wanted).build().graph();
            builtFor = wanted;
        }
    }

    /**
     * Whether switching to {@code target} has anything to do (false when it is active), after the
     * checks of {@link #setAdapter}. Called under the lock.
     */
    private boolean checkSwitch(String name, Slot target) {
        if (name.equals(active)) {
            return false;
        }
        if (isMerged()) {
            throw new IllegalStateException("adapters are merged; call unmerge() before switching adapters");
        }
        if (!sameLayout(target) && adaptersDisabled()) {
            throw new IllegalStateException("adapter \"" + name + "\" has another layout, so switching to it builds "
                    + "new layers that a disableAdapter() scope does not cover; close the scope first");
        }
        return true;
    }

    private boolean sameLayout(Slot target) {
        return target.config.layoutSignature().equals(adapters.get(active).config.layoutSignature());
    }

    /**
     * Makes {@code target} active: its parameters into the live graph (same layout) or into
     * {@code built}, a graph wrapped with its config, which becomes the live graph. Called under
     * the lock.
     */
    private void swapTo(String name, Slot target, ComputationGraph built) {
        Slot current = adapters.get(active);
        current.params = graph.params().dup();
        INDArray state = graph.getUpdater(false) == null ? null : graph.getUpdater().getStateViewArray();
        current.updaterState = state == null ? null : state.dup();
        if (target.config.layoutSignature().equals(current.config.layoutSignature())) {
            graph.params().assign(target.params);
            for (FrozenBaseLayer f : adaptedLayers().values()) {
                f.adoptConfig(target.config);
            }
        } else {
            built.params().assign(target.params);
            graph = built;
            FastAdamUpdater.install(graph);
        }
        // A rebuilt graph has no updater until its first fit; create it when there is a state to restore.
        var updater = graph.getUpdater(target.updaterState != null);
        INDArray newState = updater == null ? null : updater.getStateViewArray();
        if (newState != null) {
            if (target.updaterState != null && target.updaterState.length() == newState.length()) {
                newState.assign(target.updaterState);
            } else {
                newState.assign(0);
            }
        }
        target.params = null;
        target.updaterState = null;
        active = name;
        changes++;
    }

    /**
     * Removes adapter {@code name}.
     *
     * @throws IllegalStateException if it is the active adapter (activate another one first)
     * @throws IllegalArgumentException if it is {@value #DEFAULT_ADAPTER}: {@link #saveAdapter}
     *     writes that one at the directory's root, where {@link Peft#load} looks for it
     */
    public void deleteAdapter(String name) {
        synchronized (lock) {
            slot(name);
            if (DEFAULT_ADAPTER.equals(name)) {
                throw new IllegalArgumentException("adapter \"" + DEFAULT_ADAPTER + "\" cannot be deleted: saveAdapter "
                        + "writes it at the directory's root, where Peft.load looks for it");
            }
            if (name.equals(active)) {
                throw new IllegalStateException("adapter \"" + name + "\" is active; setAdapter(...) to another one "
                        + "before deleting it");
            }
            adapters.remove(name);
            changes++;
        }
    }

    // ---------------------------------------------------------------- plain graphs

    /**
     * A plain graph of the base model's own (stock DL4J) layers with the active adapter folded
     * into its weights and every trained module's parameters copied: zero inference overhead.
     * This model is left as it was.
     *
     * @throws IllegalStateException if the tuner adds layers that have no stock equivalent
     *     (bottleneck adapters, prefix and prompt tuning); LoRA and IA3 merge
     */
    public ComputationGraph mergeAndUnload() {
        synchronized (lock) {
            refuseUnmergeable("mergeAndUnload()");
            if (config().trainsEverything()) {
                ComputationGraph out = new ComputationGraph(GraphRewriter.independentConf(baseConf));
                out.init();
                out.setParams(graph.params());
                return out;
            }
            return plainGraph(graph, true);
        }
    }

    /**
     * The live graph, for {@link #planOverBase} to plan over outside the lock. Called under the
     * lock.
     *
     * @throws IllegalStateException for full fine-tuning, which keeps no frozen copy of the base
     */
    private ComputationGraph graphToPlanOver() {
        if (config().trainsEverything()) {
            throw new IllegalStateException("full fine-tuning keeps no frozen copy of the base model");
        }
        return graph;
    }

    /**
     * The plan of a graph wrapped with {@code config} over the base model rebuilt from
     * {@code live}'s frozen layers, told which frozen layer holds each base weight now (so a 4-bit
     * base is carried over, not quantized again). Runs without the lock: it reads only what no
     * locked method changes in place (frozen weights, the kept originals of trained modules), so
     * a graph swapped out meanwhile gives the same base.
     */
    private GraphRewriter.Plan planOverBase(ComputationGraph live, PeftConfig config) {
        return GraphRewriter.plan(plainGraph(live, false), config, frozenLayersByBaseName(live));
    }

    /** Every frozen dense layer of {@code live}, adapted or not, by its base-model name. */
    private static Map<String, FrozenBaseLayer> frozenLayersByBaseName(ComputationGraph live) {
        Map<String, FrozenBaseLayer> m = new HashMap<>();
        for (Layer l : live.getLayers()) {
            if (l.conf().getLayer() instanceof FrozenBaseLayer f) {
                m.put(f.baseLayerName(), f);
            }
        }
        return m;
    }

    /** The base model as it was wrapped (adapters and training ignored), rebuilt from the frozen weights. */
    public ComputationGraph reconstructBase() {
        ComputationGraph live;
        synchronized (lock) {
            live = graphToPlanOver();
        }
        return plainGraph(live, false);
    }

    /**
     * A plain graph of the base model's stock layers with {@code live}'s frozen weights, merged
     * with the active adapter when {@code merged} (then under the lock: it reads trained values).
     */
    private ComputationGraph plainGraph(ComputationGraph live, boolean merged) {
        ComputationGraph out = new ComputationGraph(GraphRewriter.independentConf(baseConf));
        out.init();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, GraphVertex> e : baseConf.getVertices().entrySet()) {
                if (!(e.getValue() instanceof LayerVertex)) {
                    continue;
                }
                String name = e.getKey();
                Layer target = out.getLayer(name);
                Layer wrapped = live.getLayer(projectionOf.getOrDefault(name, name));
                org.deeplearning4j.nn.conf.layers.Layer c = wrapped.conf().getLayer();
                if (c instanceof FrozenBaseLayer f) {
                    Map<String, INDArray> params = wrapped.paramTable();
                    INDArray w = f.frozenWeight();
                    INDArray b = merged ? f.biasInUse(params) : f.frozenBias();
                    if (merged && f.hasAdapter() && f.isAdapterEnabled()) {
                        w = f.mergedWeight(w, params);
                        b = b == null ? null : f.mergedBias(b.reshape(b.length()), params);
                    }
                    target.getParam("W").assign(f.stockWeight(w));
                    if (b != null) {
                        target.getParam("b").assign(b.reshape(target.getParam("b").shape()));
                    }
                } else if (c instanceof FrozenParamsLayer) {
                    INDArray p = ((FrozenParamsLayer) c).frozenParams();
                    if (p != null) {
                        target.params().assign(p.reshape(target.params().shape()));
                    }
                } else if (!merged && savedModuleOriginals.containsKey(name)) {
                    savedModuleOriginals.get(name).forEach((k, v) -> target.getParam(k).assign(v));
                } else if (target.numParams() > 0) {
                    GraphRewriter.copyParams(wrapped, target);
                }
            }
        }
        return out;
    }

    // ---------------------------------------------------------------- files

    /**
     * Writes every adapter in Hugging Face PEFT's layout: the default adapter's
     * {@code adapter_config.json} and {@code adapter_model.safetensors} in {@code dir}, every other
     * adapter in {@code dir/<name>/}. The save is atomic for the directory as a whole: all files
     * are written into a staging directory inside {@code dir} and switched over with one rename
     * (see {@code docs/adapter-files.md}), so a crash at any moment leaves either the previous
     * complete set of adapters or the new one for {@link Peft#load}, and the next save removes what
     * a crashed one left behind. peft4j's records sit beside each adapter's two files in
     * {@code peft4j.json} (PEFT's config holds PEFT's keys only): the default adapter's lists the
     * adapters of this save with the SHA-256 of their weights, and every adapter's records the
     * SHA-256 of its own weights and config files, so {@link Peft#load} loads only the adapters of
     * this save (sub-directories of adapters
     * deleted since an earlier save into {@code dir} stay on disk but are not loaded) and refuses
     * files mixed by other means. A symbolic link where an adapter's sub-directory goes is refused
     * before anything changes; one save at a time per directory.
     *
     * @throws UnsupportedOperationException for full fine-tuning and transfer learning (use ModelSerializer)
     * @throws java.nio.file.FileSystemException if a link or a file is where an adapter's
     *     sub-directory goes; {@code dir} is then as it was
     */
    public void saveAdapter(Path dir) throws IOException {
        save(dir, false, null);
    }

    /**
     * As {@link #saveAdapter(Path)}, in the module paths of the PyTorch model {@code names} maps to
     * this graph: tensors {@code base_model.model.<module path>.lora_A.weight}, {@code target_modules}
     * the shortest path suffixes that choose exactly the adapted modules (LoRA on every query and
     * value projection of BERT: {@code ["query", "value"]}), trained modules under their module path
     * with PyTorch's parameter names, so that Hugging Face PEFT loads the files onto that model.
     * {@link Peft#load(ComputationGraph, Path, ModuleNames)} reads them back.
     *
     * @throws IllegalArgumentException if {@code names} has no module path for a layer an adapter
     *     adapts or trains (nothing is written then)
     */
    public void saveAdapter(Path dir, ModuleNames names) throws IOException {
        save(dir, false, Objects.requireNonNull(names, "names must not be null"));
    }

    /**
     * Saves every adapter into {@code dir} in one {@link DirectoryTransaction}, with the training
     * state when {@code checkpoint}, in {@code names}' module paths when non-null. The graphs of
     * inactive adapters are planned, built and written without the lock; the active adapter (which
     * lives in the graph that serves) and the training state are written under it, after checking
     * that no adapter changed meanwhile.
     */
    private void save(Path dir, boolean checkpoint, ModuleNames names) throws IOException {
        Objects.requireNonNull(dir, "dir must not be null");
        synchronized (saveLock) {
            saveOnce(dir, checkpoint, names);
        }
    }

    private void saveOnce(Path dir, boolean checkpoint, ModuleNames names) throws IOException {
        while (true) {
            long seen;
            Map<String, Held> inactive = new LinkedHashMap<>();
            synchronized (lock) {
                seen = changes;
                for (Map.Entry<String, Slot> e : adapters.entrySet()) {
                    if (!e.getKey().equals(active)) {
                        inactive.put(e.getKey(), new Held(e.getValue().config, e.getValue().params, graphToPlanOver()));
                    }
                }
            }
            try (DirectoryTransaction tx = DirectoryTransaction.begin(dir)) {
                Path staging = tx.staging();
                Map<String, String> others = new TreeMap<>();
                ComputationGraph defaultGraph = null;
                for (Map.Entry<String, Held> e : inactive.entrySet()) {
                    ComputationGraph g = e.getValue().build(); // one at a time: each holds a copy of the base
                    if (e.getKey().equals(DEFAULT_ADAPTER)) {
                        defaultGraph = g; // written last: it lists the others' digests
                    } else {
                        others.put(e.getKey(), saveOne(e.getValue().config, g, staging.resolve(e.getKey()), null, null,
                                names));
                    }
                }
                String trainingState = null;
                synchronized (lock) {
                    if (changes != seen) {
                        continue; // an adapter was added, removed or switched meanwhile: save the new state
                    }
                    if (checkpoint) {
                        Map<String, INDArray> states = new TreeMap<>();
                        adapters.forEach((name, slot) -> {
                            if (!name.equals(active) && slot.updaterState != null) {
                                states.put(name, slot.updaterState);
                            }
                        });
                        trainingState = TrainingStateFiles.save(graph, active, states, staging);
                    }
                    PeftConfig activeConfig = adapters.get(active).config;
                    if (active.equals(DEFAULT_ADAPTER)) {
                        saveOne(activeConfig, graph, staging, others, trainingState, names);
                    } else {
                        others.put(active, saveOne(activeConfig, graph, staging.resolve(active), null, null, names));
                    }
                }
                if (defaultGraph != null) {
                    saveOne(inactive.get(DEFAULT_ADAPTER).config, defaultGraph, staging, others, trainingState, names);
                }
                tx.commit();
                return;
            }
        }
    }

    /** An inactive adapter as read under the lock, to build a graph holding it without the lock. */
    private final class Held {
        final PeftConfig config;
        final INDArray params;
        final ComputationGraph live;

        Held(PeftConfig config, INDArray params, ComputationGraph live) {
            this.config = config;
            this.params = params;
            this.live = live;
        }

        /** A graph wrapped with the adapter's config holding its parameters. */
        ComputationGraph build() {
            ComputationGraph g = planOverBase(live, config).build().graph();
            g.params().assign(params);
            return g;
        }
    }

    /**
     * Writes the adapter of config {@code c} held by {@code g} into {@code target}, in
     * {@code names}' module paths when non-null ({@link AdapterWriter#prepare}: every file is
     * computed before the first is written); returns its weights' SHA-256.
     */
    private String saveOne(PeftConfig c, ComputationGraph g, Path target, Map<String, String> savedWith,
                           String trainingState, ModuleNames names) throws IOException {
        List<String> targets = new ArrayList<>();
        for (Layer l : g.getLayers()) {
            if (l.conf().getLayer() instanceof FrozenBaseLayer f && f.hasAdapter()) {
                targets.add(f.baseLayerName());
            }
        }
        return AdapterWriter.save(c, baseFingerprint, g, target, targets, baseConf.getVertices().keySet(), savedWith,
                trainingState, names);
    }

    /**
     * An inactive adapter's graph as {@link Held#build} makes it, or the live graph for the active
     * one. Called under the lock; for an inactive adapter this plans under it, so use it only
     * where the model is not serving yet ({@link #resume}).
     */
    private ComputationGraph graphHolding(String name) {
        Slot s = adapters.get(name);
        if (name.equals(active)) {
            return graph;
        }
        return new Held(s.config, s.params, graphToPlanOver()).build();
    }

    /**
     * Loads the adapter saved in {@code dir} (the files {@link #saveAdapter} writes for one adapter)
     * as adapter {@code name}, without activating it. Everything is validated first; on any
     * error this model is unchanged. The files are read and the adapter's graph is planned without
     * the model's lock (see the class comment).
     *
     * @throws AdapterFormatException if a file is missing or malformed
     * @throws IncompatibleAdapterException if the adapter does not fit the base model (another base,
     *     a config whose targets the base lacks, tensors of other names or shapes), naming
     *     {@code dir} and the file, as {@link Peft#load} does
     * @throws IllegalArgumentException if {@code name} is taken or not a valid adapter name
     */
    public void loadAdapter(Path dir, String name) throws IOException {
        loadAdapter(dir, name, false);
    }

    /** As {@link #loadAdapter(Path, String)}; {@code ignoreFingerprint} accepts an adapter trained on other base weights. */
    public void loadAdapter(Path dir, String name, boolean ignoreFingerprint) throws IOException {
        loadAdapter(dir, name, ignoreFingerprint, null, null);
    }

    /**
     * As {@link #loadAdapter(Path, String)} for an adapter saved in the module paths of the PyTorch
     * model {@code names} maps to this graph (see {@link Peft#load(ComputationGraph, Path, ModuleNames)}).
     */
    public void loadAdapter(Path dir, String name, ModuleNames names) throws IOException {
        loadAdapter(dir, name, false, null, Objects.requireNonNull(names, "names must not be null"));
    }

    /**
     * As {@link #loadAdapter(Path, String, boolean)}; with {@code expectedDigest} non-null the
     * weights file must have that SHA-256 (the digest the directory's default adapter recorded for
     * it, see {@link #saveAdapter}); with {@code names} non-null the files are in module paths.
     */
    void loadAdapter(Path dir, String name, boolean ignoreFingerprint, String expectedDigest, ModuleNames names)
            throws IOException {
        Objects.requireNonNull(dir, "dir must not be null");
        ComputationGraph live;
        UnaryOperator<PeftConfig> configure;
        synchronized (lock) {
            checkNewName(name);
            live = graphToPlanOver();
            configure = loadConfigurer;
        }
        List<String> layerNames = new ArrayList<>();
        baseConf.getVertices().forEach((v, conf) -> {
            if (conf instanceof LayerVertex) {
                layerNames.add(v);
            }
        });
        AdapterReader.Loaded read = AdapterReader.read(dir, baseFingerprint, ignoreFingerprint, layerNames, names);
        if (expectedDigest != null && !expectedDigest.equals(read.weightsDigest())) {
            throw new AdapterFormatException((read.records().source() == null
                    ? dir.resolve(AdapterFiles.SIDE_FILE) + " is missing or rewritten, so nothing records"
                    : read.records().source() + " records")
                    + (read.weightsDigest() == null ? " no SHA-256" : " SHA-256 " + read.weightsDigest())
                    + " for its weights, but " + expectedDigest + " was recorded for them: the directory mixes "
                    + "files of different saves, for example copied together by hand; save the adapters again");
        }
        AdapterReader.Loaded l = read.withConfig(configure.apply(read.config()));
        ComputationGraph base = plainGraph(live, false);
        GraphRewriter.Plan plan;
        try {
            plan = GraphRewriter.plan(base, l.config(), frozenLayersByBaseName(live));
        } catch (IllegalArgumentException e) {
            throw AdapterReader.doesNotFit(dir, l, baseConf.getVertices().keySet(), e);
        }
        AdapterReader.checkSize(plan, l, base.numParams(), dir);
        ComputationGraph g = plan.build().graph();
        AdapterReader.assign(l, g, dir);
        put(name, l.config(), g.params().dup());
    }

    /** How configs read from adapter files are turned into the configs to wrap with (see {@link Peft#load}). */
    void setLoadConfigurer(UnaryOperator<PeftConfig> configure) {
        synchronized (lock) {
            this.loadConfigurer = configure;
        }
    }

    /**
     * Saves the adapters ({@link #saveAdapter}) plus what resuming training needs: the active
     * adapter's optimizer state, the optimizer state every other adapter keeps for when it is
     * active again, and the iteration and epoch counters ({@code training_state.safetensors}), in
     * the same atomic switch-over as the adapters. The default adapter's {@code peft4j.json} records
     * the state's SHA-256: {@link #resume} refuses a state that is not the one saved with the
     * adapters (adapters saved over it by {@link #saveAdapter} later, files copied together by hand).
     */
    public void saveCheckpoint(Path dir) throws IOException {
        save(dir, true, null);
    }

    /**
     * Rebuilds a model from {@link #saveCheckpoint} output so that training continues exactly as
     * an uninterrupted run would, on whichever adapters it goes on to train (for a float64
     * network, from adapter weights rounded to float32, the dtype of the files).
     */
    public static PeftModel resume(ComputationGraph base, Path dir) throws IOException {
        return resume(base, dir, UnaryOperator.identity());
    }

    /**
     * As {@link #resume(ComputationGraph, Path)}, with {@code configure} turning each config read
     * from the files into the one to wrap with, as in
     * {@link Peft#load(ComputationGraph, Path, UnaryOperator, boolean)}: for a
     * QLoRA checkpoint, the same {@code c -> QLoraConfig.of((LoraConfig) c, spec)} the training used.
     *
     * @throws IncompatibleAdapterException if an optimizer state does not have the length the
     *     adapter's optimizer needs, or the configs hold the frozen base otherwise than the saved
     *     ones did (a QLoRA checkpoint resumed without its hook would train over a float base)
     */
    public static PeftModel resume(ComputationGraph base, Path dir, UnaryOperator<PeftConfig> configure)
            throws IOException {
        PeftModel m = Peft.load(base, dir, configure, false);
        for (String name : m.adapterNames()) {
            AdapterReader.checkResumedBaseForm(name.equals(DEFAULT_ADAPTER) ? dir : dir.resolve(name), m.slot(name).config);
        }
        m.applyTrainingState(TrainingStateFiles.read(dir, DEFAULT_ADAPTER, m.adapterNames().size()));
        return m;
    }

    /**
     * Makes the checkpoint's active adapter active and gives it its optimizer state and counters,
     * and gives every inactive adapter the optimizer state it resumes with; every state is checked
     * against the size of its adapter's optimizer first.
     */
    private void applyTrainingState(TrainingStateFiles.TrainingState state) {
        synchronized (lock) {
            state.checkAdapters(adapterNames());
            setAdapter(state.activeAdapter());
            SafeTensor active = state.activeState();
            if (active != null) {
                INDArray view = graph.getUpdater(true).getStateViewArray();
                if (view == null || view.length() != active.elementCount()) {
                    throw new IncompatibleAdapterException(state.file() + ": optimizer state has " + active.elementCount()
                            + " values, the model's optimizer needs " + (view == null ? 0 : view.length()));
                }
                view.assign(active.toINDArray(view.dataType()).reshape(view.shape()));
            }
            graph.getConfiguration().setIterationCount(state.iterationCount());
            graph.getConfiguration().setEpochCount(state.epochCount());
            for (Map.Entry<String, SafeTensor> e : state.inactiveStates().entrySet()) {
                restoreInactiveState(e.getKey(), e.getValue(), state.file());
            }
        }
    }

    /** Gives inactive adapter {@code name} the optimizer state it resumes with, checked against its optimizer's size. */
    private void restoreInactiveState(String name, SafeTensor state, Path file) {
        synchronized (lock) {
            Slot s = slot(name);
            ComputationGraph g = graphHolding(name);
            INDArray view = g.getUpdater(true).getStateViewArray();
            if (view == null || view.length() != state.elementCount()) {
                throw new IncompatibleAdapterException(file + ": the optimizer state of adapter \"" + name + "\" has "
                        + state.elementCount() + " values, its optimizer needs " + (view == null ? 0 : view.length()));
            }
            s.updaterState = state.toINDArray(view.dataType()).reshape(view.shape());
            changes++;
        }
    }

    @Override
    public String toString() {
        return "PeftModel(active=" + activeAdapter() + ", adapters=" + adapterNames() + ", " + config() + ", "
                + trainableParametersSummary() + ")";
    }
}
