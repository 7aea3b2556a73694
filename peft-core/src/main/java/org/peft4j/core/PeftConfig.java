package org.peft4j.core;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.graph.ComputationGraph;

/**
 * What {@link Peft#wrap} needs to know of a tuning method: which layers it targets, which it trains
 * in full and which biases train ({@link #targeting()}, one shared value), which kinds of layer it
 * can adapt ({@link #supportedTargetKinds()}), how it adapts one targeted layer
 * ({@link #adapt}: LoRA, IA3) and which structural edits it makes to the graph
 * ({@link #graphEdits}: layers inserted by bottleneck adapters and prompt tuning, attention cores
 * replaced by prefix tuning).
 *
 * <p>Adding a tuner touches no core file: its own package holds the config (this interface), its
 * {@link PeftConfigFactory} (one line in {@code META-INF/services/org.peft4j.core.PeftConfigFactory}),
 * its layer (a subclass of the frozen layer of each kind it adapts, e.g. {@link FrozenDenseLayer},
 * that declares its parameters, file tensors and merged weight) and the layer's implementation (a
 * subclass of that kind's implementation, e.g. {@link org.peft4j.core.spi.FrozenDenseLayerImpl},
 * with its forward and backward).
 *
 * <p>Implementations are immutable value objects built by a validating builder (for example
 * {@code org.peft4j.lora.LoraConfig}). The family is open across modules (Java's {@code sealed}
 * needs one package or one named module, and peft4j's tuners live in several Maven modules), so
 * polymorphism takes the place of a switch over kinds: the core asks the config to build its own
 * replacement layer through {@link #adapt}.
 *
 * <p>Thread-safety: implementations must be immutable.
 */
public interface PeftConfig {

    /** The method's name as Hugging Face PEFT writes it in {@code adapter_config.json}, e.g. {@code "LORA"}. */
    String peftType();

    /**
     * The options every method shares: target modules, type filter, excluded modules, modules to
     * save, bias mode, with their file keys ({@link Targeting}).
     */
    Targeting targeting();

    /** The layers this method adapts, or null when it adapts none: {@code targeting().targetModules()}. */
    default TargetModules targetModules() {
        return targeting().targetModules();
    }

    /** Layer configuration classes a target must be an instance of (empty: any): {@code targeting().targetTypes()}. */
    default Set<Class<? extends org.deeplearning4j.nn.conf.layers.Layer>> targetTypes() {
        return targeting().targetTypes();
    }

    /** Layers trained in full (all their parameters), e.g. a new head: {@code targeting().modulesToSave()}. */
    default List<String> modulesToSave() {
        return targeting().modulesToSave();
    }

    /** Which biases train: {@code targeting().bias()}. */
    default BiasMode bias() {
        return targeting().bias();
    }

    /**
     * The kinds of layer this method adapts in place (default {@link TargetKind#DENSE}). A target
     * of another kind is refused when wrapping, with a message naming the layer, its kind and
     * these kinds.
     */
    default Set<TargetKind> supportedTargetKinds() {
        return Set.of(TargetKind.DENSE);
    }

    /** True when nothing is frozen (full fine-tuning through the same API). */
    default boolean trainsEverything() {
        return false;
    }

    /**
     * Builds the layer that replaces one targeted layer: a subclass of the frozen layer of
     * {@code target.kind()} ({@link FrozenDenseLayer}, {@link FrozenEmbeddingLayer},
     * {@link FrozenConvolutionLayer}) holding the frozen weights of {@code target} plus the method's
     * own trainable parameters. Called by {@link Peft#wrap} only for targets of a kind in
     * {@link #supportedTargetKinds()}; the core copies activation, updater, regularization and
     * dropout of the base layer onto the result afterwards.
     *
     * @throws UnsupportedOperationException if the method adapts no layers (then it supports no
     *     kind and this is never called)
     */
    FrozenBaseLayer adapt(Target target);

    /**
     * Builds the frozen replacement of a dense-type layer that is not targeted (default: a plain
     * {@link FrozenDenseLayer}). QLoRA overrides it to hold those weights in 4 bits too.
     */
    default FrozenDenseLayer freeze(Target target) {
        return new FrozenDenseLayer(target);
    }

    /**
     * The keys of {@code adapter_config.json} that belong to this method alone (for LoRA:
     * {@code r}, {@code lora_alpha}, {@code lora_dropout}, ...), without those
     * {@link #toAdapterConfig()} adds for every method. Values are JSON-ready: strings, numbers,
     * booleans, null, lists and maps of them; a {@code "peft4j"} entry holding a map goes to
     * peft4j's extension object of the file.
     *
     * @throws UnsupportedOperationException for methods that produce no adapter file (the default)
     */
    default Map<String, Object> methodConfig() {
        throw new UnsupportedOperationException(peftType() + " produces no adapter file; save the whole graph "
                + "with DL4J's ModelSerializer instead");
    }

    /**
     * This config as the keys of Hugging Face PEFT's {@code adapter_config.json}:
     * {@link #methodConfig()}, {@code peft_type}, the keys of {@link #targeting()}
     * ({@link Targeting#writeJson}) and PEFT's bookkeeping keys ({@code inference_mode} true,
     * {@code task_type} and {@code base_model_name_or_path} null). The inverse is the
     * {@link PeftConfigFactory} registered for {@link #peftType()}.
     *
     * @throws UnsupportedOperationException for methods that produce no adapter file
     */
    default Map<String, Object> toAdapterConfig() {
        Map<String, Object> m = new java.util.TreeMap<>(methodConfig());
        m.put("peft_type", peftType());
        targeting().writeJson(m);
        m.put("inference_mode", true);
        m.putIfAbsent("task_type", null);
        m.putIfAbsent("base_model_name_or_path", null);
        return m;
    }

    /**
     * {@link #toAdapterConfig()} completed with what only the wrapped graph knows (for prompt and
     * prefix tuning: {@code token_dim}, {@code num_layers}, {@code num_attention_heads}). This is
     * what adapter files hold. A {@code "peft4j"} entry holding a map is merged into peft4j's own
     * extension object of the file (keys Hugging Face PEFT does not know). Default:
     * {@link #toAdapterConfig()}.
     *
     * @param wrapped a graph wrapped with this config
     */
    default Map<String, Object> toAdapterConfig(ComputationGraph wrapped) {
        return toAdapterConfig();
    }

    /**
     * The keys of {@link #toAdapterConfig(ComputationGraph)} that describe the base model rather than
     * the method (e.g. {@code token_dim}). Loading compares them between the file and the graph the
     * adapter goes onto, and refuses the adapter if one differs. Default: none.
     */
    default Set<String> baseModelKeys() {
        return Set.of();
    }

    /**
     * What fixes the parameter layout of the wrapped graph (targets, rank, trained biases and
     * modules). Two adapters with equal signatures share one wrapped graph, so switching between
     * them only copies their parameters.
     */
    default String layoutSignature() {
        return peftType() + " " + targeting().signature();
    }

    /**
     * Structural edits beyond adapting dense layers in place: layers inserted after or before a
     * vertex (bottleneck adapters, prompt tuning) or vertices replaced (prefix tuning). Called once
     * by {@link Peft#wrap} before anything is built, with the base graph to read (never write):
     * its configuration for names and sizes, its weights for data-dependent initialisation.
     * Default: none.
     *
     * @throws IllegalArgumentException if the config does not fit {@code base}; the message says
     *     what was found and what exists
     */
    default List<GraphEdit> graphEdits(ComputationGraph base) {
        return List.of();
    }
}
