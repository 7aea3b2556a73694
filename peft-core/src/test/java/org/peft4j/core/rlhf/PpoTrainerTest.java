package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.testing.TinyDecoders;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * PPO on a toy whose optimum is known: the reward of a response is how many times it contains the
 * target token, so the unpenalized optimum emits nothing else. Training must raise the mean reward,
 * and the KL penalty must hold the policy near the reference.
 *
 * <p>The bound: PPO with penalty {@code β} maximizes {@code J(π) = E_π[r] − β·KL(π‖π_ref)}, and
 * {@code J(π_ref) = E_ref[r]}; a policy that improved on the reference therefore has
 * {@code KL(π‖π_ref) ≤ (E_π[r] − E_ref[r]) / β}. The test measures all three on fresh samples
 * (independently of the trainer's metrics: {@link Sequences#generate} and
 * {@link Sequences#logProbs}, KL as the mean of {@code log π(y) − log π_ref(y)} over samples of
 * {@code π}) and allows one nat of sampling noise. With {@code β = 0} the same run must end
 * further from the reference.
 */
class PpoTrainerTest {
    private static final Logger LOG = LoggerFactory.getLogger(PpoTrainerTest.class);

    private static final int VOCAB = 6;
    private static final int TARGET = 3;
    private static final int NEW_TOKENS = 5;
    private static final double BETA = 0.5;

    @BeforeAll
    static void floatPrecision() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    static double count(int[] r) {
        int c = 0;
        for (int t : r) {
            if (t == TARGET) {
                c++;
            }
        }
        return c;
    }

    static final RewardFunction TARGET_COUNT = (prompts, responses) ->
            responses.stream().mapToDouble(PpoTrainerTest::count).toArray();

    static List<int[]> prompts(Random r, int n) {
        List<int[]> p = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] x = new int[2 + r.nextInt(3)];
            for (int t = 0; t < x.length; t++) {
                x[t] = r.nextInt(VOCAB);
            }
            p.add(x);
        }
        return p;
    }

    static PeftModel policy() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 21, VOCAB, 16, 1, 12);
        return Peft.wrap(ScoreHead.decoder(base), AdapterConfig.builder().houlsby().bottleneckSize(4)
                .modulesToSave(ScoreHead.NAME).build());
    }

    /** Mean reward and Monte-Carlo KL(π‖π_ref) of the model's current adapter on fresh samples. */
    static double[] measure(PeftModel peft, List<int[]> prompts, long seed) {
        SamplingConfig s = SamplingConfig.builder().maxNewTokens(NEW_TOKENS).build();
        List<int[]> ys = Sequences.generate(peft.graph(), prompts, s, seed);
        double[] lp = Sequences.logProbs(peft.graph(), prompts, ys);
        double[] ref;
        try (PeftModel.AdapterScope off = peft.disableAdapter()) {
            ref = Sequences.logProbs(peft.graph(), prompts, ys);
        }
        double score = 0;
        double kl = 0;
        for (int i = 0; i < ys.size(); i++) {
            score += count(ys.get(i));
            kl += lp[i] - ref[i];
        }
        return new double[] {score / ys.size(), kl / ys.size()};
    }

    static double[] train(double beta, int iterations) {
        PeftModel peft = policy();
        Random r = new Random(5);
        List<int[]> eval = prompts(new Random(99), 96);
        double[] before = measure(peft, eval, 7);
        PpoTrainer ppo = new PpoTrainer(peft, TARGET_COUNT, PpoConfig.builder()
                .sampling(SamplingConfig.builder().maxNewTokens(NEW_TOKENS).build())
                .klCoefficient(beta).miniBatches(2).seed(3).build());
        peft.graph().setLearningRate(3e-2);
        PpoMetrics m = null;
        for (int it = 0; it < iterations; it++) {
            m = ppo.step(prompts(r, 16));
            LOG.debug("beta {} iteration {}: {}", beta, it, m);
        }
        double[] after = measure(peft, eval, 8);
        LOG.info("beta {}: before score {} kl {}; after score {} kl {}", beta, before[0], before[1], after[0], after[1]);
        return new double[] {before[0], before[1], after[0], after[1], m.meanScore(), m.meanKl()};
    }

    @Test
    void ppoRaisesTheRewardWithinTheKlBoundAndDriftsFurtherWithoutPenalty() {
        double[] pen = train(BETA, 6);
        double[] free = train(0.0, 6);
        assertEquals(0.0, pen[1], 1e-6, "before training the policy is the reference");
        assertTrue(pen[2] > pen[0] + 0.5, "mean reward should rise: " + pen[0] + " -> " + pen[2]);
        assertTrue(pen[3] <= (pen[2] - pen[0]) / BETA + 1.0, "KL " + pen[3] + " exceeds (gain " + (pen[2] - pen[0])
                + ") / beta " + BETA);
        assertTrue(free[3] > pen[3], "without the penalty the policy should drift further: KL " + free[3]
                + " vs " + pen[3]);
    }
}
