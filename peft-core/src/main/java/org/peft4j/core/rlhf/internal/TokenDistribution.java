package org.peft4j.core.rlhf.internal;

import java.util.Arrays;

/**
 * The sampling distribution at one position of a language model and its derivatives:
 * {@code π(v) = exp(z_v/τ) / Σ_{u∈S} exp(z_u/τ)} for {@code v} in the support {@code S} (the
 * {@code k} most probable tokens, or the whole vocabulary), 0 elsewhere, where {@code z} are the
 * head's logits and {@code τ} the temperature. It is computed from the head's softmax
 * probabilities {@code p = softmax(z)}: {@code log p_v / τ} differs from {@code z_v / τ} by a
 * constant that cancels. Probabilities below {@code floor} (the smallest normal number of the
 * network's data type, where its softmax underflows) count as {@code floor}.
 *
 * <p>Derivative of a log-probability with respect to the logits, the form every objective here
 * backpropagates: {@code ∂ log π(a) / ∂z_v = (δ_{va} − π(v)) / τ} for {@code v ∈ S}, 0 outside
 * ({@code S} is held fixed: it is the set the token was drawn from).
 *
 * <p>Thread-safety: immutable.
 */
public final class TokenDistribution {

    private final int[] support;
    private final double[] logPi;

    private TokenDistribution(int[] support, double[] logPi) {
        this.support = support;
        this.logPi = logPi;
    }

    /**
     * The distribution at position {@code t} of row {@code row} of {@code lm} ({@link GraphOutputs}
     * layout), over {@code support} (sorted ids, or null for the whole vocabulary).
     */
    public static TokenDistribution at(double[] lm, int vocab, int time, int row, int t, double temperature,
                                       int[] support, double floor) {
        int n = support == null ? vocab : support.length;
        double[] w = new double[n];
        double max = Double.NEGATIVE_INFINITY;
        int base = row * vocab * time + t;
        for (int j = 0; j < n; j++) {
            int v = support == null ? j : support[j];
            w[j] = Math.log(Math.max(lm[base + v * time], floor)) / temperature;
            max = Math.max(max, w[j]);
        }
        double sum = 0;
        for (int j = 0; j < n; j++) {
            sum += Math.exp(w[j] - max);
        }
        double lse = max + Math.log(sum);
        for (int j = 0; j < n; j++) {
            w[j] -= lse;
        }
        return new TokenDistribution(support, w);
    }

    /**
     * The {@code k} most probable token ids at position {@code t} of row {@code row} (ties to the
     * lower id), sorted by id; null when {@code k} is 0 or covers the vocabulary.
     */
    public static int[] topK(double[] lm, int vocab, int time, int row, int t, int k) {
        if (k <= 0 || k >= vocab) {
            return null;
        }
        int base = row * vocab * time + t;
        Integer[] ids = new Integer[vocab];
        for (int v = 0; v < vocab; v++) {
            ids[v] = v;
        }
        Arrays.sort(ids, (a, b) -> {
            int c = Double.compare(lm[base + b * time], lm[base + a * time]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        int[] s = new int[k];
        for (int j = 0; j < k; j++) {
            s[j] = ids[j];
        }
        Arrays.sort(s);
        return s;
    }

    private int index(int token) {
        if (support == null) {
            return token;
        }
        int j = Arrays.binarySearch(support, token);
        if (j < 0) {
            throw new IllegalStateException("token " + token + " is outside the support " + Arrays.toString(support));
        }
        return j;
    }

    /** {@code log π(token)}. */
    public double logProb(int token) {
        return logPi[index(token)];
    }

    /** {@code −Σ π log π}. */
    public double entropy() {
        double h = 0;
        for (double l : logPi) {
            h -= Math.exp(l) * l;
        }
        return h;
    }

    /**
     * {@code KL(this ‖ other) = Σ_v π(v)·(log π(v) − log π_other(v))} over this support; {@code other}
     * must cover it (the whole vocabulary does).
     */
    public double klTo(TokenDistribution other) {
        double kl = 0;
        for (int j = 0; j < logPi.length; j++) {
            kl += Math.exp(logPi[j]) * (logPi[j] - other.logProb(tokenAt(j)));
        }
        return kl;
    }

    /** Number of tokens in the support. */
    public int supportSize() {
        return logPi.length;
    }

    /** The token id of support entry {@code j}. */
    public int tokenAt(int j) {
        return support == null ? j : support[j];
    }

    /** {@code π} of support entry {@code j}. */
    public double probAt(int j) {
        return Math.exp(logPi[j]);
    }

    /**
     * Adds {@code coef · ∂ log π(token) / ∂z} to {@code grad} at position {@code t} of row
     * {@code row} ({@link GraphOutputs} layout).
     */
    public void addLogProbGradient(double[] grad, int vocab, int time, int row, int t, int token, double coef,
                                   double temperature) {
        if (coef == 0) {
            return;
        }
        int base = row * vocab * time + t;
        double c = coef / temperature;
        for (int j = 0; j < logPi.length; j++) {
            grad[base + tokenAt(j) * time] -= c * Math.exp(logPi[j]);
        }
        grad[base + token * time] += c;
    }
}
