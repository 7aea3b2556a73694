package org.peft4j.core.rlhf;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.internal.Checks;
import org.peft4j.core.rlhf.internal.ExternalBackprop;
import org.peft4j.core.rlhf.internal.Generator;
import org.peft4j.core.rlhf.internal.GraphOutputs;
import org.peft4j.core.rlhf.internal.ModelInfo;
import org.peft4j.core.rlhf.internal.PpoMath;
import org.peft4j.core.rlhf.internal.TokenBatch;
import org.peft4j.core.rlhf.internal.TokenDistribution;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Proximal policy optimization of a wrapped language model's active adapter against a reward, as
 * InstructGPT (Ouyang et al. 2022, arXiv 2203.02155) and TRL's {@code PPOTrainer} do it. One
 * {@link #step} is one iteration:
 * <ol>
 *   <li><b>Rollout.</b> One response per prompt is sampled from the policy {@code π} with
 *       {@link PpoConfig#sampling()}: {@code π(a) ∝ exp(z_a/τ)} over the top-k support {@code S} of
 *       each step. This sampling distribution is the policy PPO optimizes (its log-probabilities,
 *       ratios and gradients below use the same {@code τ} and the same {@code S}).</li>
 *   <li><b>Rewards.</b> The reference {@code π_ref} is the same model inside
 *       {@link PeftModel#disableAdapter()} at the same temperature over the whole vocabulary. Each
 *       response token gets {@code r_t = −β·(log π(a_t) − log π_ref(a_t))}, and the last one adds the
 *       {@link RewardFunction}'s score of the response.</li>
 *   <li><b>Advantages.</b> The value {@code V_t} of the state before token {@code t} is the
 *       {@link ScoreHead} of the policy's own adapter at the position that predicts {@code a_t} (a
 *       value head on the shared trunk). GAE: {@code δ_t = r_t + γV_{t+1} − V_t},
 *       {@code A_t = δ_t + γλA_{t+1}}, returns {@code A_t + V_t}; advantages are whitened over the
 *       batch's tokens.</li>
 *   <li><b>Updates.</b> {@code epochs} passes of {@code miniBatches} shuffled minibatches, each one
 *       update of {@code mean max(−A·ρ, −A·clip(ρ, 1 ± ε)) + c_v·½·mean max((V − R)², (clip(V,
 *       V_old ± ε_v) − R)²)} with {@code ρ = π(a)/π_old(a)}, means over the minibatch's response
 *       tokens. Its gradient with respect to the logits and values is computed here and
 *       backpropagated through the graph's own layers by one {@code fit}.</li>
 *   <li><b>KL coefficient.</b> Fixed, or adapted after the iteration (Ziegler et al.).</li>
 * </ol>
 * The value head must train: wrap with {@code modulesToSave(ScoreHead.NAME)} on a graph made by
 * {@link ScoreHead#decoder}. The reward can come from a {@link RewardModel} held by a second adapter
 * of the same {@link PeftModel}, so one copy of the base weights serves the policy, the reference,
 * the value function and the reward model.
 *
 * <p>Thread-safety: not thread-safe; trains the model like {@code graph().fit} (one thread).
 */
public final class PpoTrainer {
    private static final Logger LOG = LoggerFactory.getLogger(PpoTrainer.class);

    private final PeftModel model;
    private final RewardFunction reward;
    private final PpoConfig config;
    private final Random rnd;
    private double beta;
    private int iteration;

    /**
     * @throws IllegalArgumentException if the graph lacks the next-token output or a per-position
     *     value head, the value head does not train, the reference would not be the base model, or
     *     the model has dropout
     * @throws IllegalStateException if the adapters are merged
     */
    public PpoTrainer(PeftModel model, RewardFunction reward, PpoConfig config) {
        this.model = Objects.requireNonNull(model, "model must not be null");
        this.reward = Objects.requireNonNull(reward, "reward must not be null");
        this.config = Objects.requireNonNull(config, "config must not be null");
        ModelInfo info = ModelInfo.of(model.graph(), config.heads());
        info.requireLanguageModel("PpoTrainer");
        info.requireScore("PpoTrainer (the value head)");
        if (!info.scorePerToken()) {
            throw new IllegalArgumentException("PpoTrainer needs a value per position, but the scalar output \""
                    + config.heads().score() + "\" is pooled; build the graph with ScoreHead.decoder(base)");
        }
        if (!model.config().modulesToSave().contains(config.heads().score())) {
            throw new IllegalArgumentException("PpoTrainer trains the value head \"" + config.heads().score()
                    + "\" with the policy, but it is frozen in the active adapter; wrap with modulesToSave(\""
                    + config.heads().score() + "\")");
        }
        Checks.requireReference(model, config.heads(), "PpoTrainer");
        Checks.requireNoDropout(model, "PpoTrainer");
        this.rnd = new Random(config.seed());
        this.beta = config.klCoefficient();
    }

    /** The KL coefficient the next rollout will be penalized with. */
    public double klCoefficient() {
        return beta;
    }

    /**
     * One iteration on {@code prompts} (one rollout each): rollout, rewards, advantages,
     * {@code epochs × miniBatches} updates, KL coefficient update.
     *
     * @throws IllegalArgumentException if a prompt is empty, holds an id outside the vocabulary,
     *     leaves less than {@code maxNewTokens} of the context, there are fewer prompts than
     *     minibatches, or the reward function returns a wrong number of scores or a non-finite one
     */
    public PpoMetrics step(List<int[]> prompts) {
        if (prompts != null && prompts.size() < config.miniBatches()) {
            throw new IllegalArgumentException(prompts.size() + " prompts cannot make " + config.miniBatches()
                    + " minibatches; give at least one prompt per minibatch");
        }
        Rollout r = rollout(prompts);
        int n = r.batch.size();
        double pg = 0;
        double vf = 0;
        double clip = 0;
        double vclip = 0;
        double approxKl = 0;
        int updates = 0;
        for (int e = 0; e < config.epochs(); e++) {
            int[] perm = permutation(n);
            for (int m = 0; m < config.miniBatches(); m++) {
                int from = m * n / config.miniBatches();
                int to = (m + 1) * n / config.miniBatches();
                int[] rows = java.util.Arrays.copyOfRange(perm, from, to);
                Prepared p = prepare(r, rows);
                ExternalBackprop.fit(model.graph(), p.batch.ids(p.info.dataType()), p.batch.mask(p.info.dataType()),
                        p.gradients);
                pg += p.policy.loss();
                vf += p.value.loss();
                clip += p.policy.clipFraction();
                vclip += p.value.clipFraction();
                approxKl += p.approxKl;
                updates++;
            }
        }
        double usedBeta = beta;
        if (config.isAdaptiveKl()) {
            beta = PpoMath.adaptKlCoefficient(beta, r.meanKl, config.targetKl(), config.klHorizon(), n);
        }
        PpoMetrics m = new PpoMetrics(r.meanScore, r.meanKl, r.meanEntropy, usedBeta, -usedBeta * r.meanKl,
                pg / updates, vf / updates, clip / updates, vclip / updates, approxKl / updates, r.meanLength);
        iteration++;
        LOG.debug("PPO iteration {}: {}", iteration, m);
        return m;
    }

    private int[] permutation(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /**
     * A batch of rollouts with everything the updates need, per response token {@code j} of row
     * {@code i}: the support it was drawn from, {@code log π_old}, {@code V_old}, the whitened
     * advantage and the return.
     */
    static final class Rollout {
        TokenBatch batch;
        List<int[]> prompts;
        List<int[]> responses;
        List<int[][]> supports;
        double[][] oldLogProbs;
        double[][] refLogProbs;
        double[][] oldValues;
        double[][] advantages;
        double[][] returns;
        double[] scores;
        double meanScore;
        double meanKl;
        double meanEntropy;
        double meanLength;
    }

    /** Samples, scores and evaluates one rollout per prompt with the current policy. */
    Rollout rollout(List<int[]> prompts) {
        ComputationGraph g = model.graph();
        ModelInfo info = ModelInfo.of(g, config.heads());
        double tau = config.sampling().temperature();
        Generator.Generated gen = Generator.generate(g, info, prompts, config.sampling(), rnd);
        Rollout r = new Rollout();
        r.prompts = List.copyOf(prompts);
        r.responses = gen.responses();
        r.supports = gen.supports();
        r.batch = TokenBatch.of(prompts, r.responses, info);
        GraphOutputs pol = GraphOutputs.run(g, r.batch, info, true, true);
        GraphOutputs ref;
        try (PeftModel.AdapterScope off = model.disableAdapter()) {
            ref = GraphOutputs.run(g, r.batch, info, true, false);
        }
        r.scores = checkedScores(reward.score(r.prompts, r.responses), prompts.size());
        int n = prompts.size();
        r.oldLogProbs = new double[n][];
        r.refLogProbs = new double[n][];
        r.oldValues = new double[n][];
        r.advantages = new double[n][];
        r.returns = new double[n][];
        double entropy = 0;
        long tokens = 0;
        double klSum = 0;
        for (int i = 0; i < n; i++) {
            int len = r.batch.responseLength(i);
            double[] lp = new double[len];
            double[] refLp = new double[len];
            double[] v = new double[len];
            double[] rewards = new double[len];
            for (int j = 0; j < len; j++) {
                int a = pol.responseToken(i, j);
                TokenDistribution d = pol.distribution(i, j, tau, r.supports.get(i)[j]);
                lp[j] = d.logProb(a);
                entropy += d.entropy();
                refLp[j] = ref.distribution(i, j, tau, null).logProb(a);
                v[j] = pol.score(i, pol.responsePosition(i, j));
                double kl = lp[j] - refLp[j];
                klSum += kl;
                rewards[j] = -beta * kl;
            }
            rewards[len - 1] += r.scores[i];
            double[] adv = PpoMath.gae(rewards, v, config.gamma(), config.lambda());
            double[] ret = new double[len];
            for (int j = 0; j < len; j++) {
                ret[j] = adv[j] + v[j];
            }
            r.oldLogProbs[i] = lp;
            r.refLogProbs[i] = refLp;
            r.oldValues[i] = v;
            r.advantages[i] = adv;
            r.returns[i] = ret;
            tokens += len;
        }
        whitenAcrossRows(r.advantages, tokens);
        double scoreSum = 0;
        for (double s : r.scores) {
            scoreSum += s;
        }
        r.meanScore = scoreSum / n;
        r.meanKl = klSum / n;
        r.meanEntropy = entropy / tokens;
        r.meanLength = (double) tokens / n;
        return r;
    }

    private static void whitenAcrossRows(double[][] rows, long tokens) {
        double[] flat = new double[Math.toIntExact(tokens)];
        int k = 0;
        for (double[] row : rows) {
            System.arraycopy(row, 0, flat, k, row.length);
            k += row.length;
        }
        PpoMath.whiten(flat);
        k = 0;
        for (double[] row : rows) {
            System.arraycopy(flat, k, row, 0, row.length);
            k += row.length;
        }
    }

    private static double[] checkedScores(double[] scores, int n) {
        if (scores == null || scores.length != n) {
            throw new IllegalArgumentException("the reward function returned " + (scores == null ? "null"
                    : scores.length + " scores") + " for " + n + " responses; it must return one score per response");
        }
        for (int i = 0; i < n; i++) {
            if (!Double.isFinite(scores[i])) {
                throw new IllegalArgumentException("the reward function returned " + scores[i] + " for response " + i
                        + "; rewards must be finite");
            }
        }
        return scores.clone();
    }

    private record Prepared(ModelInfo info, TokenBatch batch, PpoMath.Clipped policy, PpoMath.Clipped value,
                            double approxKl, double loss, INDArray[] gradients) {
    }

    /** The PPO loss on rows {@code rows} of {@code r} under the current parameters, and its gradients. */
    private Prepared prepare(Rollout r, int[] rows) {
        ComputationGraph g = model.graph();
        ModelInfo info = ModelInfo.of(g, config.heads());
        double tau = config.sampling().temperature();
        TokenBatch mb = r.batch.select(rows);
        GraphOutputs o = GraphOutputs.run(g, mb, info, true, true);
        int tokens = 0;
        for (int row : rows) {
            tokens += r.oldLogProbs[row].length;
        }
        double[] newLp = new double[tokens];
        double[] oldLp = new double[tokens];
        double[] adv = new double[tokens];
        double[] v = new double[tokens];
        double[] vOld = new double[tokens];
        double[] ret = new double[tokens];
        List<TokenDistribution> dists = new ArrayList<>(tokens);
        int k = 0;
        double approxKl = 0;
        for (int i = 0; i < rows.length; i++) {
            int row = rows[i];
            for (int j = 0; j < r.oldLogProbs[row].length; j++) {
                TokenDistribution d = o.distribution(i, j, tau, r.supports.get(row)[j]);
                dists.add(d);
                newLp[k] = d.logProb(o.responseToken(i, j));
                oldLp[k] = r.oldLogProbs[row][j];
                adv[k] = r.advantages[row][j];
                v[k] = o.score(i, o.responsePosition(i, j));
                vOld[k] = r.oldValues[row][j];
                ret[k] = r.returns[row][j];
                approxKl += 0.5 * (newLp[k] - oldLp[k]) * (newLp[k] - oldLp[k]);
                k++;
            }
        }
        PpoMath.Clipped pg = PpoMath.clippedPolicyLoss(newLp, oldLp, adv, config.clipRange());
        PpoMath.Clipped vf = PpoMath.clippedValueLoss(v, vOld, ret, config.valueClipRange());
        double[] lmGrad = o.zeroLanguageModelGradient();
        double[] scoreGrad = o.zeroScoreGradient();
        k = 0;
        for (int i = 0; i < rows.length; i++) {
            for (int j = 0; j < r.oldLogProbs[rows[i]].length; j++) {
                int t = o.responsePosition(i, j);
                dists.get(k).addLogProbGradient(lmGrad, o.vocab(), o.time(), i, t, o.responseToken(i, j),
                        pg.grad()[k], tau);
                scoreGrad[o.scoreIndex(i, t)] += config.valueCoefficient() * vf.grad()[k];
                k++;
            }
        }
        Map<String, double[]> grads = new HashMap<>();
        grads.put(config.heads().languageModel(), lmGrad);
        grads.put(config.heads().score(), scoreGrad);
        return new Prepared(info, mb, pg, vf, approxKl / tokens, pg.loss() + config.valueCoefficient() * vf.loss(),
                o.gradients(grads));
    }

    /** The PPO loss on rows {@code rows} of a rollout, without its gradient. */
    double loss(Rollout r, int[] rows) {
        return prepare(r, rows).loss;
    }

    /** The PPO loss on rows {@code rows} of a rollout and its gradient, without an update. */
    Objective objective(Rollout r, int[] rows) {
        Prepared p = prepare(r, rows);
        INDArray grad = ExternalBackprop.gradient(model.graph(), p.batch.ids(p.info.dataType()),
                p.batch.mask(p.info.dataType()), p.gradients);
        return new Objective(p.loss, grad);
    }

    @Override
    public String toString() {
        return "PpoTrainer(" + config + ", reward=" + reward + ", klCoefficient=" + beta + ")";
    }
}
