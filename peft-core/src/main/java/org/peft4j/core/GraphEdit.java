package org.peft4j.core;

import java.util.List;
import java.util.Objects;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.Layer;

/**
 * One structural change a tuner makes to the base graph, returned by
 * {@link PeftConfig#graphEdits}: a new layer inserted after or before a vertex, or a vertex
 * replaced by a tuner's variant. {@link Peft#wrap} applies the edits to its copy of the graph;
 * the base graph is never touched.
 *
 * <ul>
 *   <li>{@link #insertAfter}: the new layer reads the anchor's output, and every vertex that read
 *       the anchor reads the new layer instead. The anchor must not be a network output.</li>
 *   <li>{@link #insertBefore}: the new layer reads the anchor's (single) input and the anchor reads
 *       the new layer; the anchor keeps its input preprocessor.</li>
 *   <li>{@link #insertAfter(String, String, GraphVertex, String...)}: as {@code insertAfter} for a
 *       (non-layer) vertex that reads the anchor's output first and then extra inputs (e.g. a
 *       vertex that puts per-example prompts in front of the token embeddings).</li>
 *   <li>{@link #replace}: the new layer or vertex takes the anchor's name and inputs (plus, for a
 *       vertex, optional extra inputs appended after them).</li>
 *   <li>{@link #add}: a new layer reading the given vertices or network inputs; it feeds only
 *       what a later edit wires to it (e.g. an extra input of a replacement).</li>
 *   <li>{@link #addInput}: a new network input of the wrapped graph, after the base graph's own,
 *       for data the tuner needs beside the model's inputs (e.g. a task id per example); later
 *       edits read it by name.</li>
 * </ul>
 *
 * A new layer whose configuration sets no updater gets the anchor's (or else the base graph's
 * first layer's) updater, regularization and gradient normalization. A new layer that implements
 * {@link TunerLayer} learns through {@link TunerLayer#setInputGradient} whether it must pass an
 * epsilon down. Inserted and replacing layers train in full (all their parameters).
 *
 * <p>Thread-safety: immutable (the layer configuration is copied before use).
 */
public final class GraphEdit {

    /** Where the new layer goes relative to the anchor. */
    public enum Kind { INSERT_AFTER, INSERT_BEFORE, REPLACE, ADD, ADD_INPUT }

    private final Kind kind;
    private final String anchor;
    private final String name;
    private final Layer layer;
    private final GraphVertex vertex;
    private final List<String> inputs;

    private GraphEdit(Kind kind, String anchor, String name, Layer layer, GraphVertex vertex, List<String> inputs) {
        this.kind = kind;
        this.anchor = requireName(anchor, "anchor");
        this.name = requireName(name, "name");
        this.layer = layer;
        this.vertex = vertex;
        this.inputs = List.copyOf(inputs);
        this.inputs.forEach(i -> requireName(i, "input"));
    }

    private GraphEdit(Kind kind, String anchor, String name, Layer layer, GraphVertex vertex) {
        this(kind, anchor, name, layer, vertex, List.of());
    }

    private static String requireName(String s, String what) {
        Objects.requireNonNull(s, what + " must not be null");
        if (s.isBlank()) {
            throw new IllegalArgumentException(what + " must not be blank");
        }
        return s;
    }

    /** Inserts {@code layer}, named {@code name}, after vertex {@code anchor}. */
    public static GraphEdit insertAfter(String anchor, String name, Layer layer) {
        return new GraphEdit(Kind.INSERT_AFTER, anchor, name, Objects.requireNonNull(layer, "layer must not be null"), null);
    }

    /**
     * Inserts {@code vertex}, named {@code name}, after vertex {@code anchor}: it reads the anchor's
     * output, then {@code extraInputs} (vertex, network-input or earlier edits' names), and every
     * vertex that read the anchor reads it instead. It passes an epsilon to the anchor only when
     * something above the anchor trains; its extra inputs always get theirs.
     */
    public static GraphEdit insertAfter(String anchor, String name, GraphVertex vertex, String... extraInputs) {
        return new GraphEdit(Kind.INSERT_AFTER, anchor, name, null, Objects.requireNonNull(vertex, "vertex must not be null"),
                List.of(Objects.requireNonNull(extraInputs, "extraInputs must not be null")));
    }

    /**
     * Adds a network input named {@code name} to the wrapped graph, after the base graph's inputs:
     * callers then pass one more array to {@code fit}/{@code output} (a {@code MultiDataSet}).
     */
    public static GraphEdit addInput(String name) {
        return new GraphEdit(Kind.ADD_INPUT, name, name, null, null);
    }

    /** Inserts {@code layer}, named {@code name}, before vertex {@code anchor} (which must have one input). */
    public static GraphEdit insertBefore(String anchor, String name, Layer layer) {
        return new GraphEdit(Kind.INSERT_BEFORE, anchor, name, Objects.requireNonNull(layer, "layer must not be null"), null);
    }

    /** Replaces vertex {@code anchor} by {@code layer} under the same name and inputs. */
    public static GraphEdit replace(String anchor, Layer layer) {
        return new GraphEdit(Kind.REPLACE, anchor, anchor, Objects.requireNonNull(layer, "layer must not be null"), null);
    }

    /**
     * Replaces vertex {@code anchor} by a (non-layer) graph vertex under the same name and inputs,
     * e.g. a multi-input attention core. A vertex with parameters must implement its own training
     * configuration (updater) for DL4J.
     */
    public static GraphEdit replace(String anchor, GraphVertex vertex, String... extraInputs) {
        return new GraphEdit(Kind.REPLACE, anchor, anchor, null, Objects.requireNonNull(vertex, "vertex must not be null"),
                List.of(Objects.requireNonNull(extraInputs, "extraInputs must not be null")));
    }

    /**
     * Adds {@code layer}, named {@code name}, reading {@code inputs} (vertex or network-input names,
     * including names added by earlier edits). {@code anchor()} is the first input.
     */
    public static GraphEdit add(String name, Layer layer, String... inputs) {
        Objects.requireNonNull(inputs, "inputs must not be null");
        if (inputs.length == 0) {
            throw new IllegalArgumentException("add: give at least one input for layer \"" + name + "\"");
        }
        return new GraphEdit(Kind.ADD, inputs[0], name, Objects.requireNonNull(layer, "layer must not be null"), null,
                List.of(inputs));
    }

    public Kind kind() {
        return kind;
    }

    /** The existing vertex the edit is placed against. */
    public String anchor() {
        return anchor;
    }

    /** The new vertex's name ({@link #anchor()} for a replacement). */
    public String name() {
        return name;
    }

    /** The new layer configuration, or null when the edit carries a {@link #vertex()} (or is an {@link Kind#ADD_INPUT}). */
    public Layer layer() {
        return layer;
    }

    /**
     * The inputs of an {@link Kind#ADD} edit, or the extra inputs of a {@link Kind#REPLACE} or of a
     * vertex inserted after its anchor; else empty.
     */
    public List<String> inputs() {
        return inputs;
    }

    /** The new non-layer vertex, or null when the edit carries a {@link #layer()} (or is an {@link Kind#ADD_INPUT}). */
    public GraphVertex vertex() {
        return vertex;
    }

    @Override
    public String toString() {
        if (kind == Kind.ADD_INPUT) {
            return kind + "(" + name + ")";
        }
        return kind + "(" + (kind == Kind.ADD ? inputs : anchor) + (kind == Kind.REPLACE ? "" : " -> " + name) + ": "
                + (layer != null ? layer.getClass().getSimpleName() : vertex.getClass().getSimpleName()) + ")";
    }
}
