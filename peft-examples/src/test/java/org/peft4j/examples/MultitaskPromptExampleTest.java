package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The multitask prompt tuning example on tiny settings (a barely pretrained decoder, so the figures
 * are only checked to move the right way): every start learns the target, the source fits its tasks.
 */
class MultitaskPromptExampleTest {

    @Test
    void sourcePromptFitsItsTasksAndEveryTargetStartLearnsTheHeldOutLanguage(@TempDir Path dir) throws Exception {
        MultitaskPromptExample ex = new MultitaskPromptExample();
        new CommandLine(ex).parseArgs("--tiny", "--source-steps", "30",
                "--steps", "12", "--virtual-tokens", "4", "--eval-windows", "8", "--pretrain-steps", "30",
                "--max-chars", "20000", "--out", dir.resolve("out").toString(), "--cache-dir",
                TinyCache.DIR.toString());
        MultitaskPromptExample.Outcome o = ex.run();
        List<MultitaskPromptExample.Row> rows = o.rows();
        assertEquals(List.of("prompt tuning, random init", "MPT, AVERAGE_SOURCE_TASKS", "MPT, EXACT_SOURCE_TASK (nl)",
                "MPT, ONLY_SOURCE_SHARED"), rows.stream().map(MultitaskPromptExample.Row::name)
                .filter(n -> !n.startsWith("prompt tuning, text")).toList());
        assertEquals(5, rows.size());
        for (MultitaskPromptExample.Row r : rows) {
            assertEquals(List.of(0, 3, 6, 12), List.copyOf(r.bitsPerChar().keySet()), r.name());
            double start = r.bitsPerChar().get(0);
            assertTrue(r.last() < start, r.name() + ": training on the target should lower its loss: " + r.last()
                    + " after 12 steps, " + start + " at the start");
        }
        double base = o.sourcePerTask().values().stream().mapToDouble(v -> v[0]).average().orElseThrow();
        double prompted = o.sourcePerTask().values().stream().mapToDouble(v -> v[1]).average().orElseThrow();
        assertTrue(prompted < base, "the source prompt, each language with its task id, should beat the base on the "
                + "source languages: " + prompted + " vs " + base);
        assertTrue(Files.isRegularFile(dir.resolve("out/adapters/source/adapter_model.safetensors")));
        assertTrue(Files.readString(o.report()).contains("| MPT, AVERAGE_SOURCE_TASKS |"));
    }
}
