package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The preference example end to end on tiny settings: every stage runs, learns something, and is saved. */
class PreferenceExampleTest {

    @Test
    void rewardModelDpoAndPpoRunOnRealTextAndTheirAdaptersReload(@TempDir Path dir) throws Exception {
        PreferenceExample ex = new PreferenceExample();
        new CommandLine(ex).parseArgs("--tiny", "--pretrain-steps", "30", "--max-chars", "150000", "--prompt-chars", "12",
                "--response-chars", "16", "--rank", "4", "--reward-steps", "20", "--dpo-steps", "10",
                "--lr-reward", "1e-2", "--lr-dpo", "1e-2",
                "--ppo-iterations", "2", "--judge-steps", "10", "--pairs-per-step", "8", "--ppo-prompts", "8", "--eval-prompts", "24",
                "--max-pairs", "64", "--no-progress", "--out", dir.resolve("out").toString(),
                "--cache-dir", dir.resolve("cache").toString());
        PreferenceExample.Outcome o = ex.run();

        List<PreferenceExample.Row> rows = o.rows();
        assertEquals(4, rows.size(), "base, reward model, DPO, PPO");
        assertTrue(o.rewardHeldOut().accuracy() > 0.6, "the reward model tells real text from base samples on "
                + "held-out pairs: " + o.rewardHeldOut());
        assertTrue(o.dpoHeldOut().rewardMargin() > 0, "DPO ranks real continuations higher: " + o.dpoHeldOut());
        assertTrue(rows.get(2).realBitsPerChar() < rows.get(0).realBitsPerChar(), "DPO makes real " + "text likelier: "
                + rows.get(2).realBitsPerChar() + " vs base " + rows.get(0).realBitsPerChar());
        assertEquals(2, o.ppo().size());
        for (PreferenceExample.Row r : rows.subList(2, 4)) {
            assertTrue(r.kl() > 0 && Double.isFinite(r.kl()), r.method() + " moved off the reference: " + r.kl());
            assertTrue(r.lmWinRate() >= 0 && r.lmWinRate() <= 1 && r.wordWinRate() >= 0 && r.wordWinRate() <= 1
                    && r.trainableParams() > 0, r.toString());
        }
        assertTrue(o.reloadMaxAbsDiff() <= 1e-5, "reloaded adapters give other outputs: " + o.reloadMaxAbsDiff());
        for (String f : List.of("results.md", "samples.md", "ppo-reward-kl.png")) {
            assertTrue(Files.size(dir.resolve("out").resolve(f)) > 0, f + " written");
        }
        Path adapters = dir.resolve("out/adapters");
        for (String f : List.of("rlhf/adapter_model.safetensors", "rlhf/reward/adapter_model.safetensors",
                "dpo/adapter_model.safetensors")) {
            assertTrue(Files.isRegularFile(adapters.resolve(f)), f);
        }
        assertTrue(Files.readString(adapters.resolve("rlhf/reward/adapter_config.json")).contains("\"score\""),
                "the reward head is saved as a trained module");
        assertTrue(Files.readString(dir.resolve("out/results.md")).contains("| PPO (LoRA + value head) |"));
    }
}
