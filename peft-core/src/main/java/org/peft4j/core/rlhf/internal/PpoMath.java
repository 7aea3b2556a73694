package org.peft4j.core.rlhf.internal;

/**
 * PPO's per-token computations (Schulman et al. 2017, arXiv 1707.06347; as InstructGPT and TRL use
 * them for language models), on flat arrays of the valid (response) tokens.
 *
 * <p>Thread-safety: stateless.
 */
public final class PpoMath {

    private PpoMath() {
    }

    /**
     * Generalized advantage estimation over one response of {@code n} tokens:
     * {@code δ_t = r_t + γ·V_{t+1} − V_t} ({@code V_n = 0}),
     * {@code A_t = δ_t + γλ·A_{t+1}} ({@code A_n = 0}), i.e. {@code A_t = Σ_l (γλ)^l δ_{t+l}}.
     *
     * @return the advantages; the returns (value targets) are {@code A_t + V_t}
     */
    public static double[] gae(double[] rewards, double[] values, double gamma, double lambda) {
        int n = rewards.length;
        if (values.length != n) {
            throw new IllegalArgumentException(n + " rewards but " + values.length + " values");
        }
        double[] adv = new double[n];
        double last = 0;
        for (int t = n - 1; t >= 0; t--) {
            double next = t + 1 < n ? values[t + 1] : 0;
            double delta = rewards[t] + gamma * next - values[t];
            last = delta + gamma * lambda * last;
            adv[t] = last;
        }
        return adv;
    }

    /**
     * {@code (x − mean) / sqrt(var + 1e-8)} with the unbiased variance, in place; with fewer than two
     * values only the mean is removed.
     */
    public static void whiten(double[] x) {
        int n = x.length;
        if (n == 0) {
            return;
        }
        double mean = 0;
        for (double v : x) {
            mean += v;
        }
        mean /= n;
        double var = 0;
        for (double v : x) {
            var += (v - mean) * (v - mean);
        }
        double scale = n < 2 ? 1 : 1 / Math.sqrt(var / (n - 1) + 1e-8);
        for (int i = 0; i < n; i++) {
            x[i] = (x[i] - mean) * scale;
        }
    }

    /**
     * A clipped objective's mean over the tokens, its derivative per token and how often the
     * clipped branch was taken (strictly larger).
     *
     * @param loss mean loss
     * @param grad {@code ∂loss/∂input_i}
     * @param clipFraction share of tokens where the clipped term was strictly larger
     */
    public record Clipped(double loss, double[] grad, double clipFraction) {
    }

    /**
     * PPO's clipped policy loss: with {@code ρ_i = exp(ℓ_i − ℓold_i)},
     * {@code loss = mean_i max(−A_i·ρ_i, −A_i·clip(ρ_i, 1 − ε, 1 + ε))}; the derivative with respect
     * to {@code ℓ_i} is {@code −A_i·ρ_i / n} where the first term is the larger or they are equal, 0
     * where the clipped (constant) term is strictly larger.
     */
    public static Clipped clippedPolicyLoss(double[] logProbs, double[] oldLogProbs, double[] advantages,
                                            double clipRange) {
        int n = logProbs.length;
        double loss = 0;
        double[] g = new double[n];
        int clipped = 0;
        for (int i = 0; i < n; i++) {
            double ratio = Math.exp(logProbs[i] - oldLogProbs[i]);
            double a = advantages[i];
            double l1 = -a * ratio;
            double l2 = -a * Math.min(Math.max(ratio, 1 - clipRange), 1 + clipRange);
            if (l2 > l1) {
                loss += l2;
                clipped++;
            } else {
                loss += l1;
                g[i] = -a * ratio / n;
            }
        }
        return new Clipped(loss / n, g, (double) clipped / n);
    }

    /**
     * PPO's clipped value loss: with {@code v̂_i = clip(v_i, vold_i − c, vold_i + c)},
     * {@code loss = ½·mean_i max((v_i − R_i)², (v̂_i − R_i)²)}; derivative {@code (v_i − R_i) / n}
     * where the unclipped term is the larger or equal, 0 where the clipped one is strictly larger
     * (then {@code v_i} lies outside the clip range, where {@code v̂_i} is constant).
     */
    public static Clipped clippedValueLoss(double[] values, double[] oldValues, double[] returns, double clipRange) {
        int n = values.length;
        double loss = 0;
        double[] g = new double[n];
        int clipped = 0;
        for (int i = 0; i < n; i++) {
            double v = values[i];
            double vc = Math.min(Math.max(v, oldValues[i] - clipRange), oldValues[i] + clipRange);
            double l1 = (v - returns[i]) * (v - returns[i]);
            double l2 = (vc - returns[i]) * (vc - returns[i]);
            if (l2 > l1) {
                loss += l2;
                clipped++;
            } else {
                loss += l1;
                g[i] = (v - returns[i]) / n;
            }
        }
        return new Clipped(0.5 * loss / n, g, (double) clipped / n);
    }

    /**
     * The adaptive KL coefficient of Ziegler et al. (arXiv 1909.08593):
     * {@code e = clip(KL / target − 1, −0.2, 0.2)}, {@code β ← β·(1 + e·n / horizon)} after a batch
     * of {@code n} rollouts with mean KL {@code KL}.
     */
    public static double adaptKlCoefficient(double beta, double kl, double target, double horizon, int n) {
        double e = Math.max(-0.2, Math.min(0.2, kl / target - 1));
        return beta * (1 + e * n / horizon);
    }
}
