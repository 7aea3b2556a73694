package org.peft4j.core.rlhf;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.internal.Checks;
import org.peft4j.core.rlhf.internal.ExternalBackprop;
import org.peft4j.core.rlhf.internal.GraphOutputs;
import org.peft4j.core.rlhf.internal.ModelInfo;
import org.peft4j.core.rlhf.internal.PreferenceMath;
import org.peft4j.core.rlhf.internal.TokenBatch;

/**
 * Trains a reward model on preference pairs with the pairwise Bradley–Terry loss
 * {@code −log σ(r(x, y_w) − r(x, y_l))} (InstructGPT's reward-model loss; TRL's
 * {@code RewardTrainer}): the reward is the {@link ScoreHead} of the model's active adapter, read at
 * the last token of {@code prompt ++ response} on a decoder, pooled on an encoder. Each
 * {@link #step} is one update of the active adapter and the head (wrap with
 * {@code modulesToSave(ScoreHead.NAME)}) by the graph's own updater.
 *
 * <pre>{@code
 * PeftModel rm = Peft.wrap(ScoreHead.decoder(base), lora.toBuilder().modulesToSave(ScoreHead.NAME).build());
 * RewardTrainer t = new RewardTrainer(rm, RewardConfig.builder().build());
 * for (List<PreferencePair> batch : batches) t.step(batch);
 * RewardMetrics heldOut = t.evaluate(heldOutPairs);
 * }</pre>
 *
 * <p>How the gradient reaches the parameters: an inference pass gives the rewards, the loss and
 * {@code dL/dr} are computed here, and {@code dL/dr} is backpropagated through the graph's own
 * layers by one {@code fit} in which the output layers carry a loss whose gradient is exactly that
 * (the layers' losses are restored afterwards). The model must have no dropout, so that both
 * passes compute the same function.
 *
 * <p>Thread-safety: not thread-safe; trains the model like {@code graph().fit} (one thread).
 */
public final class RewardTrainer {

    private final PeftModel model;
    private final RewardConfig config;

    /**
     * @throws IllegalArgumentException if the graph has no scalar output or the model has dropout
     */
    public RewardTrainer(PeftModel model, RewardConfig config) {
        this.model = Objects.requireNonNull(model, "model must not be null");
        this.config = Objects.requireNonNull(config, "config must not be null");
        ModelInfo.of(model.graph(), config.heads()).requireScore("RewardTrainer");
        Checks.requireNoDropout(model, "RewardTrainer");
    }

    /** One update on {@code pairs}; the metrics are those of the model before the update. */
    public RewardMetrics step(List<PreferencePair> pairs) {
        ComputationGraph g = model.graph();
        Prepared p = prepare(g, pairs);
        ExternalBackprop.fit(g, p.batch.ids(p.info.dataType()), p.batch.mask(p.info.dataType()), p.gradients);
        return metrics(p.loss);
    }

    /** The metrics on {@code pairs} (held-out pairs, typically), without an update. */
    public RewardMetrics evaluate(List<PreferencePair> pairs) {
        if (pairs == null || pairs.isEmpty()) {
            throw new IllegalArgumentException("no preference pairs given");
        }
        ComputationGraph g = model.graph();
        ModelInfo info = ModelInfo.of(g, config.heads());
        TokenBatch.ofPairs(pairs, info); // every pair checked, named by its index
        int n = pairs.size();
        double[] rc = new double[n];
        double[] rr = new double[n];
        int chunk = Sequences.CHUNK / 2;
        for (int from = 0; from < n; from += chunk) {
            int to = Math.min(n, from + chunk);
            TokenBatch b = TokenBatch.ofPairs(pairs.subList(from, to), info);
            GraphOutputs o = GraphOutputs.run(g, b, info, false, true);
            for (int i = 0; i < to - from; i++) {
                rc[from + i] = o.sequenceScore(i);
                rr[from + i] = o.sequenceScore(to - from + i);
            }
        }
        return metrics(PreferenceMath.bradleyTerry(rc, rr, config.centerRewardsCoefficient()));
    }

    /** The loss on {@code pairs} and its gradient, without an update. */
    Objective objective(List<PreferencePair> pairs) {
        ComputationGraph g = model.graph();
        Prepared p = prepare(g, pairs);
        INDArray grad = ExternalBackprop.gradient(g, p.batch.ids(p.info.dataType()), p.batch.mask(p.info.dataType()),
                p.gradients);
        return new Objective(p.loss.loss(), grad);
    }

    private record Prepared(ModelInfo info, TokenBatch batch, PreferenceMath.PairLoss loss, INDArray[] gradients) {
    }

    private Prepared prepare(ComputationGraph g, List<PreferencePair> pairs) {
        ModelInfo info = ModelInfo.of(g, config.heads());
        TokenBatch b = TokenBatch.ofPairs(pairs, info);
        GraphOutputs o = GraphOutputs.run(g, b, info, false, true);
        int n = pairs.size();
        double[] rc = new double[n];
        double[] rr = new double[n];
        for (int i = 0; i < n; i++) {
            rc[i] = o.sequenceScore(i);
            rr[i] = o.sequenceScore(n + i);
        }
        PreferenceMath.PairLoss loss = PreferenceMath.bradleyTerry(rc, rr, config.centerRewardsCoefficient());
        double[] gs = o.zeroScoreGradient();
        for (int i = 0; i < n; i++) {
            gs[o.scoreIndex(i, b.length(i) - 1)] += loss.dChosen()[i];
            gs[o.scoreIndex(n + i, b.length(n + i) - 1)] += loss.dRejected()[i];
        }
        return new Prepared(info, b, loss, o.gradients(Map.of(config.heads().score(), gs)));
    }

    private static RewardMetrics metrics(PreferenceMath.PairLoss l) {
        return new RewardMetrics(l.loss(), l.accuracy(), l.margin(), l.meanChosen(), l.meanRejected());
    }

    @Override
    public String toString() {
        return "RewardTrainer(" + config + ")";
    }
}
