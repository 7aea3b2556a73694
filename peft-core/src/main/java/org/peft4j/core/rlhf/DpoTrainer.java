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
 * Direct preference optimization (Rafailov et al. 2023, arXiv 2305.18290) of a wrapped language
 * model's active adapter:
 * <pre>
 * h = β·[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]
 * loss = mean[−(1 − ε)·log σ(h) − ε·log σ(−h)]
 * </pre>
 * with {@code π_ref} the same model inside {@link PeftModel#disableAdapter()}: the base weights,
 * without a second copy of them. A freshly wrapped adapter computes the base model exactly, so the
 * first loss is {@code log 2}. Sequence log-probabilities sum over the response tokens (see
 * {@link Sequences}); {@code β} and {@code ε} come from {@link DpoConfig}.
 *
 * <pre>{@code
 * DpoTrainer dpo = new DpoTrainer(Peft.wrap(base, lora), DpoConfig.builder().beta(0.1).build());
 * for (List<PreferencePair> batch : batches) DpoMetrics m = dpo.step(batch);
 * }</pre>
 *
 * <p>Each {@link #step} runs the reference and the policy in inference mode, computes the loss and
 * {@code ∂loss/∂z} of the next-token logits here, and backpropagates that through the graph's own
 * layers by one {@code fit} (the graph's updater, listeners and iteration count). Requirements,
 * checked at construction: a next-token output, an adapter to disable that leaves the base model
 * (no trained module other than the scalar head), no dropout.
 *
 * <p>Thread-safety: not thread-safe; trains the model like {@code graph().fit} (one thread).
 */
public final class DpoTrainer {

    private final PeftModel model;
    private final DpoConfig config;

    /**
     * @throws IllegalArgumentException if the graph has no next-token output, the reference would
     *     not be the base model, or the model has dropout
     * @throws IllegalStateException if the adapters are merged
     */
    public DpoTrainer(PeftModel model, DpoConfig config) {
        this.model = Objects.requireNonNull(model, "model must not be null");
        this.config = Objects.requireNonNull(config, "config must not be null");
        ModelInfo.of(model.graph(), config.heads()).requireLanguageModel("DpoTrainer");
        Checks.requireReference(model, config.heads(), "DpoTrainer");
        Checks.requireNoDropout(model, "DpoTrainer");
    }

    /** One update on {@code pairs}; the metrics are those of the model before the update. */
    public DpoMetrics step(List<PreferencePair> pairs) {
        Prepared p = prepare(pairs);
        ComputationGraph g = model.graph();
        ExternalBackprop.fit(g, p.batch.ids(p.info.dataType()), p.batch.mask(p.info.dataType()), p.gradients);
        return metrics(p.loss);
    }

    /** The metrics on {@code pairs} (held-out pairs, typically), without an update. */
    public DpoMetrics evaluate(List<PreferencePair> pairs) {
        if (pairs == null || pairs.isEmpty()) {
            throw new IllegalArgumentException("no preference pairs given");
        }
        TokenBatch.ofPairs(pairs, ModelInfo.of(model.graph(), config.heads())); // every pair checked, named by its index
        int n = pairs.size();
        double[][] lp = new double[4][n];
        int chunk = Sequences.CHUNK / 2;
        for (int from = 0; from < n; from += chunk) {
            int to = Math.min(n, from + chunk);
            double[][] part = logProbs(pairs.subList(from, to), null);
            for (int k = 0; k < 4; k++) {
                System.arraycopy(part[k], 0, lp[k], from, to - from);
            }
        }
        return metrics(PreferenceMath.dpo(lp[0], lp[1], lp[2], lp[3], config.beta(), config.labelSmoothing()));
    }

    /** The loss on {@code pairs} and its gradient, without an update. */
    Objective objective(List<PreferencePair> pairs) {
        Prepared p = prepare(pairs);
        INDArray grad = ExternalBackprop.gradient(model.graph(), p.batch.ids(p.info.dataType()),
                p.batch.mask(p.info.dataType()), p.gradients);
        return new Objective(p.loss.loss(), grad);
    }

    /**
     * Policy and reference log-probabilities of the chosen and rejected responses:
     * {@code [policy chosen, policy rejected, reference chosen, reference rejected]}; the policy's
     * pass goes to {@code policyOut[0]} when that is not null.
     */
    private double[][] logProbs(List<PreferencePair> pairs, GraphOutputs[] policyOut) {
        ComputationGraph g = model.graph();
        ModelInfo info = ModelInfo.of(g, config.heads());
        TokenBatch b = TokenBatch.ofPairs(pairs, info);
        GraphOutputs ref;
        try (PeftModel.AdapterScope off = model.disableAdapter()) {
            ref = GraphOutputs.run(g, b, info, true, false);
        }
        GraphOutputs pol = GraphOutputs.run(g, b, info, true, false);
        if (policyOut != null) {
            policyOut[0] = pol;
        }
        int n = pairs.size();
        double[][] lp = new double[4][n];
        for (int i = 0; i < n; i++) {
            lp[0][i] = pol.sequenceLogProb(i);
            lp[1][i] = pol.sequenceLogProb(n + i);
            lp[2][i] = ref.sequenceLogProb(i);
            lp[3][i] = ref.sequenceLogProb(n + i);
        }
        return lp;
    }

    private record Prepared(ModelInfo info, TokenBatch batch, PreferenceMath.PairLoss loss, INDArray[] gradients) {
    }

    private Prepared prepare(List<PreferencePair> pairs) {
        GraphOutputs[] pol = new GraphOutputs[1];
        double[][] lp = logProbs(pairs, pol);
        PreferenceMath.PairLoss loss = PreferenceMath.dpo(lp[0], lp[1], lp[2], lp[3], config.beta(),
                config.labelSmoothing());
        GraphOutputs o = pol[0];
        int n = pairs.size();
        double[] grad = o.zeroLanguageModelGradient();
        for (int i = 0; i < n; i++) {
            o.addSequenceLogProbGradient(grad, i, loss.dChosen()[i]);
            o.addSequenceLogProbGradient(grad, n + i, loss.dRejected()[i]);
        }
        return new Prepared(o.info(), o.batch(), loss, o.gradients(Map.of(config.heads().languageModel(), grad)));
    }

    private static DpoMetrics metrics(PreferenceMath.PairLoss l) {
        return new DpoMetrics(l.loss(), l.meanChosen(), l.meanRejected(), l.accuracy(), l.margin());
    }

    @Override
    public String toString() {
        return "DpoTrainer(" + config + ")";
    }
}
