package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.FiniteDifferences;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyDecoders;

/**
 * The DPO loss, the Bradley–Terry loss and PPO's clipped objective, each computed outside the
 * graph and backpropagated through a small wrapped decoder (IA3 on the attention keys and values
 * and the MLP, a scalar head trained in full), against central differences of the objective over
 * every trainable parameter, in double precision. The parameters are moved off their identity
 * initialization first, so every term of the gradient is exercised.
 */
class PreferenceGradientCheckTest {

    static final String IA3_TARGETS = "block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down";

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    /** IA3 (plus the scalar head when the graph has one) over the double-precision tiny decoder, moved off init. */
    static PeftModel wrapped(ComputationGraph base, boolean trainScore, long seed) {
        Ia3Config.Builder b = Ia3Config.builder().targetModulesRegex(IA3_TARGETS)
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down");
        if (trainScore) {
            b.modulesToSave(ScoreHead.NAME);
        }
        PeftModel peft = Peft.wrap(base, b.build());
        Nd4j.getRandom().setSeed(seed);
        peft.graph().params().addi(Nd4j.randn(DataType.DOUBLE, peft.graph().params().shape()).muli(0.4));
        return peft;
    }

    static List<PreferencePair> pairs() {
        return List.of(
                new PreferencePair(new int[] {1, 2}, new int[] {3, 4, 0}, new int[] {2}),
                new PreferencePair(new int[] {4}, new int[] {1}, new int[] {0, 3, 3, 2}),
                new PreferencePair(new int[] {0, 1, 2}, new int[] {2, 2}, new int[] {4, 1, 0}));
    }

    private static void assertMatches(ComputationGraph g, Objective o, java.util.function.DoubleSupplier loss) {
        assertTrue(FiniteDifferences.nonZero(o.gradient()) > g.numParams() / 2,
                "most of the gradient should be non-zero, or the check proves little: " + o.gradient());
        List<String> bad = FiniteDifferences.mismatches(g, o.gradient(), loss);
        assertTrue(bad.isEmpty(), String.join("\n", bad));
    }

    @Test
    void dpoLossWithLabelSmoothingMatchesFiniteDifferences() {
        PeftModel peft = wrapped(TinyDecoders.forGradientCheck(1), false, 5);
        DpoTrainer dpo = new DpoTrainer(peft, DpoConfig.builder().beta(0.5).labelSmoothing(0.1).build());
        Objective o = dpo.objective(pairs());
        assertEquals(dpo.evaluate(pairs()).loss(), o.loss(), 1e-12);
        assertMatches(peft.graph(), o, () -> dpo.evaluate(pairs()).loss());
    }

    @Test
    void bradleyTerryLossOnADecoderRewardModelMatchesFiniteDifferences() {
        PeftModel peft = wrapped(ScoreHead.decoder(TinyDecoders.forGradientCheck(2)), true, 6);
        RewardTrainer rt = new RewardTrainer(peft, RewardConfig.builder().centerRewardsCoefficient(0.05).build());
        Objective o = rt.objective(pairs());
        assertMatches(peft.graph(), o, () -> rt.evaluate(pairs()).loss());
    }

    @Test
    void bradleyTerryLossOnAnEncoderRewardModelMatchesFiniteDifferences() {
        ComputationGraph encoder = Transformers.encoder().vocabSize(5).maxLength(8).dModel(4).heads(2).layers(1)
                .mlpRatio(2).seed(3).updater(new NoOp()).dataType(DataType.DOUBLE).build();
        PeftModel peft = wrapped(ScoreHead.encoder(encoder), true, 7);
        RewardTrainer rt = new RewardTrainer(peft, RewardConfig.builder().build());
        Objective o = rt.objective(pairs());
        assertMatches(peft.graph(), o, () -> rt.evaluate(pairs()).loss());
    }

    @Test
    void ppoClippedObjectiveWithTemperatureAndTopKMatchesFiniteDifferences() {
        PeftModel peft = wrapped(ScoreHead.decoder(TinyDecoders.forGradientCheck(3)), true, 8);
        PpoConfig cfg = PpoConfig.builder().sampling(SamplingConfig.builder().temperature(0.8).topK(3)
                .maxNewTokens(4).build()).klCoefficient(0.2).clipRange(0.1).valueClipRange(0.05).valueCoefficient(0.5)
                .seed(4).build();
        PpoTrainer ppo = new PpoTrainer(peft, (prompts, responses) -> responses.stream()
                .mapToDouble(r -> r.length + 0.5 * r[0]).toArray(), cfg);
        PpoTrainer.Rollout r = ppo.rollout(List.of(new int[] {1, 2}, new int[] {3}, new int[] {0, 4, 2}));
        // move the policy away from the one that sampled, so that ratios and values leave their clip ranges
        Nd4j.getRandom().setSeed(9);
        peft.graph().params().addi(Nd4j.randn(DataType.DOUBLE, peft.graph().params().shape()).muli(0.3));
        int[] rows = {2, 0, 1};
        Objective o = ppo.objective(r, rows);
        assertMatches(peft.graph(), o, () -> ppo.loss(r, rows));
    }
}
