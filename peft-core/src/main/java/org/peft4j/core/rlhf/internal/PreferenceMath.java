package org.peft4j.core.rlhf.internal;

/**
 * The pairwise losses on sequence-level quantities and their derivatives, averaged over the
 * {@code n} pairs of a batch. {@code log σ} is evaluated without overflow:
 * {@code log σ(x) = −log(1 + e^{−x})} for {@code x ≥ 0}, {@code x − log(1 + e^{x})} below.
 *
 * <p>Thread-safety: stateless.
 */
public final class PreferenceMath {

    private PreferenceMath() {
    }

    /** {@code log σ(x)}. */
    public static double logSigmoid(double x) {
        return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
    }

    /** {@code σ(x)}. */
    public static double sigmoid(double x) {
        if (x >= 0) {
            return 1 / (1 + Math.exp(-x));
        }
        double e = Math.exp(x);
        return e / (1 + e);
    }

    /**
     * A pairwise loss, its derivatives with respect to the chosen and rejected inputs, and the
     * per-pair implicit rewards the metrics report.
     *
     * @param loss the mean loss
     * @param dChosen {@code ∂loss/∂(chosen input i)}
     * @param dRejected {@code ∂loss/∂(rejected input i)}
     * @param chosenRewards reward of each chosen response ({@code r(chosen)}, or DPO's {@code β·log(π/π_ref)})
     * @param rejectedRewards reward of each rejected response
     */
    public record PairLoss(double loss, double[] dChosen, double[] dRejected, double[] chosenRewards,
                           double[] rejectedRewards) {

        /** Share of pairs whose chosen reward is strictly higher. */
        public double accuracy() {
            int n = chosenRewards.length;
            int wins = 0;
            for (int i = 0; i < n; i++) {
                if (chosenRewards[i] > rejectedRewards[i]) {
                    wins++;
                }
            }
            return (double) wins / n;
        }

        /** Mean of {@code chosen − rejected} reward. */
        public double margin() {
            return mean(chosenRewards) - mean(rejectedRewards);
        }

        /** Mean chosen reward. */
        public double meanChosen() {
            return mean(chosenRewards);
        }

        /** Mean rejected reward. */
        public double meanRejected() {
            return mean(rejectedRewards);
        }

        private static double mean(double[] v) {
            double s = 0;
            for (double x : v) {
                s += x;
            }
            return s / v.length;
        }
    }

    /**
     * Bradley–Terry: {@code loss = mean_i[−log σ(r_c,i − r_r,i)] + c·mean_i[(r_c,i + r_r,i)²]} (the
     * second term, TRL's {@code center_rewards_coefficient}, keeps rewards centred on 0; {@code c = 0}
     * drops it). {@code ∂/∂r_c,i = (−σ(r_r,i − r_c,i) + 2c(r_c,i + r_r,i)) / n},
     * {@code ∂/∂r_r,i = (σ(r_r,i − r_c,i) + 2c(r_c,i + r_r,i)) / n}.
     */
    public static PairLoss bradleyTerry(double[] chosen, double[] rejected, double centerCoefficient) {
        int n = checkPairs(chosen, rejected);
        double loss = 0;
        double[] dc = new double[n];
        double[] dr = new double[n];
        for (int i = 0; i < n; i++) {
            double delta = chosen[i] - rejected[i];
            double sum = chosen[i] + rejected[i];
            loss += -logSigmoid(delta) + centerCoefficient * sum * sum;
            double s = sigmoid(-delta);
            dc[i] = (-s + 2 * centerCoefficient * sum) / n;
            dr[i] = (s + 2 * centerCoefficient * sum) / n;
        }
        return new PairLoss(loss / n, dc, dr, chosen.clone(), rejected.clone());
    }

    /**
     * DPO's sigmoid loss with label smoothing {@code ε} (conservative DPO): with
     * {@code h_i = β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]},
     * {@code loss = mean_i[−(1 − ε)·log σ(h_i) − ε·log σ(−h_i)]},
     * {@code ∂loss/∂log π(y_w) = β·(−(1 − ε)·σ(−h_i) + ε·σ(h_i)) / n} and the negative of it for
     * {@code log π(y_l)}. Implicit rewards: {@code β·(log π − log π_ref)}.
     */
    public static PairLoss dpo(double[] policyChosen, double[] policyRejected, double[] referenceChosen,
                               double[] referenceRejected, double beta, double labelSmoothing) {
        int n = checkPairs(policyChosen, policyRejected);
        checkPairs(referenceChosen, referenceRejected);
        if (referenceChosen.length != n) {
            throw new IllegalArgumentException(n + " policy pairs but " + referenceChosen.length + " reference pairs");
        }
        double loss = 0;
        double[] dc = new double[n];
        double[] dr = new double[n];
        double[] rc = new double[n];
        double[] rr = new double[n];
        for (int i = 0; i < n; i++) {
            rc[i] = beta * (policyChosen[i] - referenceChosen[i]);
            rr[i] = beta * (policyRejected[i] - referenceRejected[i]);
            double h = rc[i] - rr[i];
            loss += -(1 - labelSmoothing) * logSigmoid(h) - labelSmoothing * logSigmoid(-h);
            double dh = -(1 - labelSmoothing) * sigmoid(-h) + labelSmoothing * sigmoid(h);
            dc[i] = beta * dh / n;
            dr[i] = -beta * dh / n;
        }
        return new PairLoss(loss / n, dc, dr, rc, rr);
    }

    private static int checkPairs(double[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException(a.length + " chosen but " + b.length + " rejected values");
        }
        if (a.length == 0) {
            throw new IllegalArgumentException("no pairs");
        }
        return a.length;
    }
}
