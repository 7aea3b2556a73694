package org.peft4j.core.rlhf;

import java.util.List;
import java.util.Objects;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.internal.GraphOutputs;
import org.peft4j.core.rlhf.internal.ModelInfo;
import org.peft4j.core.rlhf.internal.TokenBatch;

/**
 * A trained reward model as a {@link RewardFunction}: adapter {@code adapter} of a wrapped model
 * with a {@link ScoreHead}, scoring {@code prompt ++ response} by the scalar head (a decoder: its
 * value at the last token; an encoder: pooled). The adapter can live beside the policy's in the same
 * {@link PeftModel} (one copy of the base weights for the policy, the reference and the reward
 * model): {@link #score} then activates it, scores, and activates the adapter that was active
 * before, whose parameters and optimizer state {@link PeftModel#setAdapter} keeps.
 *
 * <p>Thread-safety: not thread-safe; it switches the model's active adapter while scoring.
 */
public final class RewardModel implements RewardFunction {

    private final PeftModel model;
    private final String adapter;
    private final Heads heads;

    /** The reward model held by adapter {@code adapter} of {@code model}, with {@link Heads#DEFAULT}. */
    public RewardModel(PeftModel model, String adapter) {
        this(model, adapter, Heads.DEFAULT);
    }

    /**
     * @throws IllegalArgumentException if {@code model} has no adapter {@code adapter} or its graph no
     *     scalar output {@code heads.score()}
     */
    public RewardModel(PeftModel model, String adapter, Heads heads) {
        this.model = Objects.requireNonNull(model, "model must not be null");
        this.heads = Objects.requireNonNull(heads, "heads must not be null");
        Objects.requireNonNull(adapter, "adapter must not be null");
        if (!model.adapterNames().contains(adapter)) {
            throw new IllegalArgumentException("no adapter named \"" + adapter + "\"; adapters are "
                    + model.adapterNames());
        }
        this.adapter = adapter;
        ModelInfo.of(model.graph(), heads).requireScore("a reward model");
    }

    /** The adapter that holds the reward model. */
    public String adapter() {
        return adapter;
    }

    @Override
    public double[] score(List<int[]> prompts, List<int[]> responses) {
        String before = model.activeAdapter();
        if (!before.equals(adapter)) {
            model.setAdapter(adapter);
        }
        try {
            ComputationGraph g = model.graph();
            ModelInfo info = ModelInfo.of(g, heads);
            info.requireScore("a reward model");
            TokenBatch.check(prompts, responses, info);
            double[] out = new double[prompts.size()];
            for (int from = 0; from < prompts.size(); from += Sequences.CHUNK) {
                int to = Math.min(prompts.size(), from + Sequences.CHUNK);
                TokenBatch b = TokenBatch.of(prompts.subList(from, to), responses.subList(from, to), info);
                GraphOutputs o = GraphOutputs.run(g, b, info, false, true);
                for (int i = 0; i < b.size(); i++) {
                    out[from + i] = o.sequenceScore(i);
                }
            }
            return out;
        } finally {
            if (!before.equals(adapter)) {
                model.setAdapter(before);
            }
        }
    }

    @Override
    public String toString() {
        return "RewardModel(adapter=" + adapter + ", " + heads + ")";
    }
}
