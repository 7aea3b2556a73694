package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.FrozenParamsLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.TinyDecoders;

/**
 * DPO on adapters: the loss is {@code log 2} while the policy is the reference; the reference is the
 * disabled adapter (training the adapter leaves it bit for bit where it was, and it equals the base
 * graph); training on a learnable preference lowers the loss; the base and the optimizer state
 * keep the library's invariants. Run with IA3 and bottleneck adapters (LoRA: peft-lora's tests).
 */
class DpoTrainerTest {

    private static final int VOCAB = 8;

    @BeforeAll
    static void floatPrecision() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    static ComputationGraph base() {
        return TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 31, VOCAB, 16, 1, 16);
    }

    /** Chosen responses repeat the prompt's last token, rejected ones count up from it: a learnable preference. */
    static List<PreferencePair> pairs(long seed, int n) {
        Random r = new Random(seed);
        List<PreferencePair> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] prompt = {r.nextInt(VOCAB), r.nextInt(VOCAB), r.nextInt(VOCAB)};
            int last = prompt[2];
            int len = 2 + r.nextInt(3);
            int[] chosen = new int[len];
            int[] rejected = new int[len];
            for (int j = 0; j < len; j++) {
                chosen[j] = last;
                rejected[j] = (last + j + 1) % VOCAB;
            }
            out.add(new PreferencePair(prompt, chosen, rejected));
        }
        return out;
    }

    static Map<String, PeftModel> tuners() {
        Map<String, PeftModel> m = new java.util.LinkedHashMap<>();
        m.put("ia3", Peft.wrap(base(), Ia3Config.builder().targetModulesRegex(PreferenceGradientCheckTest.IA3_TARGETS)
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down").build()));
        m.put("houlsby", Peft.wrap(base(), AdapterConfig.builder().houlsby().bottleneckSize(4).build()));
        return m;
    }

    @Test
    void lossIsExactlyLogTwoWhileThePolicyIsTheReference() {
        for (Map.Entry<String, PeftModel> e : tuners().entrySet()) {
            for (double eps : new double[] {0.0, 0.25}) {
                DpoTrainer dpo = new DpoTrainer(e.getValue(), DpoConfig.builder().beta(0.3).labelSmoothing(eps).build());
                DpoMetrics m = dpo.evaluate(pairs(1, 2));
                assertEquals(0.0, m.rewardsChosen(), 0.0, e.getKey());
                assertEquals(0.0, m.rewardsRejected(), 0.0, e.getKey());
                assertEquals(Math.log(2), m.loss(), eps == 0 ? 0.0 : 1e-15, e.getKey() + " eps " + eps);
                assertEquals(0.0, m.rewardAccuracy(), 0.0, "a tie is not a win");
            }
        }
    }

    private static Map<String, INDArray> frozenArrays(PeftModel peft) {
        Map<String, INDArray> m = new HashMap<>();
        for (Layer l : peft.graph().getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (c instanceof FrozenDenseLayer f) {
                m.put(c.getLayerName(), f.frozenWeight().dup());
            } else if (c instanceof FrozenParamsLayer f && f.frozenParams() != null) {
                m.put(c.getLayerName(), f.frozenParams().dup());
            }
        }
        return m;
    }

    @Test
    void trainingMovesThePolicyButNotTheReferenceNorTheBase() {
        for (Map.Entry<String, PeftModel> e : tuners().entrySet()) {
            String tuner = e.getKey();
            PeftModel peft = e.getValue();
            ComputationGraph base = base();
            INDArray baseParams = base.params().dup();
            Map<String, INDArray> frozen = frozenArrays(peft);
            List<PreferencePair> train = pairs(2, 16);
            List<PreferencePair> heldOut = pairs(3, 16);
            List<int[]> prompts = heldOut.stream().map(PreferencePair::prompt).toList();
            List<int[]> chosen = heldOut.stream().map(PreferencePair::chosen).toList();
            double[] refBefore;
            try (PeftModel.AdapterScope off = peft.disableAdapter()) {
                refBefore = Sequences.logProbs(peft.graph(), prompts, chosen);
            }
            double[] policyBefore = Sequences.logProbs(peft.graph(), prompts, chosen);
            assertArrayEquals(Sequences.logProbs(base, prompts, chosen), refBefore, 0.0, tuner);

            DpoTrainer dpo = new DpoTrainer(peft, DpoConfig.builder().beta(0.5).build());
            DpoMetrics first = dpo.step(train);
            for (int s = 0; s < 30; s++) {
                dpo.step(train);
            }
            DpoMetrics after = dpo.evaluate(heldOut);

            double[] refAfter;
            try (PeftModel.AdapterScope off = peft.disableAdapter()) {
                refAfter = Sequences.logProbs(peft.graph(), prompts, chosen);
            }
            double[] policyAfter = Sequences.logProbs(peft.graph(), prompts, chosen);
            assertArrayEquals(refBefore, refAfter, 0.0, tuner + ": the reference must not move");
            assertTrue(mean(policyAfter) > mean(policyBefore) + 0.5, tuner + ": the chosen responses should gain "
                    + "log-probability: " + mean(policyBefore) + " -> " + mean(policyAfter));
            assertEquals(Math.log(2), first.loss(), 1e-6, tuner);
            assertTrue(after.loss() < 0.5 * Math.log(2), tuner + ": held-out loss " + after.loss());
            assertTrue(after.rewardAccuracy() > 0.9, tuner + ": held-out reward accuracy " + after.rewardAccuracy());
            assertTrue(after.rewardMargin() > 0, tuner);

            assertEquals(baseParams, base.params(), tuner + ": the user's graph is only read");
            frozenArrays(peft).forEach((k, v) -> assertEquals(frozen.get(k), v, tuner + ": frozen " + k));
            INDArray state = peft.graph().getUpdater().getStateViewArray();
            assertEquals(2 * peft.graph().numParams(), state.length(), tuner + ": Adam state for trainable "
                    + "parameters only");
            assertEquals(peft.trainableParameters(), peft.graph().numParams());
            assertEquals(31, peft.graph().getIterationCount(), tuner + ": each step is one fit");
        }
    }

    private static double mean(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x;
        }
        return s / v.length;
    }
}
