package org.peft4j.core.rlhf.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.Heads;

/**
 * What the preference trainers require of a wrapped model before they touch it.
 *
 * <p>Thread-safety: stateless.
 */
public final class Checks {

    private Checks() {
    }

    /**
     * Refuses dropout: the trainers compute the objective's gradient from an inference-mode pass and
     * backpropagate it through a training-mode pass, which must compute the same function (TRL turns
     * dropout off for DPO and PPO for the same reason).
     */
    public static void requireNoDropout(PeftModel model, String what) {
        List<String> with = new ArrayList<>();
        ComputationGraph g = model.graph();
        for (Layer l : g.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = ModelInfo.unwrap(l.conf().getLayer());
            if (c.getIDropout() != null) {
                with.add(c.getLayerName());
            }
        }
        if (!with.isEmpty()) {
            throw new IllegalArgumentException(what + " needs a model without dropout, but layers " + with + " have "
                    + "dropout: the gradient is taken from an inference pass and backpropagated through a training "
                    + "pass, which must compute the same function; build the base model with dropout 0");
        }
        PeftConfig config = model.config();
        if (config.trainsEverything()) {
            return;
        }
        Map<String, Object> json;
        try {
            json = config.toAdapterConfig();
        } catch (UnsupportedOperationException e) {
            return;
        }
        for (Map.Entry<String, Object> e : json.entrySet()) {
            if (e.getKey().contains("dropout") && e.getValue() instanceof Number n && n.doubleValue() > 0) {
                throw new IllegalArgumentException(what + " needs a model without dropout, but the adapter has "
                        + e.getKey() + " = " + n + "; wrap with dropout 0");
            }
        }
    }

    /**
     * Requires the reference {@code π_ref} (the model with its adapter disabled) to be the base
     * model: an adapter to disable, not merged, and no trained module except the scalar head
     * (modules to save stay trained inside {@code disableAdapter()}).
     */
    public static void requireReference(PeftModel model, Heads heads, String what) {
        PeftConfig config = model.config();
        if (config.trainsEverything()) {
            throw new IllegalArgumentException(what + " uses the model with its adapter disabled as the reference "
                    + "model, but " + config.peftType() + " trains every weight and keeps no frozen base; wrap with "
                    + "an adapter (LoRA, QLoRA, IA3, bottleneck adapters)");
        }
        if (model.isMerged()) {
            throw new IllegalStateException(what + ": the adapters are merged into the base weights, so disabling "
                    + "them would not give the reference model; call unmerge() first");
        }
        List<String> others = new ArrayList<>(config.modulesToSave());
        others.remove(heads.score());
        if (!others.isEmpty()) {
            throw new IllegalArgumentException(what + " uses the model with its adapter disabled as the reference "
                    + "model, but modules to save " + others + " stay trained inside disableAdapter(), so the "
                    + "reference would not be the base model; keep only the scalar head \"" + heads.score()
                    + "\" in modulesToSave");
        }
    }
}
