package org.peft4j.core;

import java.util.Map;
import java.util.Objects;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.peft4j.core.internal.GraphRewriter;

/**
 * Entry point: wraps a DL4J base model for parameter-efficient fine-tuning.
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(graph, LoraConfig.builder().rank(8).alpha(16)
 *         .targetModules("dense1", "dense2").build());
 * peft.graph().fit(iterator, epochs);
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
        Objects.requireNonNull(base, "base model must not be null");
        Objects.requireNonNull(config, "config must not be null");
        if (base.params() == null) {
            throw new IllegalStateException("the base graph has no parameters yet; call init() on it before wrapping");
        }
        if (config.trainsEverything()) {
            return new PeftModel(base.clone(), base.getConfiguration().clone(), config, Map.of());
        }
        GraphRewriter.Result r = GraphRewriter.rewrite(base, config);
        return new PeftModel(r.graph(), base.getConfiguration().clone(), config, r.projectionVertexOf());
    }

    /**
     * Wraps a multi-layer network by way of its computation-graph form
     * ({@link MultiLayerNetwork#toComputationGraph()}); layer names are those of that form.
     */
    public static PeftModel wrap(MultiLayerNetwork base, PeftConfig config) {
        Objects.requireNonNull(base, "base model must not be null");
        Objects.requireNonNull(config, "config must not be null");
        if (base.params() == null) {
            throw new IllegalStateException("the base network has no parameters yet; call init() on it before wrapping");
        }
        return wrap(base.toComputationGraph(), config);
    }
}
