package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The LongLoRA example on tiny settings: every trained row learns, S²-Attn costs less attention memory. */
class LongContextExampleTest {

    @Test
    void extendsTheTinyDecoderAndReportsQualityAndCost(@TempDir Path dir) throws Exception {
        LongContextExample ex = new LongContextExample();
        new CommandLine(ex).parseArgs("--tiny", "--context", "64", "--group", "16", "--steps", "12", "--batch", "4",
                "--eval-windows", "8", "--pretrain-steps", "30", "--max-chars", "20000", "--out",
                dir.resolve("out").toString(), "--cache-dir", TinyCache.DIR.toString());
        LongContextExample.Outcome o = ex.run();
        List<LongContextExample.Row> rows = o.rows();
        assertEquals(5, rows.size());
        double untrained = rows.get(1).bitsPerChar();
        for (LongContextExample.Row r : rows.subList(2, 5)) {
            assertTrue(r.bitsPerChar() < untrained, r.name() + ": " + r.bitsPerChar() + " should beat the untrained "
                    + "interpolated base " + untrained);
            assertTrue(r.trainable() > 0 && r.msPerStep() > 0, r.toString());
        }
        LongContextExample.Row full = rows.get(3);
        LongContextExample.Row s2 = rows.get(4);
        assertTrue(s2.name().startsWith("LongLoRA") && full.name().contains("full attention"), rows.toString());
        assertEquals(4 * full.attentionBytes(), 16 * s2.attentionBytes(), "scores per query: 16 keys instead of 64");
        assertEquals(full.trainable(), s2.trainable(), "S²-Attn adds no parameters");
        assertTrue(s2.workspaceBytes() > 0 && full.workspaceBytes() > 0, "working memory measured");
        assertTrue(o.reloadMaxAbsDiff() <= 1e-5, "reloaded adapter: " + o.reloadMaxAbsDiff());
        assertTrue(Files.readString(o.report()).contains("| LongLoRA (LoRA+, S²-Attn G=16) at 64 |"));
    }
}
