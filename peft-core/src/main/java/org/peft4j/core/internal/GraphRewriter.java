package org.peft4j.core.internal;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.InputPreProcessor;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.FrozenVertex;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnLossLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.conf.preprocessor.ComposableInputPreProcessor;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToRnnPreProcessor;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.updater.graph.ComputationGraphUpdater;
import org.nd4j.linalg.activations.impl.ActivationIdentity;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.peft4j.core.BiasMode;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenConvolutionLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.FrozenParamsLayer;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.blocks.Dense;
import org.peft4j.core.blocks.ResidualAdd;
import org.peft4j.core.blocks.internal.GatedResidualAdd;
import org.peft4j.core.spi.Vertices;

/**
 * Builds the wrapped graph of {@link org.peft4j.core.Peft#wrap}: validates the config against
 * the base graph, then writes a new configuration in which
 * <ul>
 *   <li>targeted dense-type layers become the tuner's {@link FrozenDenseLayer} subclass;</li>
 *   <li>other dense-type layers become plain {@link FrozenDenseLayer}s (bias trainable under
 *       {@link BiasMode#ALL});</li>
 *   <li>other layers with parameters become {@link FrozenParamsLayer}s;</li>
 *   <li>{@code modulesToSave} layers stay as they are, with all their parameters trainable;</li>
 *   <li>vertices upstream of everything trainable are wrapped so DL4J skips them in backprop;</li>
 *   <li>the tuner's {@link GraphEdit}s insert new layers after or before vertices, or replace
 *       vertices; new layers train in full, and the vertices between them and the loss pass
 *       epsilons;</li>
 *   <li>a targeted or frozen output layer is split into a dense projection
 *       ({@code <name>-dense}) and a parameter-free loss layer that keeps the name {@code <name>},
 *       with the original activation and loss function.</li>
 * </ul>
 * The base graph is only read. Base weights are copied, never shared.
 */
public final class GraphRewriter {

    /** Suffix of the dense projection vertex of a split output layer. */
    public static final String DENSE_SUFFIX = "-dense";

    private GraphRewriter() {
    }

    /** The rewritten graph and how its vertices relate to the base graph's layers. */
    public record Result(ComputationGraph graph, Map<String, String> projectionVertexOf) {
    }

    /** Whether a layer configuration is dense-type: what LoRA and freezing-as-dense support. */
    public static boolean isDenseType(Layer layer) {
        if (layer == null) {
            return false;
        }
        Class<?> c = layer.getClass();
        if (c == DenseLayer.class || c == Dense.class) {
            return !((DenseLayer) layer).hasLayerNorm();
        }
        return c == OutputLayer.class || c == RnnOutputLayer.class;
    }

    /** Human-readable list of the graph's layers, for error messages ({@link Vertices#describeLayers}). */
    public static String describeLayers(ComputationGraphConfiguration conf) {
        return Vertices.describeLayers(conf);
    }

    static Layer layerOf(GraphVertex v) {
        return v instanceof LayerVertex ? ((LayerVertex) v).getLayerConf().getLayer() : null;
    }

    /** Rewrites {@code base} for {@code config}; throws IllegalArgumentException (nothing changed) on a mismatch. */
    public static Result rewrite(ComputationGraph base, PeftConfig config) {
        return plan(base, config).build();
    }

    /**
     * The wrapped graph's configuration, checked and complete, before any of its parameters is
     * allocated: {@link Plan#numParams()} says how many {@link Plan#build()} will allocate, so a
     * caller can refuse a config read from a file before it asks for more memory than the file
     * accounts for.
     */
    public record Plan(ComputationGraphConfiguration conf, Map<String, String> projectionVertexOf,
                       ComputationGraph base, Set<String> saved) {

        /** Parameters the built graph holds in its parameter vector (as {@code ComputationGraph.init()} sizes it). */
        public long numParams() {
            long n = 0;
            for (GraphVertex v : conf.getVertices().values()) {
                n = Math.addExact(n, v.numParams(true));
            }
            return n;
        }

        /** Allocates and initializes the graph; modules to save get copies of the base's parameters. */
        public Result build() {
            ComputationGraph g = new ComputationGraph(conf);
            g.init();
            for (String s : saved) {
                copyParams(base.getLayer(s), g.getLayer(s));
            }
            return new Result(g, projectionVertexOf);
        }
    }

    /** As {@link #rewrite}, stopping before the graph is allocated. */
    public static Plan plan(ComputationGraph base, PeftConfig config) {
        return plan(base, config, Map.of());
    }

    /**
     * As {@link #plan(ComputationGraph, PeftConfig)} for a {@code base} rebuilt from a wrapped model:
     * {@code current} maps base layer names to the frozen layers that hold them there, handed to the
     * config as {@link Target#current()}.
     */
    public static Plan plan(ComputationGraph base, PeftConfig config, Map<String, FrozenBaseLayer> current) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        refuseWrapped(conf);
        TargetSelection.Selected selected = TargetSelection.select(base, config);
        Topology topo = applyEdits(conf, config.graphEdits(base), selected.targets(), selected.saved());
        Training training = Training.of(conf, config.bias(), selected, topo);
        Rewrite rewrite = new Rewrite(base, config, current, selected, topo, training);
        for (String name : topo.inputs.keySet()) {
            rewrite.vertex(name);
        }
        return new Plan(rewrite.configuration(), rewrite.projectionOf, base, selected.saved());
    }

    /** Step 1: a graph that already holds frozen or tuner layers is refused (wrap the original base). */
    private static void refuseWrapped(ComputationGraphConfiguration conf) {
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            Layer l = layerOf(e.getValue());
            if (l instanceof FrozenBaseLayer || l instanceof FrozenParamsLayer || l instanceof TunerLayer
                    || e.getValue() instanceof TunerLayer) {
                String type = (l == null ? e.getValue() : l).getClass().getSimpleName();
                throw new IllegalArgumentException("the graph is already wrapped (layer \"" + e.getKey() + "\" is a "
                        + type + "); wrap the original base graph, or call mergeAndUnload() "
                        + "on the PeftModel to get a plain graph first");
            }
        }
    }

    /**
     * Step 2 (after target selection and the tuner's edits): what trains, and which vertices must
     * pass an epsilon down.
     *
     * @param trainable vertices with trainable parameters: targets, saved modules, new layers with
     *     parameters, frozen layers whose bias trains
     * @param trainableBias for each frozen dense-type layer, whether its bias trains
     * @param upstreamTrains for each vertex, whether anything strictly upstream of it trains
     * @param inputGradients for each edit and frozen or adapted layer, whether it passes an epsilon
     * @param residualInputs for each {@link ResidualAdd} that passes an epsilon to one input only,
     *     which input gets one
     */
    private record Training(Set<String> trainable, Map<String, Boolean> trainableBias,
                            Map<String, Boolean> upstreamTrains, Map<String, Boolean> inputGradients,
                            Map<String, boolean[]> residualInputs) {

        static Training of(ComputationGraphConfiguration conf, BiasMode biasMode, TargetSelection.Selected selected,
                           Topology topo) {
            Map<String, GraphVertex> vertices = conf.getVertices();
            Set<String> trainable = new HashSet<>(selected.targets());
            trainable.addAll(selected.saved());
            for (Map.Entry<String, GraphEdit> e : topo.edits.entrySet()) {
                if (editParams(e.getValue()) > 0) {
                    trainable.add(e.getKey());
                }
            }
            Map<String, Boolean> trainableBias = new HashMap<>();
            for (Map.Entry<String, GraphVertex> e : vertices.entrySet()) {
                Layer l = layerOf(e.getValue());
                boolean frozenBase = isDenseType(l) || selected.targets().contains(e.getKey());
                if (frozenBase && !selected.saved().contains(e.getKey()) && !topo.edits.containsKey(e.getKey())) {
                    boolean tb = hasBias(l) && (biasMode == BiasMode.ALL
                            || (biasMode == BiasMode.LORA_ONLY && selected.targets().contains(e.getKey())));
                    trainableBias.put(e.getKey(), tb);
                    if (tb) {
                        trainable.add(e.getKey());
                    }
                }
            }
            Map<String, Boolean> upstreamTrains = GraphRewriter.upstreamTrains(topo.inputs, trainable);
            Set<String> outputs = new HashSet<>(conf.getNetworkOutputs());
            Map<String, boolean[]> residualInputs = new HashMap<>();
            Map<String, Boolean> inputGradients = GraphRewriter.inputGradients(topo, conf, vertices, selected, trainable,
                    upstreamTrains, outputs, residualInputs);
            return new Training(trainable, trainableBias, upstreamTrains, inputGradients, residualInputs);
        }
    }

    /** Step 3: the new vertex (or vertices) for each vertex of the edited topology, in order. */
    private static final class Rewrite {
        final ComputationGraph base;
        final PeftConfig config;
        final Map<String, FrozenBaseLayer> current;
        final TargetSelection.Selected selected;
        final Topology topo;
        final Training training;
        final Map<String, GraphVertex> vertices;
        final Set<String> outputs;
        final Layer reference;
        final Map<String, GraphVertex> newVertices = new LinkedHashMap<>();
        final Map<String, List<String>> newInputs = new LinkedHashMap<>();
        final Map<String, String> projectionOf = new LinkedHashMap<>();

        Rewrite(ComputationGraph base, PeftConfig config, Map<String, FrozenBaseLayer> current,
                TargetSelection.Selected selected, Topology topo, Training training) {
            this.base = base;
            this.config = config;
            this.current = current;
            this.selected = selected;
            this.topo = topo;
            this.training = training;
            this.vertices = base.getConfiguration().getVertices();
            this.outputs = new HashSet<>(base.getConfiguration().getNetworkOutputs());
            this.reference = referenceLayer(base.getConfiguration());
        }

        private void put(String name, GraphVertex v, List<String> inputs) {
            newVertices.put(name, v);
            newInputs.put(name, new ArrayList<>(inputs));
        }

        /** Whether DL4J must run the vertex in backprop: it trains, something above it trains, or it is an output. */
        private boolean live(String name) {
            return training.trainable().contains(name) || training.upstreamTrains().get(name) || outputs.contains(name);
        }

        void vertex(String name) {
            List<String> inputs = topo.inputs.get(name);
            GraphEdit edit = topo.edits.get(name);
            if (edit != null) {
                put(name, editVertex(edit, vertices, reference,
                        training.inputGradients().getOrDefault(name, training.upstreamTrains().get(name))), inputs);
                return;
            }
            GraphVertex v = vertices.get(name);
            Layer l = layerOf(v);
            boolean[] residual = training.residualInputs().get(name);
            if (residual != null && live(name)) {
                put(name, new GatedResidualAdd(residual[0], residual[1]), inputs);
            } else if (l == null) {
                put(name, live(name) ? v.clone() : new FrozenVertex(v.clone()), inputs);
            } else if (selected.saved().contains(name)) {
                put(name, ownCopy((LayerVertex) v), inputs);
            } else if (isDenseType(l)) {
                frozenDense(name, (LayerVertex) v, inputs);
            } else if (selected.targets().contains(name)) {
                adapted(name, (LayerVertex) v, inputs);
            } else if (base.getLayer(name).numParams() > 0 || !live(name)) {
                INDArray p = base.getLayer(name).numParams() > 0 ? detachedCopy(base.getLayer(name).params()) : null;
                put(name, layerVertex((LayerVertex) v, new FrozenParamsLayer(l.clone(), p, live(name)),
                        ((LayerVertex) v).getPreProcessor()), inputs);
            } else {
                put(name, ownCopy((LayerVertex) v), inputs);
            }
        }

        /** The frozen-weight view of a base layer that the tuner's {@link PeftConfig#adapt}/{@code freeze} receives. */
        private Target target(String name, Layer l) {
            org.deeplearning4j.nn.api.Layer layer = base.getLayer(name);
            INDArray w = detachedCopy(layer.getParam("W"));
            if (TargetKind.of(l) == TargetKind.CONVOLUTION) {
                w = FrozenConvolutionLayer.kernelFromStock(l, w);
            }
            return new Target(name, TargetKind.of(l), l.clone(), w,
                    hasBias(l) ? detachedCopy(layer.getParam("b")) : null, training.trainableBias().get(name),
                    training.inputGradients().get(name), current.get(name));
        }

        /** The tuner's layer for {@code t}, checked to be of the target's kind. */
        private FrozenBaseLayer adaptedLayer(Target t) {
            FrozenBaseLayer fl = config.adapt(t);
            if (fl == null || fl.kind() != t.kind()) {
                throw new IllegalStateException(config.peftType() + " returned " + (fl == null ? "null" : fl.getClass()
                        .getSimpleName() + " of kind " + fl.kind()) + " for layer \"" + t.layerName() + "\" of kind "
                        + t.kind());
            }
            return fl;
        }

        /** A targeted embedding or convolution: the tuner's layer, under the same name and preprocessor. */
        private void adapted(String name, LayerVertex lv, List<String> inputs) {
            Layer l = lv.getLayerConf().getLayer();
            FrozenBaseLayer fl = adaptedLayer(target(name, l));
            fl.setSkipBackprop(!live(name));
            copyCommon((BaseLayer) l, fl);
            fl.setLayerName(name);
            put(name, layerVertex(lv, fl, lv.getPreProcessor()), inputs);
        }

        /** A dense-type layer: the tuner's layer when targeted, else a plain frozen one; output layers are split. */
        private void frozenDense(String name, LayerVertex lv, List<String> inputs) {
            Layer l = lv.getLayerConf().getLayer();
            Target t = target(name, l);
            FrozenDenseLayer fl = selected.targets().contains(name) ? (FrozenDenseLayer) adaptedLayer(t) : config.freeze(t);
            fl.setSkipBackprop(!live(name));
            copyCommon((BaseLayer) l, fl);
            if (l instanceof DenseLayer) {
                fl.setLayerName(name);
                put(name, layerVertex(lv, fl, lv.getPreProcessor()), inputs);
            } else {
                splitOutputLayer(name, lv, fl, inputs);
            }
        }

        /**
         * An output layer becomes its dense projection {@code <name>-dense} (the frozen layer, identity
         * activation) and a parameter-free loss layer that keeps {@code name}, the original activation
         * and loss function.
         */
        private void splitOutputLayer(String name, LayerVertex lv, FrozenDenseLayer fl, List<String> inputs) {
            Layer l = lv.getLayerConf().getLayer();
            String dense = uniqueName(name + DENSE_SUFFIX, topo.inputs.keySet());
            fl.setLayerName(dense);
            fl.setActivationFn(new ActivationIdentity());
            fl.setOutputProjection(true);
            InputPreProcessor pre = lv.getPreProcessor();
            InputPreProcessor post = null;
            Layer loss;
            if (l instanceof RnnOutputLayer) {
                RnnOutputLayer r = (RnnOutputLayer) l;
                RNNFormat fmt = r.getRnnDataFormat() == null ? RNNFormat.NCW : r.getRnnDataFormat();
                pre = pre == null ? new RnnToFeedForwardPreProcessor(fmt)
                        : new ComposableInputPreProcessor(pre, new RnnToFeedForwardPreProcessor(fmt));
                post = new FeedForwardToRnnPreProcessor(fmt);
                loss = new RnnLossLayer.Builder(r.getLossFn()).activation(r.getActivationFn()).dataFormat(fmt).build();
            } else {
                OutputLayer o = (OutputLayer) l;
                loss = new LossLayer.Builder(o.getLossFn()).activation(o.getActivationFn()).build();
            }
            loss.setLayerName(name);
            IUpdater lossUpdater = ((BaseLayer) l).getIUpdater();
            ((BaseLayer) loss).setIUpdater(lossUpdater == null ? null : lossUpdater.clone());
            put(dense, layerVertex(lv, fl, pre), inputs);
            put(name, layerVertex(lv, loss, post), List.of(dense));
            projectionOf.put(name, dense);
        }

        /** Step 4: the rewritten configuration, validated, with DL4J left to compute the topological order. */
        ComputationGraphConfiguration configuration() {
            ComputationGraphConfiguration newConf = base.getConfiguration().clone();
            newConf.setVertices(newVertices);
            newConf.setVertexInputs(newInputs);
            if (!topo.addedInputs.isEmpty()) {
                List<String> in = new ArrayList<>(base.getConfiguration().getNetworkInputs());
                in.addAll(topo.addedInputs);
                newConf.setNetworkInputs(in);
            }
            newConf.setTopologicalOrder(null);
            newConf.setTopologicalOrderStr(null);
            newConf.validate(false, false);
            return newConf;
        }
    }

    /** The base graph's wiring after the tuner's edits: vertex inputs in order, and which vertices are new. */
    private static final class Topology {
        final Map<String, List<String>> inputs = new LinkedHashMap<>();
        final Map<String, GraphEdit> edits = new LinkedHashMap<>();
        final List<String> addedInputs = new ArrayList<>();
    }

    /** Applies {@code edits} in order to the wiring of {@code conf}; validates every anchor and name. */
    private static Topology applyEdits(ComputationGraphConfiguration conf, List<GraphEdit> edits,
                                       Set<String> targets, Set<String> saved) {
        Topology t = new Topology();
        for (String v : conf.getVertices().keySet()) {
            t.inputs.put(v, new ArrayList<>(conf.getVertexInputs().getOrDefault(v, List.of())));
        }
        Set<String> networkInputs = new HashSet<>(conf.getNetworkInputs());
        Set<String> outputs = new HashSet<>(conf.getNetworkOutputs());
        for (GraphEdit e : edits) {
            if (e.kind() == GraphEdit.Kind.ADD_INPUT) {
                if (t.inputs.containsKey(e.name()) || networkInputs.contains(e.name())) {
                    throw new IllegalArgumentException("graph edit " + e + ": a vertex or input named \"" + e.name()
                            + "\" already exists; choose another name");
                }
                networkInputs.add(e.name());
                t.addedInputs.add(e.name());
                continue;
            }
            String a = e.anchor();
            boolean isInput = networkInputs.contains(a);
            boolean inputAnchorOk = isInput && (e.kind() == GraphEdit.Kind.INSERT_AFTER || e.kind() == GraphEdit.Kind.ADD);
            if (!t.inputs.containsKey(a) && !inputAnchorOk) {
                throw new IllegalArgumentException("graph edit " + e + ": no vertex named \"" + a
                        + "\"; layers are: " + describeLayers(conf));
            }
            if (e.kind() != GraphEdit.Kind.REPLACE
                    && (t.inputs.containsKey(e.name()) || networkInputs.contains(e.name()))) {
                throw new IllegalArgumentException("graph edit " + e + ": a vertex named \"" + e.name()
                        + "\" already exists; choose another name");
            }
            if (t.edits.containsKey(a) && e.kind() == GraphEdit.Kind.REPLACE) {
                throw new IllegalArgumentException("graph edit " + e + ": \"" + a + "\" is itself new or already "
                        + "replaced by " + t.edits.get(a));
            }
            if (e.kind() == GraphEdit.Kind.REPLACE && (targets.contains(a) || saved.contains(a))) {
                throw new IllegalArgumentException("graph edit " + e + ": \"" + a + "\" is also a target or in "
                        + "modulesToSave; a vertex can be changed one way only");
            }
            switch (e.kind()) {
                case INSERT_AFTER:
                    if (outputs.contains(a)) {
                        throw new IllegalArgumentException("graph edit " + e + ": \"" + a + "\" is a network output; "
                                + "insert before it instead");
                    }
                    requireKnown(e, e.inputs(), t, networkInputs, conf);
                    for (List<String> in : t.inputs.values()) {
                        in.replaceAll(x -> x.equals(a) ? e.name() : x);
                    }
                    t.inputs.put(e.name(), new ArrayList<>(List.of(a)));
                    t.inputs.get(e.name()).addAll(e.inputs());
                    t.edits.put(e.name(), e);
                    break;
                case INSERT_BEFORE: {
                    List<String> in = t.inputs.get(a);
                    if (in.size() != 1) {
                        throw new IllegalArgumentException("graph edit " + e + ": \"" + a + "\" has " + in.size()
                                + " inputs " + in + "; a layer can be inserted before a single-input vertex only");
                    }
                    t.inputs.put(e.name(), new ArrayList<>(in));
                    in.set(0, e.name());
                    t.edits.put(e.name(), e);
                    break;
                }
                case REPLACE:
                    requireKnown(e, e.inputs(), t, networkInputs, conf);
                    t.inputs.get(a).addAll(e.inputs());
                    t.edits.put(a, e);
                    break;
                case ADD:
                    requireKnown(e, e.inputs(), t, networkInputs, conf);
                    t.inputs.put(e.name(), new ArrayList<>(e.inputs()));
                    t.edits.put(e.name(), e);
                    break;
                default:
                    throw new AssertionError(e.kind());
            }
        }
        return t;
    }

    private static void requireKnown(GraphEdit e, List<String> names, Topology t, Set<String> networkInputs,
                                     ComputationGraphConfiguration conf) {
        for (String n : names) {
            if (!t.inputs.containsKey(n) && !networkInputs.contains(n)) {
                throw new IllegalArgumentException("graph edit " + e + ": no vertex or input named \"" + n
                        + "\"; layers are: " + describeLayers(conf));
            }
        }
    }

    private static long editParams(GraphEdit e) {
        return e.layer() != null ? e.layer().initializer().numParams(e.layer()) : e.vertex().numParams(true);
    }

    /** The vertex configuration of a new or replacing layer, with training settings filled in. */
    private static GraphVertex editVertex(GraphEdit e, Map<String, GraphVertex> base, Layer reference,
                                          boolean inputGradient) {
        if (e.vertex() != null) {
            GraphVertex v = e.vertex().clone();
            if (v instanceof TunerLayer) {
                ((TunerLayer) v).setInputGradient(inputGradient);
            }
            return v;
        }
        Layer l = e.layer().clone();
        l.setLayerName(e.name());
        GraphVertex anchor = e.kind() == GraphEdit.Kind.ADD ? null : base.get(e.anchor());
        Layer anchorLayer = layerOf(anchor);
        Layer from = anchorLayer instanceof BaseLayer && ((BaseLayer) anchorLayer).getIUpdater() != null
                ? anchorLayer : reference;
        if (l instanceof BaseLayer && ((BaseLayer) l).getIUpdater() == null && from instanceof BaseLayer) {
            BaseLayer b = (BaseLayer) l;
            BaseLayer f = (BaseLayer) from;
            b.setIUpdater(f.getIUpdater());
            b.setBiasUpdater(f.getBiasUpdater());
            b.setRegularization(f.getRegularization());
            b.setRegularizationBias(f.getRegularizationBias());
            b.setGradientNormalization(f.getGradientNormalization());
            b.setGradientNormalizationThreshold(f.getGradientNormalizationThreshold());
        }
        if (l instanceof TunerLayer) {
            ((TunerLayer) l).setInputGradient(inputGradient);
        }
        LayerVertex template = anchor instanceof LayerVertex ? (LayerVertex) anchor : firstLayerVertex(base);
        InputPreProcessor pre = e.kind() == GraphEdit.Kind.REPLACE && anchor instanceof LayerVertex
                ? ((LayerVertex) anchor).getPreProcessor() : null;
        return layerVertex(template, l, pre);
    }

    private static LayerVertex firstLayerVertex(Map<String, GraphVertex> vertices) {
        for (GraphVertex v : vertices.values()) {
            if (v instanceof LayerVertex) {
                return (LayerVertex) v;
            }
        }
        throw new IllegalArgumentException("the base graph has no layers");
    }

    /** The first layer with an updater: where new layers take their training settings from. */
    private static Layer referenceLayer(ComputationGraphConfiguration conf) {
        for (GraphVertex v : conf.getVertices().values()) {
            Layer l = layerOf(v);
            if (l instanceof BaseLayer && ((BaseLayer) l).getIUpdater() != null) {
                return l;
            }
        }
        return null;
    }

    /**
     * Whether each edit and each frozen or adapted dense-type layer must pass an epsilon to its inputs.
     * It must when something upstream trains; and it must also when one of its inputs feeds another
     * consumer that does pass an epsilon (a residual add, say), even though nothing upstream trains:
     * DL4J 1.0.0-M2.1 sums the epsilons of a vertex with several consumers with {@code addi}, which
     * throws a NullPointerException when a null epsilon follows a real one (and drops the real one when
     * it comes first). Layers DL4J skips in backprop (wrapped as frozen: not live) contribute nothing.
     *
     * <p>A live {@link ResidualAdd} (this class exactly; DL4J's {@code ElementWiseVertex} keeps passing
     * both) is gated per input: it passes no epsilon to an input at and above which nothing trains,
     * under the same sibling rule, so that the frozen branch below (the q, k, v input gradients of a
     * first transformer block over a frozen embedding) is skipped as a whole. Its first input is gated
     * only when every other live consumer of that input lies above the residual add: DL4J does not
     * advance its index into the epsilons when it meets an input whose epsilon is already null, so a
     * consumer that ran before would shift the second input's epsilon onto the first (null) one.
     * The result goes to {@code residualInputs}: which input gets an epsilon, for each residual add
     * that passes one to a single input. {@code -Dpeft4j.gateResidualInputs=false} turns this off
     * (for A/B measurements).
     */
    private static Map<String, Boolean> inputGradients(Topology topo, ComputationGraphConfiguration conf,
            Map<String, GraphVertex> vertices, TargetSelection.Selected selected, Set<String> trainable,
            Map<String, Boolean> upstreamTrains, Set<String> outputs, Map<String, boolean[]> residualInputs) {
        Map<String, Boolean> gated = new LinkedHashMap<>();
        Map<String, Boolean> live = new HashMap<>();
        for (Map.Entry<String, List<String>> e : topo.inputs.entrySet()) {
            String name = e.getKey();
            GraphEdit edit = topo.edits.get(name);
            if (edit != null) {
                boolean inputGradient = upstreamTrains.get(name);
                if (edit.kind() == GraphEdit.Kind.REPLACE) {
                    // a replacement passes epsilons to its original inputs only when something above them trains
                    inputGradient = false;
                    for (String in : conf.getVertexInputs().get(name)) {
                        inputGradient |= trainable.contains(in) || upstreamTrains.getOrDefault(in, false);
                    }
                } else if (edit.kind() == GraphEdit.Kind.INSERT_AFTER && !edit.inputs().isEmpty()) {
                    // likewise a vertex with extra inputs: only what is above its anchor counts
                    inputGradient = trainable.contains(edit.anchor()) || upstreamTrains.getOrDefault(edit.anchor(), false);
                }
                if (edit.vertex() instanceof TunerLayer || edit.layer() instanceof TunerLayer) {
                    gated.put(name, inputGradient);
                }
                live.put(name, true);
                continue;
            }
            live.put(name, trainable.contains(name) || upstreamTrains.get(name) || outputs.contains(name));
            boolean frozenBase = isDenseType(layerOf(vertices.get(name))) || selected.targets().contains(name);
            if (frozenBase && !selected.saved().contains(name)) {
                gated.put(name, upstreamTrains.get(name));
            }
        }
        Map<String, List<String>> consumers = new HashMap<>();
        topo.inputs.forEach((v, ins) -> ins.forEach(in -> consumers.computeIfAbsent(in, k -> new ArrayList<>()).add(v)));
        Map<String, boolean[]> residual = new LinkedHashMap<>();
        if (Boolean.parseBoolean(System.getProperty("peft4j.gateResidualInputs", "true"))) {
            for (Map.Entry<String, List<String>> e : topo.inputs.entrySet()) {
                String name = e.getKey();
                List<String> ins = e.getValue();
                GraphVertex v = vertices.get(name);
                if (topo.edits.containsKey(name) || v == null || v.getClass() != ResidualAdd.class || !live.get(name)
                        || ins.size() != 2 || ins.get(0).equals(ins.get(1))) {
                    continue;
                }
                boolean[] pass = new boolean[2];
                for (int k = 0; k < 2; k++) {
                    String in = ins.get(k);
                    pass[k] = !topo.inputs.containsKey(in) || trainable.contains(in) || upstreamTrains.get(in);
                }
                if (!pass[0]) {
                    for (String c : consumers.get(ins.get(0))) {
                        if (!c.equals(name) && live.get(c) && !upstream(topo.inputs, name, Set.of(c))) {
                            pass[0] = true;
                        }
                    }
                }
                if (!pass[0] || !pass[1]) {
                    residual.put(name, pass);
                }
            }
        }
        boolean changed = true;
        while (changed) {
            changed = false;
            for (Map.Entry<String, Boolean> g : gated.entrySet()) {
                if (g.getValue() || !live.get(g.getKey())) {
                    continue;
                }
                for (String in : topo.inputs.get(g.getKey())) {
                    if (siblingPasses(g.getKey(), in, topo.inputs, consumers, live, gated, residual)) {
                        g.setValue(true);
                        changed = true;
                    }
                }
            }
            for (Map.Entry<String, boolean[]> r : residual.entrySet()) {
                List<String> ins = topo.inputs.get(r.getKey());
                for (int k = 0; k < 2; k++) {
                    if (!r.getValue()[k] && siblingPasses(r.getKey(), ins.get(k), topo.inputs, consumers, live, gated, residual)) {
                        r.getValue()[k] = true;
                        changed = true;
                    }
                }
            }
        }
        residual.forEach((name, pass) -> {
            if (!pass[0] || !pass[1]) {
                residualInputs.put(name, pass);
            }
        });
        return gated;
    }

    /** Whether a live consumer of {@code in} other than {@code self} passes an epsilon to it. */
    private static boolean siblingPasses(String self, String in, Map<String, List<String>> inputs,
                                         Map<String, List<String>> consumers, Map<String, Boolean> live,
                                         Map<String, Boolean> gated, Map<String, boolean[]> residual) {
        for (String sibling : consumers.getOrDefault(in, List.of())) {
            if (sibling.equals(self) || !live.get(sibling)) {
                continue;
            }
            boolean[] r = residual.get(sibling);
            if (r != null) {
                List<String> ins = inputs.get(sibling);
                for (int k = 0; k < 2; k++) {
                    if (r[k] && ins.get(k).equals(in)) {
                        return true;
                    }
                }
            } else if (gated.getOrDefault(sibling, true)) {
                return true;
            }
        }
        return false;
    }

    /** For each vertex, whether any vertex strictly upstream of it has trainable parameters. */
    static Map<String, Boolean> upstreamTrains(Map<String, List<String>> inputs, Set<String> trainable) {
        Map<String, Boolean> memo = new HashMap<>();
        for (String v : inputs.keySet()) {
            memo.put(v, upstream(inputs, v, trainable));
        }
        return memo;
    }

    private static boolean upstream(Map<String, List<String>> inputs, String start, Set<String> trainable) {
        Deque<String> todo = new ArrayDeque<>(inputs.getOrDefault(start, List.of()));
        Set<String> seen = new HashSet<>();
        while (!todo.isEmpty()) {
            String v = todo.pop();
            if (!seen.add(v)) {
                continue;
            }
            if (trainable.contains(v)) {
                return true;
            }
            todo.addAll(inputs.getOrDefault(v, List.of()));
        }
        return false;
    }

    private static boolean hasBias(Layer l) {
        if (l instanceof DenseLayer) {
            return ((DenseLayer) l).hasBias();
        }
        if (l instanceof org.deeplearning4j.nn.conf.layers.ConvolutionLayer) {
            return ((org.deeplearning4j.nn.conf.layers.ConvolutionLayer) l).hasBias();
        }
        if (l instanceof org.deeplearning4j.nn.conf.layers.EmbeddingLayer) {
            return ((org.deeplearning4j.nn.conf.layers.EmbeddingLayer) l).hasBias();
        }
        if (l instanceof org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer) {
            return ((org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer) l).hasBias();
        }
        if (l instanceof org.deeplearning4j.nn.conf.layers.BaseOutputLayer) {
            return ((org.deeplearning4j.nn.conf.layers.BaseOutputLayer) l).hasBias();
        }
        return false;
    }

    /** Copies the training settings of a base layer, with its own copies of the mutable ones ({@link #ownSettings}). */
    private static void copyCommon(BaseLayer from, FrozenBaseLayer to) {
        to.setActivationFn(from.getActivationFn());
        to.setWeightInitFn(from.getWeightInitFn());
        to.setBiasInit(from.getBiasInit());
        to.setIUpdater(from.getIUpdater());
        to.setBiasUpdater(from.getBiasUpdater());
        to.setRegularization(from.getRegularization());
        to.setRegularizationBias(from.getRegularizationBias());
        to.setGradientNormalization(from.getGradientNormalization());
        to.setGradientNormalizationThreshold(from.getGradientNormalizationThreshold());
        to.setIDropout(from.getIDropout());
        ownSettings(to);
    }

    /**
     * A copy of {@code base} (configuration, parameters, optimizer state) that shares no mutable
     * training setting with it ({@link #ownSettings}); DL4J's {@code clone()} alone would.
     */
    public static ComputationGraph independentClone(ComputationGraph base) {
        ComputationGraph c = base.clone();
        ownSettings(c.getConfiguration());
        ComputationGraphUpdater u = c.getUpdater(false);
        if (u != null) {
            INDArray state = u.getStateViewArray();
            c.setUpdater(null);
            ComputationGraphUpdater fresh = c.getUpdater(true);
            if (state != null) {
                fresh.setStateViewArray(state);
            }
        }
        return c;
    }

    /** A clone of {@code conf} that shares no mutable training setting with it ({@link #ownSettings}). */
    public static ComputationGraphConfiguration independentConf(ComputationGraphConfiguration conf) {
        ComputationGraphConfiguration c = conf.clone();
        ownSettings(c);
        return c;
    }

    private static void ownSettings(ComputationGraphConfiguration conf) {
        for (GraphVertex v : conf.getVertices().values()) {
            if (v instanceof LayerVertex lv && lv.getLayerConf().getLayer() instanceof BaseLayer b) {
                ownSettings(b);
            }
        }
    }

    /** A clone of a layer vertex that shares no mutable training setting with the original ({@link #ownSettings}). */
    private static LayerVertex ownCopy(LayerVertex lv) {
        LayerVertex c = (LayerVertex) lv.clone();
        if (c.getLayerConf().getLayer() instanceof BaseLayer b) {
            ownSettings(b);
        }
        return c;
    }

    /**
     * Replaces a layer's updaters, regularization and dropout with clones. DL4J's layer {@code clone()}
     * keeps the same updater objects, and {@code ComputationGraph.setLearningRate} changes them in
     * place, so without this a learning-rate change on the wrapped graph would reach the base graph.
     */
    private static void ownSettings(BaseLayer b) {
        b.setIUpdater(b.getIUpdater() == null ? null : b.getIUpdater().clone());
        b.setBiasUpdater(b.getBiasUpdater() == null ? null : b.getBiasUpdater().clone());
        b.setRegularization(cloned(b.getRegularization()));
        b.setRegularizationBias(cloned(b.getRegularizationBias()));
        b.setIDropout(b.getIDropout() == null ? null : b.getIDropout().clone());
    }

    private static List<Regularization> cloned(List<Regularization> list) {
        if (list == null) {
            return null;
        }
        List<Regularization> out = new ArrayList<>(list.size());
        for (Regularization r : list) {
            out.add(r.clone());
        }
        return out;
    }

    private static LayerVertex layerVertex(LayerVertex template, Layer layer, InputPreProcessor pre) {
        NeuralNetConfiguration nnc = template.getLayerConf().clone();
        nnc.clearVariables();
        nnc.setLayer(layer);
        return new LayerVertex(nnc, pre == null ? null : pre.clone());
    }

    private static String uniqueName(String wanted, Set<String> taken) {
        String n = wanted;
        int i = 2;
        while (taken.contains(n)) {
            n = wanted + i++;
        }
        return n;
    }

    /**
     * A copy of {@code a} outside any workspace, in {@code a}'s own ordering: DL4J holds dense
     * weights in 'f' order, and ND4J's batch-1 product with a 'c'-order copy of a 1024 × 1024
     * weight takes about 1.7× as long (measured with nd4j-native 1.0.0-M2.1).
     */
    public static INDArray detachedCopy(INDArray a) {
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            return a.dup(a.ordering());
        }
    }

    /** Copies parameters key by key (never by flat offset). */
    public static void copyParams(org.deeplearning4j.nn.api.Layer from, org.deeplearning4j.nn.api.Layer to) {
        for (Map.Entry<String, INDArray> e : from.paramTable().entrySet()) {
            INDArray dst = to.paramTable().get(e.getKey());
            if (dst == null || dst.length() != e.getValue().length()) {
                throw new IllegalStateException("cannot copy parameter " + e.getKey() + " of layer "
                        + from.conf().getLayer().getLayerName());
            }
            dst.assign(e.getValue().reshape(dst.shape()));
        }
    }
}
