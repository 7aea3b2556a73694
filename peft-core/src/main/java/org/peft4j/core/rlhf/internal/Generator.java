package org.peft4j.core.rlhf.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.rlhf.SamplingConfig;

/**
 * Samples responses from a language model, all prompts of a batch together: at each step the
 * unfinished sequences run through the graph (no cache: the whole prefix, right-padded), and each
 * draws its next token from {@link TokenDistribution} at its last position with one uniform number
 * from {@code rnd}, in row order, so two models given generators with the same seed draw the same
 * numbers.
 *
 * <p>Thread-safety: uses the graph (one thread per graph); {@code rnd} is the caller's.
 */
public final class Generator {

    private Generator() {
    }

    /**
     * The responses, and for each response token the support it was drawn from (sorted ids; null
     * when the whole vocabulary).
     *
     * @param responses one per prompt, 1 to {@code maxNewTokens} tokens
     * @param supports {@code supports.get(i)[j]}: the support of response token {@code j} of prompt {@code i}
     */
    public record Generated(List<int[]> responses, List<int[][]> supports) {
    }

    /**
     * Samples one response per prompt.
     *
     * @throws IllegalArgumentException if a prompt is null, empty, holds an id outside the
     *     vocabulary, or leaves less than {@code maxNewTokens} of the context
     */
    public static Generated generate(ComputationGraph g, ModelInfo info, List<int[]> prompts, SamplingConfig s,
                                     Random rnd) {
        info.requireLanguageModel("generation");
        if (prompts == null || prompts.isEmpty()) {
            throw new IllegalArgumentException("no prompts given");
        }
        int n = prompts.size();
        int[][] seq = new int[n][];
        int[] len = new int[n];
        int[] promptLen = new int[n];
        int[][][] supports = new int[n][s.maxNewTokens()][];
        boolean[] done = new boolean[n];
        for (int i = 0; i < n; i++) {
            int[] p = TokenBatch.checkIds("prompt " + i, prompts.get(i), info);
            TokenBatch.checkPrompt("prompt " + i, p, s.maxNewTokens(), info);
            seq[i] = Arrays.copyOf(p, p.length + s.maxNewTokens());
            len[i] = p.length;
            promptLen[i] = p.length;
        }
        for (int step = 0; step < s.maxNewTokens(); step++) {
            List<Integer> active = new ArrayList<>();
            List<int[]> prefixes = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                if (!done[i]) {
                    active.add(i);
                    prefixes.add(Arrays.copyOf(seq[i], len[i]));
                }
            }
            if (active.isEmpty()) {
                break;
            }
            GraphOutputs out = GraphOutputs.run(g, TokenBatch.ofSequences(prefixes), info, true, false);
            for (int r = 0; r < active.size(); r++) {
                int i = active.get(r);
                int t = len[i] - 1;
                int[] support = TokenDistribution.topK(out.lm(), out.vocab(), out.time(), r, t, s.topK());
                TokenDistribution d = TokenDistribution.at(out.lm(), out.vocab(), out.time(), r, t, s.temperature(),
                        support, info.probabilityFloor());
                int token = draw(d, rnd.nextDouble());
                supports[i][step] = support;
                seq[i][len[i]++] = token;
                if (token == s.stopToken() || len[i] - promptLen[i] == s.maxNewTokens()) {
                    done[i] = true;
                }
            }
        }
        List<int[]> responses = new ArrayList<>(n);
        List<int[][]> sup = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int r = len[i] - promptLen[i];
            responses.add(Arrays.copyOfRange(seq[i], promptLen[i], len[i]));
            sup.add(Arrays.copyOf(supports[i], r));
        }
        return new Generated(responses, sup);
    }

    private static int draw(TokenDistribution d, double u) {
        double acc = 0;
        for (int j = 0; j < d.supportSize(); j++) {
            acc += d.probAt(j);
            if (u < acc) {
                return d.tokenAt(j);
            }
        }
        int best = 0;
        for (int j = 1; j < d.supportSize(); j++) {
            if (d.probAt(j) > d.probAt(best)) {
                best = j;
            }
        }
        return d.tokenAt(best); // u fell past the rounded cumulative sum
    }
}
