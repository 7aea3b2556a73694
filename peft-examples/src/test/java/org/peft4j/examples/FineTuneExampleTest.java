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

/** The main example end to end on tiny settings (issue #6). */
class FineTuneExampleTest {

    @Test
    void everyMethodBeatsTheZeroShotBaselineAndItsFilesAreWritten(@TempDir Path dir) throws Exception {
        FineTuneExample ex = new FineTuneExample();
        FineTuneExample.commandLine(ex).parseArgs("--steps", "30", "--pretrain-steps", "30", "--max-chars", "20000",
                "--eval-windows", "32", "--sample-chars", "5", "--d-model", "32", "--heads", "2", "--layers", "1",
                "--seq-len", "32", "--batch", "16", "--no-progress", "--out", dir.resolve("out").toString(),
                "--cache-dir", dir.resolve("cache").toString());
        FineTuneExample.Outcome o = ex.runExperiment();

        List<MethodResult> rows = o.rows();
        assertEquals(TuningMethods.ZERO_SHOT, rows.get(0).method());
        assertEquals(TuningMethods.all().size(), rows.size(), "every registered method ran");
        double zeroShot = rows.get(0).target().loss();
        for (MethodResult r : rows.subList(1, rows.size())) {
            assertTrue(r.target().loss() < zeroShot, r.method() + " held-out loss " + r.target().loss()
                    + " should beat zero-shot " + zeroShot);
            assertTrue(r.reloadMaxAbsDiff() <= 1e-5, r.method() + ": the reloaded adapter gives other outputs ("
                    + r.reloadMaxAbsDiff() + ")");
            assertTrue(r.savedBytes() > 0, r.method() + " saved nothing");
        }
        for (String f : List.of("results.md", "results.csv", "samples.md", "loss-curves.png")) {
            Path p = dir.resolve("out").resolve(f);
            assertTrue(Files.size(p) > 0, f + " written");
        }
        assertTrue(Files.isRegularFile(dir.resolve("out/adapters/lora-qv/adapter_model.safetensors")));
        assertTrue(Files.readString(dir.resolve("out/results.csv")).lines().count() == rows.size() + 1);
        String zeroShotRow = Files.readString(dir.resolve("out/results.md")).lines()
                .filter(l -> l.startsWith("| " + TuningMethods.ZERO_SHOT + " |")).findFirst().orElseThrow();
        assertEquals(5, zeroShotRow.split(" – ", -1).length - 1,
                "zero-shot has no training state, memory, time or saved files: " + zeroShotRow);
        // the chart's zero-shot curve is the base's loss on the batches the methods train on:
        // LoRA (B = 0 at the start) has exactly that loss at its first step
        assertEquals(30, rows.get(0).trainLoss().size());
        assertEquals(rows.get(0).trainLoss().get(0), row(rows, "lora-qv").trainLoss().get(0), 1e-4,
                "first training batch: zero-shot curve vs LoRA");

        // From the cache, full fine-tuning must start where it did right after pretraining: the same loss.
        FineTuneExample again = new FineTuneExample();
        FineTuneExample.commandLine(again).parseArgs("--steps", "30", "--pretrain-steps", "30", "--max-chars", "20000",
                "--eval-windows", "32", "--sample-chars", "5", "--d-model", "32", "--heads", "2", "--layers", "1",
                "--seq-len", "32", "--batch", "16", "--no-progress", "--method", "full",
                "--out", dir.resolve("out2").toString(), "--cache-dir", dir.resolve("cache").toString());
        FineTuneExample.Outcome cachedRun = again.runExperiment();
        assertTrue(cachedRun.pretrainedFromCache(), "the pretrained model is cached");
        assertEquals(row(rows, "full").target().loss(), row(cachedRun.rows(), "full").target().loss(),
                "full fine-tuning from the cached model vs right after pretraining");
    }

    private static MethodResult row(List<MethodResult> rows, String method) {
        return rows.stream().filter(r -> r.method().equals(method)).findFirst()
                .orElseThrow(() -> new AssertionError("no row for " + method));
    }

    @Test
    void badFlagsGetAClearMessageAndExitCodeTwo() {
        StringWriter err = new StringWriter();
        CommandLine cl = FineTuneExample.commandLine(new FineTuneExample());
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("--method", "lora-qv,nonsense"));
        assertTrue(err.toString().contains("unknown method \"nonsense\""), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--steps", "0"));
        assertTrue(err.toString().contains("--steps must be positive; got 0"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(2, cl.execute("--no-such-flag"));
        assertTrue(err.toString().contains("Unknown option"), err.toString());
    }

    @Test
    void aBadFlagsErrorIsTheLastLineAfterAOneLineUsage() {
        StringWriter err = new StringWriter();
        CommandLine cl = FineTuneExample.commandLine(new FineTuneExample());
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("--steps", "0"));
        List<String> lines = err.toString().lines().toList();
        assertEquals(List.of("Usage: java -jar peft-examples/target/peft-examples.jar [OPTIONS]   (--help lists every option)",
                "Error: --steps must be positive; got 0"), lines);
    }

    @Test
    void theExpectedTimeOfTheDefaultRunIsThatOfTheMeasuredRun() {
        // measured: 3 min 12 s with the pretrained model cached, 3 min 49 s with pretraining
        String line = new FineTuneExample().expectedTime(TuningMethods.all().size() - 1);
        assertTrue(line.startsWith("Expected time on a 2-core machine: about 3 min for 13 method(s) x 150 steps, "
                + "plus about 40 s of pretraining (600 steps)"), line);
    }

    @Test
    void versionIsTheOneAdapterFilesRecord() {
        StringWriter out = new StringWriter();
        CommandLine cl = FineTuneExample.commandLine(new FineTuneExample());
        cl.setOut(new PrintWriter(out));
        assertEquals(0, cl.execute("-V"));
        String version = Cli.version();
        assertTrue(version.matches("\\d+\\.\\d+\\.\\d+(-SNAPSHOT)?"), "the filtered Maven version: " + version);
        assertTrue(out.toString().contains("peft4j " + version), out.toString());
    }
}
