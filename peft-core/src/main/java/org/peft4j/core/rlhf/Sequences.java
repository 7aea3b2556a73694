package org.peft4j.core.rlhf;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.internal.Generator;
import org.peft4j.core.rlhf.internal.GraphOutputs;
import org.peft4j.core.rlhf.internal.ModelInfo;
import org.peft4j.core.rlhf.internal.TokenBatch;

/**
 * Log-probabilities and sampling of responses with a language model: a plain graph, or a wrapped
 * one ({@code peft.graph()}; inside {@code peft.disableAdapter()} that is the reference model).
 * The graph is read through {@link Heads} (default: peft4j's decoder, output {@code head}).
 *
 * <p>{@link #referenceKl} measures how far a wrapped model's adapter has moved its distribution.
 *
 * <p>{@link #logProbs}: {@code log π(y | x) = Σ_j log p(y_j | x, y_<j)}, summed over the response
 * tokens only (prompt tokens and padding excluded), computed in batches of right-padded sequences
 * in inference mode. Probabilities below the smallest normal number of the network's data type
 * (where its softmax underflows: about {@code e^−87} in float) count as that number.
 *
 * <p>Thread-safety: stateless; uses the graph like {@code output} does (one thread per graph).
 */
public final class Sequences {

    /** Sequences run through the graph together. */
    static final int CHUNK = 64;

    private Sequences() {
    }

    /** {@link #logProbs(ComputationGraph, Heads, List, List)} with {@link Heads#DEFAULT}. */
    public static double[] logProbs(ComputationGraph graph, List<int[]> prompts, List<int[]> responses) {
        return logProbs(graph, Heads.DEFAULT, prompts, responses);
    }

    /**
     * {@code log π(responses[i] | prompts[i])} for every {@code i}.
     *
     * @throws IllegalArgumentException if the lists differ in size, a response or (on a decoder) a
     *     prompt is empty, an id is outside the vocabulary, or a sequence exceeds the context
     */
    public static double[] logProbs(ComputationGraph graph, Heads heads, List<int[]> prompts, List<int[]> responses) {
        double[][] perToken = tokenLogProbs(graph, heads, prompts, responses);
        double[] out = new double[perToken.length];
        for (int i = 0; i < out.length; i++) {
            for (double v : perToken[i]) {
                out[i] += v;
            }
        }
        return out;
    }

    /** {@link #tokenLogProbs(ComputationGraph, Heads, List, List)} with {@link Heads#DEFAULT}. */
    public static double[][] tokenLogProbs(ComputationGraph graph, List<int[]> prompts, List<int[]> responses) {
        return tokenLogProbs(graph, Heads.DEFAULT, prompts, responses);
    }

    /**
     * {@code log p(y_ij | x_i, y_i<j)} for every response token {@code j} of every sequence
     * {@code i}; checks as {@link #logProbs(ComputationGraph, Heads, List, List)}.
     */
    public static double[][] tokenLogProbs(ComputationGraph graph, Heads heads, List<int[]> prompts,
                                           List<int[]> responses) {
        ModelInfo info = ModelInfo.of(graph, heads);
        info.requireLanguageModel("log-probabilities");
        TokenBatch.check(prompts, responses, info);
        double[][] out = new double[prompts.size()][];
        for (int from = 0; from < prompts.size(); from += CHUNK) {
            int to = Math.min(prompts.size(), from + CHUNK);
            TokenBatch b = TokenBatch.of(prompts.subList(from, to), responses.subList(from, to), info);
            GraphOutputs o = GraphOutputs.run(graph, b, info, true, false);
            for (int i = 0; i < b.size(); i++) {
                out[from + i] = o.responseLogProbs(i);
            }
        }
        return out;
    }

    /** {@link #referenceKl(PeftModel, Heads, List, List)} with {@link Heads#DEFAULT}. */
    public static double[] referenceKl(PeftModel model, List<int[]> prompts, List<int[]> responses) {
        return referenceKl(model, Heads.DEFAULT, prompts, responses);
    }

    /**
     * The KL divergence of the wrapped model's active adapter from its reference (the same model
     * inside {@link PeftModel#disableAdapter()}) along each response:
     * {@code Σ_j KL(π(·|x, y_<j) ‖ π_ref(·|x, y_<j))}, exact over the vocabulary at every response
     * position, so never negative. Averaged over responses sampled from {@code π}, it estimates
     * {@code KL(π‖π_ref)} of whole responses with less variance than {@code log π(y) − log π_ref(y)},
     * the one-sample estimate PPO's penalty uses.
     *
     * @throws IllegalArgumentException as {@link #logProbs(ComputationGraph, Heads, List, List)}
     */
    public static double[] referenceKl(PeftModel model, Heads heads, List<int[]> prompts, List<int[]> responses) {
        ComputationGraph graph = model.graph();
        ModelInfo info = ModelInfo.of(graph, heads);
        info.requireLanguageModel("the KL to the reference");
        TokenBatch.check(prompts, responses, info);
        double[] out = new double[prompts.size()];
        for (int from = 0; from < prompts.size(); from += CHUNK) {
            int to = Math.min(prompts.size(), from + CHUNK);
            TokenBatch b = TokenBatch.of(prompts.subList(from, to), responses.subList(from, to), info);
            GraphOutputs pol = GraphOutputs.run(graph, b, info, true, false);
            GraphOutputs ref;
            try (PeftModel.AdapterScope off = model.disableAdapter()) {
                ref = GraphOutputs.run(graph, b, info, true, false);
            }
            for (int i = 0; i < b.size(); i++) {
                for (int j = 0; j < b.responseLength(i); j++) {
                    out[from + i] += pol.distribution(i, j, 1.0, null).klTo(ref.distribution(i, j, 1.0, null));
                }
            }
        }
        return out;
    }

    /** {@link #generate(ComputationGraph, Heads, List, SamplingConfig, long)} with {@link Heads#DEFAULT}. */
    public static List<int[]> generate(ComputationGraph graph, List<int[]> prompts, SamplingConfig sampling,
                                       long seed) {
        return generate(graph, Heads.DEFAULT, prompts, sampling, seed);
    }

    /**
     * One sampled response per prompt (see {@link SamplingConfig}), drawn with a generator seeded
     * by {@code seed}: the same seed draws the same random numbers, so two models compared with one
     * seed differ only by their distributions.
     *
     * @throws IllegalArgumentException if a prompt is empty, holds an id outside the vocabulary, or
     *     leaves less than {@code maxNewTokens} of the context
     */
    public static List<int[]> generate(ComputationGraph graph, Heads heads, List<int[]> prompts,
                                       SamplingConfig sampling, long seed) {
        if (prompts == null || prompts.isEmpty()) {
            throw new IllegalArgumentException("no prompts given");
        }
        ModelInfo info = ModelInfo.of(graph, heads);
        Random rnd = new Random(seed);
        List<int[]> out = new ArrayList<>(prompts.size());
        for (int from = 0; from < prompts.size(); from += CHUNK) {
            int to = Math.min(prompts.size(), from + CHUNK);
            out.addAll(Generator.generate(graph, info, prompts.subList(from, to), sampling, rnd).responses());
        }
        return out;
    }
}
