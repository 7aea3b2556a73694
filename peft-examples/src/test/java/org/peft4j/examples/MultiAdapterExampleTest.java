package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The many-adapters example on tiny settings: each adapter helps its own language. */
class MultiAdapterExampleTest {

    @Test
    void eachAdapterBeatsTheBaseOnItsOwnLanguageAndSwitchingIsMeasured(@TempDir Path dir) throws Exception {
        MultiAdapterExample ex = new MultiAdapterExample();
        new CommandLine(ex).parseArgs("--tiny", "--steps", "30", "--pretrain-steps", "30", "--max-chars", "20000",
                "--switches", "30", "--out", dir.resolve("out").toString(), "--cache-dir", dir.resolve("cache").toString());
        MultiAdapterExample.Outcome o = ex.run();
        Map<String, Double> base = o.bitsPerChar().get("base");
        for (String d : base.keySet()) {
            double own = o.bitsPerChar().get("adapter " + d).get(d);
            assertTrue(own < base.get(d), d + ": its adapter " + own + " should beat the base " + base.get(d));
        }
        assertTrue(o.switchMicros() > 0);
        assertEquals(4L * 2 * (32 * 8 + 8 * 32), o.bytesPerAdapter(), "LoRA r=8 on q and v of one d=32 block");
        assertTrue(Files.readString(o.report()).contains("| adapter pt |"));
        assertTrue(Files.isRegularFile(dir.resolve("out/adapters/nl/adapter_model.safetensors")));
    }
}
