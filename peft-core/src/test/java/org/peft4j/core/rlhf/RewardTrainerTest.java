package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;

/**
 * The Bradley–Terry reward model: it starts at reward 0 everywhere (loss {@code log 2}), learns a
 * preference on a decoder and on an encoder, is saved in PEFT's layout with its head as a trained
 * module and loads back to the same rewards, and serves PPO as a second adapter of the policy's
 * model without disturbing the policy.
 */
class RewardTrainerTest {

    @BeforeAll
    static void floatPrecision() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    static PeftConfig ia3WithHead() {
        return Ia3Config.builder().targetModulesRegex(PreferenceGradientCheckTest.IA3_TARGETS)
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down").modulesToSave(ScoreHead.NAME).build();
    }

    static ComputationGraph rewardBase() {
        return ScoreHead.decoder(DpoTrainerTest.base());
    }

    /** Chosen responses use the lower half of the vocabulary, rejected ones the upper half. */
    static List<PreferencePair> pairs(long seed, int n) {
        java.util.Random r = new java.util.Random(seed);
        List<PreferencePair> out = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] prompt = {r.nextInt(8), r.nextInt(8)};
            int len = 2 + r.nextInt(3);
            int[] chosen = new int[len];
            int[] rejected = new int[len];
            for (int j = 0; j < len; j++) {
                chosen[j] = r.nextInt(4);
                rejected[j] = 4 + r.nextInt(4);
            }
            out.add(new PreferencePair(prompt, chosen, rejected));
        }
        return out;
    }

    static RewardMetrics train(PeftModel rm, int steps) {
        RewardTrainer t = new RewardTrainer(rm, RewardConfig.builder().build());
        RewardMetrics first = t.step(pairs(2, 16));
        assertEquals(Math.log(2), first.loss(), 1e-6, "a zero head rewards everything with 0");
        assertEquals(0.0, first.margin(), 0.0);
        for (int s = 1; s < steps; s++) {
            t.step(pairs(2 + s % 3, 16));
        }
        return t.evaluate(pairs(9, 24));
    }

    @Test
    void anEncoderRewardModelLearnsTheHeldOutPreference() {
        ComputationGraph encoder = Transformers.encoder().vocabSize(8)
                .maxLength(16).dModel(16).heads(2).layers(1).mlpRatio(2).seed(4).updater(new Adam(2e-2))
                .dataType(DataType.FLOAT).build();
        RewardMetrics m = train(Peft.wrap(ScoreHead.encoder(encoder), ia3WithHead()), 15);
        assertTrue(m.accuracy() > 0.9, "held-out accuracy " + m);
    }

    @Test
    void aDecoderRewardModelLearnsAndIsSavedWithItsHeadAsATrainedModule(@TempDir Path dir) throws IOException {
        PeftModel rm = Peft.wrap(rewardBase(), ia3WithHead());
        RewardMetrics m = train(rm, 15);
        assertTrue(m.accuracy() > 0.9, "held-out accuracy " + m);
        assertTrue(m.margin() > 1, "held-out margin " + m);

        List<PreferencePair> probe = pairs(5, 6);
        List<int[]> prompts = probe.stream().map(PreferencePair::prompt).toList();
        List<int[]> responses = probe.stream().map(PreferencePair::chosen).toList();
        double[] before = new RewardModel(rm, PeftModel.DEFAULT_ADAPTER).score(prompts, responses);
        rm.saveAdapter(dir);
        SafeTensor w = Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors()
                .get("base_model.model." + ScoreHead.NAME + ".weight");
        assertNotNull(w, "the head is saved as a trained module");
        assertArrayEquals(new long[] {1, 16}, w.shape(), "PyTorch orientation [out, in]");
        assertTrue(Files.readString(dir.resolve("adapter_config.json")).contains("\"modules_to_save\": [\n    \"score\""),
                Files.readString(dir.resolve("adapter_config.json")));
        PeftModel loaded = Peft.load(rewardBase(), dir);
        double[] after = new RewardModel(loaded, PeftModel.DEFAULT_ADAPTER).score(prompts, responses);
        assertArrayEquals(before, after, 1e-5);
    }

    @Test
    void aRewardAdapterBesideThePolicyScoresWithoutDisturbingIt() {
        PeftModel shared = Peft.wrap(rewardBase(), ia3WithHead());
        shared.addAdapter("reward", ia3WithHead());
        shared.setAdapter("reward");
        RewardTrainer t = new RewardTrainer(shared, RewardConfig.builder().build());
        for (int s = 0; s < 5; s++) {
            t.step(pairs(2, 16));
        }
        List<int[]> prompts = List.of(new int[] {1, 2, 3}, new int[] {4, 4, 4});
        List<int[]> responses = List.of(new int[] {3, 3}, new int[] {5, 6, 7});
        double[] direct = new RewardModel(shared, "reward").score(prompts, responses);

        shared.setAdapter(PeftModel.DEFAULT_ADAPTER);
        INDArray policy = shared.graph().params().dup();
        RewardModel rm = new RewardModel(shared, "reward");
        double[] viaSwitch = rm.score(prompts, responses);
        assertArrayEquals(direct, viaSwitch, 0.0);
        assertEquals(PeftModel.DEFAULT_ADAPTER, shared.activeAdapter(), "the policy is active again");
        assertEquals(policy, shared.graph().params(), "the policy's parameters are untouched");
        assertTrue(Math.abs(direct[0] - direct[1]) > 1e-3, "the reward adapter was trained");
    }
}
