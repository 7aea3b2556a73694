package org.peft4j.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.internal.GraphRewriter;

/**
 * A base model wrapped for fine-tuning: {@link #graph()} is a real DL4J {@link ComputationGraph}
 * ({@code fit}, {@code output}, listeners, {@code Evaluation}, early stopping all work unchanged)
 * whose parameter vector, gradient and optimizer state hold the trainable parameters only.
 *
 * <p>Adapters can be merged into the frozen weights ({@link #merge()}) for inference and unmerged
 * again exactly ({@link #unmerge()}: the unmerged base weight is kept, not recomputed), switched
 * off ({@link #disableAdapter()}), or folded into a plain graph of stock DL4J layers
 * ({@link #mergeAndUnload()}).
 *
 * <p>Thread-safety: not thread-safe. Merging and enabling change the layers the graph runs;
 * do not call them while another thread uses {@link #graph()}.
 */
public final class PeftModel {

    private final ComputationGraph graph;
    private final ComputationGraphConfiguration baseConf;
    private final PeftConfig config;
    private final Map<String, String> projectionOf;

    PeftModel(ComputationGraph graph, ComputationGraphConfiguration baseConf, PeftConfig config,
              Map<String, String> projectionOf) {
        this.graph = graph;
        this.baseConf = baseConf;
        this.config = config;
        this.projectionOf = Map.copyOf(projectionOf);
    }

    /** The wrapped graph, to train and run with plain DL4J. */
    public ComputationGraph graph() {
        return graph;
    }

    /** The configuration this model was wrapped with. */
    public PeftConfig config() {
        return config;
    }

    /** Parameters that train: the length of the graph's parameter vector. */
    public long trainableParameters() {
        return graph.numParams();
    }

    /** Every parameter: trainable ones plus the frozen base weights held outside the parameter vector. */
    public long allParameters() {
        long frozen = 0;
        for (Layer l : graph.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenDenseLayer) {
                FrozenDenseLayer f = (FrozenDenseLayer) c;
                frozen += f.frozenWeight().length();
                if (f.frozenBias() != null && !f.isTrainableBias()) {
                    frozen += f.frozenBias().length();
                }
            } else if (c instanceof FrozenParamsLayer && ((FrozenParamsLayer) c).frozenParams() != null) {
                frozen += ((FrozenParamsLayer) c).frozenParams().length();
            }
        }
        return graph.numParams() + frozen;
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
    public Map<String, FrozenDenseLayer> adaptedLayers() {
        Map<String, FrozenDenseLayer> m = new LinkedHashMap<>();
        for (Layer l : graph.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenDenseLayer && ((FrozenDenseLayer) c).hasAdapter()) {
                m.put(c.getLayerName(), (FrozenDenseLayer) c);
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
        for (Map.Entry<String, GraphVertex> e : graph.getConfiguration().getVertices().entrySet()) {
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
            throw new IllegalStateException(operation + ": " + config.peftType() + " adds layers that no stock DL4J "
                    + "layer can absorb " + added.keySet() + ", so there is nothing to merge into the base weights; "
                    + "run graph() as it is, or use disableAdapter() for the base model's outputs. Tuners that "
                    + "merge: LoRA, IA3");
        }
    }

    /** Whether the adapters are merged into the frozen weights. */
    public boolean isMerged() {
        return adaptedLayers().values().stream().anyMatch(FrozenDenseLayer::isMerged);
    }

    /**
     * Folds each adapter into its layer's weight ({@code W' = W + ΔW}) so inference runs at the
     * cost of the base model. The unmerged weight is kept, so {@link #unmerge()} restores it
     * exactly. Training while merged is refused with an {@link IllegalStateException}.
     *
     * @throws IllegalStateException if already merged, or if the tuner adds layers (bottleneck
     *     adapters, prefix and prompt tuning), which cannot be merged
     */
    public void merge() {
        refuseUnmergeable("merge()");
        if (isMerged()) {
            throw new IllegalStateException("adapters are already merged; call unmerge() first");
        }
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, FrozenDenseLayer> e : adaptedLayers().entrySet()) {
                FrozenDenseLayer f = e.getValue();
                if (!f.isAdapterEnabled()) {
                    continue;
                }
                Map<String, INDArray> params = graph.getLayer(e.getKey()).paramTable();
                INDArray delta = f.deltaWeight(params);
                INDArray bias = biasInUse(f, params);
                INDArray deltaBias = bias == null ? null : f.deltaBias(params, bias);
                f.setMergedBias(deltaBias == null ? null : bias.reshape(bias.length()).add(
                        deltaBias.reshape(bias.length()).castTo(bias.dataType())));
                f.setMergedWeight(f.frozenWeight().add(delta.castTo(f.frozenWeight().dataType())));
            }
        }
    }

    /** The bias forward uses when unmerged: the trainable one when it trains, else the frozen one (or null). */
    private static INDArray biasInUse(FrozenDenseLayer f, Map<String, INDArray> params) {
        return f.isTrainableBias() ? params.get(FrozenDenseLayer.BIAS_KEY) : f.frozenBias();
    }

    /** Restores the frozen base weights exactly (they were kept while merged). No-op if not merged. */
    public void unmerge() {
        for (FrozenDenseLayer f : adaptedLayers().values()) {
            f.setMergedWeight(null);
            f.setMergedBias(null);
        }
    }

    /**
     * Switches every adapter off until the returned scope is closed: inside it, the graph computes
     * exactly the base model's outputs.
     *
     * <pre>{@code try (var off = peft.disableAdapter()) { base = peft.graph().outputSingle(x); }}</pre>
     */
    public AdapterScope disableAdapter() {
        Map<FrozenDenseLayer, Boolean> before = new LinkedHashMap<>();
        for (FrozenDenseLayer f : adaptedLayers().values()) {
            before.put(f, f.isAdapterEnabled());
            f.setAdapterEnabled(false);
        }
        Map<TunerLayer, Boolean> beforeAdded = new LinkedHashMap<>();
        for (TunerLayer t : tunerLayers().values()) {
            beforeAdded.put(t, t.isAdapterEnabled());
            t.setAdapterEnabled(false);
        }
        return () -> {
            before.forEach(FrozenDenseLayer::setAdapterEnabled);
            beforeAdded.forEach(TunerLayer::setAdapterEnabled);
        };
    }

    /** A scope that re-enables adapters when closed; closing twice is harmless. */
    @FunctionalInterface
    public interface AdapterScope extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * A plain graph of the base model's own (stock DL4J) layers with every adapter folded into its
     * weights and every trained module's parameters copied: zero inference overhead. This model
     * is left as it was.
     *
     * @throws IllegalStateException if the tuner adds layers that have no stock equivalent
     *     (bottleneck adapters, prefix and prompt tuning); LoRA and IA3 merge
     */
    public ComputationGraph mergeAndUnload() {
        refuseUnmergeable("mergeAndUnload()");
        ComputationGraph out = new ComputationGraph(baseConf.clone());
        out.init();
        if (config.trainsEverything()) {
            out.setParams(graph.params());
            return out;
        }
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (Map.Entry<String, GraphVertex> e : baseConf.getVertices().entrySet()) {
                if (!(e.getValue() instanceof LayerVertex)) {
                    continue;
                }
                String name = e.getKey();
                Layer target = out.getLayer(name);
                String wrappedName = projectionOf.getOrDefault(name, name);
                Layer wrapped = graph.getLayer(wrappedName);
                org.deeplearning4j.nn.conf.layers.Layer c = wrapped.conf().getLayer();
                if (c instanceof FrozenDenseLayer) {
                    FrozenDenseLayer f = (FrozenDenseLayer) c;
                    INDArray w = f.frozenWeight();
                    INDArray b = biasInUse(f, wrapped.paramTable());
                    if (f.hasAdapter() && f.isAdapterEnabled()) {
                        w = w.add(f.deltaWeight(wrapped.paramTable()).castTo(w.dataType()));
                        INDArray db = b == null ? null : f.deltaBias(wrapped.paramTable(), b);
                        if (db != null) {
                            b = b.reshape(b.length()).add(db.reshape(b.length()).castTo(b.dataType()));
                        }
                    }
                    target.getParam("W").assign(w);
                    if (b != null) {
                        target.getParam("b").assign(b.reshape(target.getParam("b").shape()));
                    }
                } else if (c instanceof FrozenParamsLayer) {
                    INDArray p = ((FrozenParamsLayer) c).frozenParams();
                    if (p != null) {
                        target.params().assign(p.reshape(target.params().shape()));
                    }
                } else if (target.numParams() > 0) {
                    GraphRewriter.copyParams(wrapped, target);
                }
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return "PeftModel(" + Objects.toString(config) + ", " + trainableParametersSummary() + ")";
    }
}
