package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;

/**
 * Bad input gets an exception that names the problem and the fix, before anything changes: empty
 * responses and prompts, mismatched counts, sequences longer than the context, ids outside the
 * vocabulary, models the trainers cannot use, and out-of-range settings.
 */
class PreferenceInputTest {

    @BeforeAll
    static void floatPrecision() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    private static void fails(Class<? extends Throwable> type, Executable call, String... fragments) {
        Throwable t = assertThrows(type, call);
        for (String f : fragments) {
            assertTrue(t.getMessage().contains(f), "message \"" + t.getMessage() + "\" should contain \"" + f + "\"");
        }
    }

    private static PeftModel ia3(ComputationGraph base, String... save) {
        return Peft.wrap(base, Ia3Config.builder().targetModulesRegex(PreferenceGradientCheckTest.IA3_TARGETS)
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down").modulesToSave(save).build());
    }

    @Test
    void emptyResponsesAndPromptsAreRefused() {
        ComputationGraph g = DpoTrainerTest.base();
        fails(IllegalArgumentException.class, () -> new PreferencePair(new int[] {1}, new int[0], new int[] {2}),
                "chosen response is empty");
        fails(IllegalArgumentException.class, () -> Sequences.logProbs(g, List.of(new int[] {1}), List.of(new int[0])),
                "response 0 is empty");
        fails(IllegalArgumentException.class, () -> Sequences.logProbs(g, List.of(new int[0]), List.of(new int[] {1})),
                "prompt 0", "prompt is empty", "beginning-of-text");
        DpoTrainer dpo = new DpoTrainer(ia3(g), DpoConfig.builder().build());
        fails(IllegalArgumentException.class, () -> dpo.step(List.of(new PreferencePair(new int[0], new int[] {1},
                new int[] {2}))), "pair 0", "prompt is empty");
    }

    @Test
    void mismatchedCountsAreRefused() {
        ComputationGraph g = DpoTrainerTest.base();
        List<int[]> three = List.of(new int[] {1}, new int[] {2}, new int[] {3});
        List<int[]> two = List.of(new int[] {1}, new int[] {2});
        fails(IllegalArgumentException.class, () -> PreferencePair.zip(three, two, three), "mismatched pair counts",
                "3 prompts, 2 chosen and 3 rejected");
        fails(IllegalArgumentException.class, () -> Sequences.logProbs(g, three, two), "3 prompts but 2 responses");
        PeftModel rm = ia3(ScoreHead.decoder(g), ScoreHead.NAME);
        fails(IllegalArgumentException.class, () -> new RewardModel(rm, PeftModel.DEFAULT_ADAPTER).score(three, two),
                "3 prompts but 2 responses");
        PeftModel policy = ia3(ScoreHead.decoder(DpoTrainerTest.base()), ScoreHead.NAME);
        PpoTrainer ppo = new PpoTrainer(policy, (p, r) -> new double[] {1.0}, PpoConfig.builder()
                .sampling(SamplingConfig.builder().maxNewTokens(2).build()).build());
        INDArray before = policy.graph().params().dup();
        fails(IllegalArgumentException.class, () -> ppo.step(two), "returned 1 scores for 2 responses");
        PpoTrainer nan = new PpoTrainer(policy, (p, r) -> new double[] {0, Double.NaN}, PpoConfig.builder()
                .sampling(SamplingConfig.builder().maxNewTokens(2).build()).build());
        fails(IllegalArgumentException.class, () -> nan.step(two), "NaN for response 1", "finite");
        assertEquals(before, policy.graph().params(), "a refused step changes nothing");
        PpoTrainer four = new PpoTrainer(policy, (p, r) -> new double[p.size()], PpoConfig.builder().miniBatches(4)
                .build());
        fails(IllegalArgumentException.class, () -> four.step(two), "2 prompts cannot make 4 minibatches");
    }

    @Test
    void sequencesLongerThanTheContextAreRefused() {
        ComputationGraph g = DpoTrainerTest.base(); // context 16
        int[] longPrompt = new int[14];
        fails(IllegalArgumentException.class, () -> Sequences.logProbs(g, List.of(longPrompt), List.of(new int[3])),
                "prompt 0: 17 tokens (prompt 14 + response 3)", "context of 16 tokens");
        PeftModel peft = ia3(DpoTrainerTest.base());
        INDArray before = peft.graph().params().dup();
        DpoTrainer dpo = new DpoTrainer(peft, DpoConfig.builder().build());
        fails(IllegalArgumentException.class, () -> dpo.step(List.of(new PreferencePair(new int[] {1}, new int[] {2},
                new int[] {3}), new PreferencePair(longPrompt, new int[] {2}, new int[5]))), "pair 1 (rejected)",
                "19 tokens", "context of 16");
        assertEquals(before, peft.graph().params(), "a refused step changes nothing");
        fails(IllegalArgumentException.class, () -> Sequences.generate(g, List.of(longPrompt),
                SamplingConfig.builder().maxNewTokens(4).build(), 1), "prompt 0: 18 tokens", "context of 16");
        PeftModel policy = ia3(ScoreHead.decoder(DpoTrainerTest.base()), ScoreHead.NAME);
        PpoTrainer ppo = new PpoTrainer(policy, (p, r) -> new double[p.size()], PpoConfig.builder().build());
        fails(IllegalArgumentException.class, () -> ppo.step(List.of(new int[] {1, 2})), "34 tokens",
                "context of 16");
        fails(IllegalArgumentException.class, () -> Sequences.logProbs(g, List.of(new int[] {1, 8}),
                List.of(new int[] {1})), "prompt 0 holds token id 8 at position 1", "[0, 8)");
    }

    @Test
    void modelsTheTrainersCannotUseAreRefused() {
        fails(IllegalArgumentException.class, () -> new DpoTrainer(Peft.wrap(DpoTrainerTest.base(),
                FineTuningConfig.full()), DpoConfig.builder().build()), "keeps no frozen base");
        fails(IllegalArgumentException.class, () -> new DpoTrainer(ia3(DpoTrainerTest.base(), "final.ln"),
                DpoConfig.builder().build()), "modules to save [final.ln]", "reference would not be the base");
        PeftModel merged = ia3(DpoTrainerTest.base());
        merged.merge();
        fails(IllegalStateException.class, () -> new DpoTrainer(merged, DpoConfig.builder().build()), "unmerge()");
        ComputationGraph dropout = Transformers.decoder().vocabSize(8).maxLength(16).dModel(16).heads(2).layers(1)
                .dropout(0.1).updater(new Adam(1e-2)).build();
        fails(IllegalArgumentException.class, () -> new DpoTrainer(ia3(dropout), DpoConfig.builder().build()),
                "dropout", "block0.attn.o");
        fails(IllegalArgumentException.class, () -> new PpoTrainer(ia3(DpoTrainerTest.base()),
                (p, r) -> new double[p.size()], PpoConfig.builder().build()), "value head", "ScoreHead.decoder");
        fails(IllegalArgumentException.class, () -> new PpoTrainer(ia3(ScoreHead.decoder(DpoTrainerTest.base())),
                (p, r) -> new double[p.size()], PpoConfig.builder().build()), "frozen", "modulesToSave(\"score\")");
        fails(IllegalArgumentException.class, () -> new RewardTrainer(ia3(DpoTrainerTest.base()),
                RewardConfig.builder().build()), "scalar output \"score\"", "ScoreHead.decoder(base)");
        fails(IllegalArgumentException.class, () -> new RewardModel(ia3(ScoreHead.decoder(DpoTrainerTest.base()),
                ScoreHead.NAME), "reward"), "no adapter named \"reward\"");
        fails(IllegalArgumentException.class, () -> ScoreHead.decoder(ScoreHead.decoder(DpoTrainerTest.base())),
                "already has a vertex named \"score\"");
    }

    @Test
    void settingsOutOfRangeAreRefusedWhenSet() {
        fails(IllegalArgumentException.class, () -> DpoConfig.builder().beta(0), "beta must be positive");
        fails(IllegalArgumentException.class, () -> DpoConfig.builder().labelSmoothing(0.5), "[0, 0.5)");
        fails(IllegalArgumentException.class, () -> SamplingConfig.builder().temperature(0), "temperature");
        fails(IllegalArgumentException.class, () -> SamplingConfig.builder().topK(-1), "topK");
        fails(IllegalArgumentException.class, () -> SamplingConfig.builder().maxNewTokens(0), "maxNewTokens");
        fails(IllegalArgumentException.class, () -> PpoConfig.builder().gamma(1.5), "gamma must be in [0, 1]");
        fails(IllegalArgumentException.class, () -> PpoConfig.builder().klCoefficient(-1), "klCoefficient");
        fails(IllegalArgumentException.class, () -> PpoConfig.builder().adaptiveKl(0, 10), "target KL");
        fails(IllegalArgumentException.class, () -> PpoConfig.builder().clipRange(0), "clipRange");
        fails(IllegalArgumentException.class, () -> RewardConfig.builder().centerRewardsCoefficient(-1),
                "centerRewardsCoefficient");
        fails(IllegalArgumentException.class, () -> new Heads("head", "head", 0), "different outputs");
        fails(IllegalArgumentException.class, () -> Heads.DEFAULT.withMaxLength(0), "maxLength must be positive");
        assertEquals(SamplingConfig.builder().temperature(0.7).topK(5).build(),
                SamplingConfig.builder().temperature(0.7).topK(5).build());
        assertTrue(PpoConfig.builder().adaptiveKl(6, 10000).build().toString().contains("adaptive to 6.0 over 10000.0"));
    }
}
