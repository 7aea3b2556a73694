package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Progress where no terminal redraws it (a log, a pipe, CI): plain lines. */
class TrainingLoopTest {

    @Test
    void progressInALogIsAboutOnePlainLinePerTenthOfTheRun() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        long[] now = {0};
        try (TrainingLoop.Progress p = TrainingLoop.Progress.lines("lora-qv", 25, new PrintStream(bytes, true,
                StandardCharsets.UTF_8), () -> now[0])) {
            for (int s = 1; s <= 25; s++) {
                now[0] += 500_000_000L; // half a second per step
                p.step(3.0 - s / 100.0);
            }
        }
        String log = bytes.toString(StandardCharsets.UTF_8);
        assertFalse(log.contains("\r"), "no carriage-return redraws");
        List<String> lines = log.lines().toList();
        // the first step, every third (ceil(25 / 10)) and the last
        assertEquals(10, lines.size(), log);
        assertEquals("lora-qv   step 1/25  loss 2.990  0.5 s elapsed, 0m 12s left", lines.get(0));
        assertEquals("lora-qv   step 3/25  loss 2.970  1.5 s elapsed, 0m 11s left", lines.get(1));
        assertEquals("lora-qv   step 25/25  loss 2.750  12.5 s elapsed, 0m 00s left", lines.get(9));
    }
}
