package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.FiniteDifferences;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyDecoders;
import org.peft4j.lora.LoraConfig;

/**
 * The preference methods with LoRA (peft-core's own tests, which check the Bradley–Terry and PPO
 * gradients too, use IA3 and bottleneck adapters, the tuners core can see): the DPO gradient against
 * finite differences through a LoRA-wrapped decoder in double precision; DPO's {@code log 2} at init
 * and a reference that stays put; LoRA dropout refused; and PPO whose reward model is a second LoRA
 * adapter of the policy's own model.
 */
class LoraPreferenceTest {

    private static LoraConfig lora(boolean withHead) {
        LoraConfig.Builder b = LoraConfig.builder().rank(2).alpha(4).targetModulesRegex("block\\d+\\.attn\\.(q|v)");
        if (withHead) {
            b.modulesToSave(ScoreHead.NAME);
        }
        return b.build();
    }

    private static PeftModel movedOffInit(ComputationGraph base, boolean withHead, long seed) {
        PeftModel peft = Peft.wrap(base, lora(withHead));
        Nd4j.getRandom().setSeed(seed);
        peft.graph().params().addi(Nd4j.randn(DataType.DOUBLE, peft.graph().params().shape()).muli(0.4));
        return peft;
    }

    private static List<PreferencePair> pairs() {
        return List.of(new PreferencePair(new int[] {1, 2}, new int[] {3, 4, 0}, new int[] {2}),
                new PreferencePair(new int[] {4}, new int[] {1}, new int[] {0, 3, 3, 2}));
    }

    private static void assertMatches(ComputationGraph g, Objective o, java.util.function.DoubleSupplier loss) {
        assertTrue(FiniteDifferences.nonZero(o.gradient()) > g.numParams() / 2, "gradient mostly zero");
        List<String> bad = FiniteDifferences.mismatches(g, o.gradient(), loss);
        assertTrue(bad.isEmpty(), String.join("\n", bad));
    }

    @Test
    void dpoGradientThroughLoraMatchesFiniteDifferences() {
        GradientChecks.useDoublePrecision();
        PeftModel policy = movedOffInit(TinyDecoders.forGradientCheck(1), false, 2);
        DpoTrainer dpo = new DpoTrainer(policy, DpoConfig.builder().beta(0.7).labelSmoothing(0.2).build());
        assertMatches(policy.graph(), dpo.objective(pairs()), () -> dpo.evaluate(pairs()).loss());
    }

    @Test
    void dpoStartsAtLogTwoAndKeepsTheReferenceWhileLoraTrains() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 8, 6, 16, 1, 12);
        PeftModel peft = Peft.wrap(base, lora(false));
        List<PreferencePair> train = List.of(new PreferencePair(new int[] {1, 2}, new int[] {2, 2}, new int[] {3, 4}),
                new PreferencePair(new int[] {5}, new int[] {5, 5, 5}, new int[] {0, 1, 2}));
        List<int[]> prompts = train.stream().map(PreferencePair::prompt).toList();
        List<int[]> chosen = train.stream().map(PreferencePair::chosen).toList();
        double[] ref = Sequences.logProbs(base, prompts, chosen);
        DpoTrainer dpo = new DpoTrainer(peft, DpoConfig.builder().build());
        assertEquals(Math.log(2), dpo.step(train).loss(), 0.0);
        for (int s = 0; s < 10; s++) {
            dpo.step(train);
        }
        try (PeftModel.AdapterScope off = peft.disableAdapter()) {
            assertArrayEquals(ref, Sequences.logProbs(peft.graph(), prompts, chosen), 0.0);
        }
        assertTrue(dpo.evaluate(train).loss() < Math.log(2) - 0.1);

        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new DpoTrainer(Peft.wrap(base, LoraConfig.builder().rank(2).dropout(0.1)
                        .targetModulesRegex("block\\d+\\.attn\\.(q|v)").build()), DpoConfig.builder().build()));
        assertTrue(e.getMessage().contains("lora_dropout = 0.1"), e.getMessage());
    }

    @Test
    void ppoWithTheRewardModelAsASecondLoraAdapterTrainsOnlyThePolicy() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        ComputationGraph base = ScoreHead.decoder(TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 9, 6, 16, 1, 12));
        PeftModel shared = Peft.wrap(base, lora(true));
        shared.addAdapter("reward", lora(true));
        shared.setAdapter("reward");
        RewardTrainer rt = new RewardTrainer(shared, RewardConfig.builder().build());
        for (int s = 0; s < 5; s++) {
            rt.step(List.of(new PreferencePair(new int[] {1}, new int[] {3, 3}, new int[] {4, 5}),
                    new PreferencePair(new int[] {2, 0}, new int[] {3}, new int[] {1})));
        }
        INDArray reward = shared.graph().params().dup();
        shared.setAdapter(PeftModel.DEFAULT_ADAPTER);
        INDArray policyBefore = shared.graph().params().dup();
        PpoTrainer ppo = new PpoTrainer(shared, new RewardModel(shared, "reward"), PpoConfig.builder()
                .sampling(SamplingConfig.builder().maxNewTokens(4).build()).miniBatches(2).epochs(2).build());
        PpoMetrics m = ppo.step(List.of(new int[] {1, 2}, new int[] {3}, new int[] {4, 0}, new int[] {5}));
        assertTrue(Double.isFinite(m.policyLoss()) && m.meanResponseLength() == 4, m.toString());
        assertEquals(PeftModel.DEFAULT_ADAPTER, shared.activeAdapter());
        assertNotEquals(policyBefore, shared.graph().params(), "the policy adapter trained");
        shared.setAdapter("reward");
        assertEquals(reward, shared.graph().params(), "the reward adapter did not");
    }
}
