package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyDecoders;

/**
 * Sequence log-probabilities against log-softmax computed independently, and the sampler's
 * promises (same seed, same responses; tokens only from the top-k; the stop token ends a response).
 */
class SequencesTest {

    private static final int VOCAB = 7;

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static PeftModel adapted() {
        ComputationGraph base = TinyDecoders.decoder(DataType.DOUBLE, new NoOp(), 17, VOCAB, 8, 2, 12);
        PeftModel peft = Peft.wrap(base, Ia3Config.builder().targetModulesRegex(PreferenceGradientCheckTest.IA3_TARGETS)
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down").build());
        Nd4j.getRandom().setSeed(3);
        peft.graph().params().addi(Nd4j.randn(DataType.DOUBLE, peft.graph().params().shape()).muli(0.5));
        return peft;
    }

    /**
     * {@code log p(y_j | ·)} of one unpadded sequence from the plain merged graph: the logits
     * {@code h·W + b} of the final norm's activations and the head's weights, log-softmax in Java.
     */
    private static double[] independentTokenLogProbs(ComputationGraph merged, int[] prompt, int[] response) {
        int len = prompt.length + response.length;
        int[] seq = new int[len];
        System.arraycopy(prompt, 0, seq, 0, prompt.length);
        System.arraycopy(response, 0, seq, prompt.length, response.length);
        double[][] ls = logSoftmax(merged, seq);
        double[] out = new double[response.length];
        for (int j = 0; j < response.length; j++) {
            out[j] = ls[prompt.length - 1 + j][response[j]];
        }
        return out;
    }

    /** The log-softmax over the next token after the whole of {@code seq}. */
    private static double[] nextLogSoftmax(ComputationGraph merged, int[] seq) {
        double[][] ls = logSoftmax(merged, seq);
        return ls[seq.length - 1];
    }

    /** {@code [position][token]} log-softmax of {@code h·W + b} over one unpadded sequence. */
    private static double[][] logSoftmax(ComputationGraph merged, int[] seq) {
        double[] ids = new double[seq.length];
        for (int t = 0; t < seq.length; t++) {
            ids[t] = seq[t];
        }
        Map<String, INDArray> acts = merged.feedForward(Nd4j.create(ids, new long[] {1, seq.length}, 'c'), false);
        INDArray h = acts.get(Transformers.SEQUENCE); // [1, d, len]: the final norm's rows as a sequence
        INDArray w = merged.getLayer(Transformers.OUTPUT).getParam("W"); // [d, V]
        INDArray b = merged.getLayer(Transformers.OUTPUT).getParam("b");
        double[][] out = new double[seq.length][VOCAB];
        for (int t = 0; t < seq.length; t++) {
            double[] z = out[t];
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < VOCAB; v++) {
                z[v] = b.getDouble(v);
                for (int k = 0; k < h.size(1); k++) {
                    z[v] += h.getDouble(0, k, t) * w.getDouble(k, v);
                }
                max = Math.max(max, z[v]);
            }
            double sum = 0;
            for (double zv : z) {
                sum += Math.exp(zv - max);
            }
            double lse = max + Math.log(sum);
            for (int v = 0; v < VOCAB; v++) {
                z[v] -= lse;
            }
        }
        return out;
    }

    @Test
    void batchedLogProbsEqualTheSumOfIndependentlyComputedLogSoftmax() {
        PeftModel peft = adapted();
        ComputationGraph merged = peft.mergeAndUnload();
        List<int[]> prompts = List.of(new int[] {1}, new int[] {2, 3, 4, 5}, new int[] {6, 0}, new int[] {3, 3, 3});
        List<int[]> responses = List.of(new int[] {4, 5, 6, 0, 1, 2}, new int[] {1}, new int[] {5, 5, 2},
                new int[] {0, 6});
        double[][] perToken = Sequences.tokenLogProbs(peft.graph(), prompts, responses);
        double[] sums = Sequences.logProbs(peft.graph(), prompts, responses);
        for (int i = 0; i < prompts.size(); i++) {
            double[] expected = independentTokenLogProbs(merged, prompts.get(i), responses.get(i));
            assertArrayEquals(expected, perToken[i], 1e-10, "sequence " + i);
            double s = 0;
            for (double v : expected) {
                s += v;
            }
            assertEquals(s, sums[i], 1e-10, "sequence " + i);
        }
    }

    @Test
    void theSameSeedDrawsTheSameResponsesAndAnotherSeedOthers() {
        PeftModel peft = adapted();
        List<int[]> prompts = List.of(new int[] {1, 2}, new int[] {3}, new int[] {4, 5, 6});
        SamplingConfig s = SamplingConfig.builder().temperature(1.3).maxNewTokens(6).build();
        List<int[]> a = Sequences.generate(peft.graph(), prompts, s, 11);
        List<int[]> b = Sequences.generate(peft.graph(), prompts, s, 11);
        List<int[]> c = Sequences.generate(peft.graph(), prompts, s, 12);
        for (int i = 0; i < prompts.size(); i++) {
            assertArrayEquals(a.get(i), b.get(i));
            assertEquals(6, a.get(i).length);
        }
        assertNotEquals(flatten(a), flatten(c));
    }

    private static List<Integer> flatten(List<int[]> l) {
        List<Integer> f = new ArrayList<>();
        l.forEach(r -> {
            for (int t : r) {
                f.add(t);
            }
        });
        return f;
    }

    @Test
    void topKDrawsOnlyAmongTheKMostProbableTokensAndTinyTemperatureIsGreedy() {
        PeftModel peft = adapted();
        ComputationGraph merged = peft.mergeAndUnload();
        List<int[]> prompts = List.of(new int[] {1, 2}, new int[] {3}, new int[] {4, 5, 6}, new int[] {0});
        List<int[]> topTwo = Sequences.generate(peft.graph(), prompts,
                SamplingConfig.builder().temperature(5).topK(2).maxNewTokens(5).build(), 1);
        List<int[]> greedy = Sequences.generate(peft.graph(), prompts,
                SamplingConfig.builder().temperature(1e-3).maxNewTokens(5).build(), 2);
        for (int i = 0; i < prompts.size(); i++) {
            for (int j = 0; j < 5; j++) {
                int[] prefix = java.util.Arrays.copyOf(topTwo.get(i), j);
                double[] lp = allNext(merged, prompts.get(i), prefix);
                int rank = 0;
                for (double v : lp) {
                    if (v > lp[topTwo.get(i)[j]]) {
                        rank++;
                    }
                }
                assertTrue(rank < 2, "token " + j + " of response " + i + " has rank " + rank);
                double[] g = allNext(merged, prompts.get(i), java.util.Arrays.copyOf(greedy.get(i), j));
                int best = 0;
                for (int v = 1; v < VOCAB; v++) {
                    if (g[v] > g[best]) {
                        best = v;
                    }
                }
                assertEquals(best, greedy.get(i)[j], "greedy token " + j + " of response " + i);
            }
        }
    }

    /** {@code log p(v | prompt ++ prefix)} for every token {@code v}, computed independently. */
    private static double[] allNext(ComputationGraph merged, int[] prompt, int[] prefix) {
        int[] p = new int[prompt.length + prefix.length];
        System.arraycopy(prompt, 0, p, 0, prompt.length);
        System.arraycopy(prefix, 0, p, prompt.length, prefix.length);
        return nextLogSoftmax(merged, p);
    }

    @Test
    void theStopTokenEndsAResponseAndIsKept() {
        PeftModel peft = adapted();
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            prompts.add(new int[] {i % VOCAB, (i + 3) % VOCAB});
        }
        List<int[]> r = Sequences.generate(peft.graph(), prompts,
                SamplingConfig.builder().temperature(2).stopToken(4).maxNewTokens(8).build(), 5);
        int stopped = 0;
        for (int[] y : r) {
            for (int j = 0; j < y.length - 1; j++) {
                assertNotEquals(4, y[j], "the stop token must end the response");
            }
            if (y[y.length - 1] == 4) {
                stopped++;
            } else {
                assertEquals(8, y.length, "a response without the stop token runs to maxNewTokens");
            }
        }
        assertTrue(stopped > 0 && stopped < r.size(), "some responses should stop early and some not: " + stopped);
    }
}
