package org.peft4j.examples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.PositionInterpolation;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.longlora.LongLoraConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * LongLoRA on real text: the character decoder of {@link FineTuneExample} (pretrained at a
 * context of 64 characters, same cache) is extended to 256 characters by position interpolation
 * and fine-tuned on its source languages at the new length, with shifted sparse attention
 * (S²-Attn, groups of 64) and, for comparison, with full attention; both train LoRA on
 * {@code q, k, v, o} plus the embeddings and norms (LongLoRA's "+"). Reported on held-out windows
 * of 256 characters: bits per character of the base with a sliding window of 64, of the
 * interpolated base before training, of the same training at context 64 (a control: as much
 * training, no longer context), of full-attention LoRA+ and of LongLoRA at 256; and the cost of a
 * training step at 256 (time, memory) with S²-Attn and with full attention.
 *
 * <p>Run: {@code java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.LongContextExample}.
 */
@Command(name = "long-context", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Extends the pretrained character decoder from 64 to 256 characters with LongLoRA.")
public final class LongContextExample implements Callable<Integer> {

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--context", paramLabel = "T", description = "extended context in characters (default: ${DEFAULT-VALUE})")
    int context = 256;

    @Option(names = "--group", paramLabel = "G", description = "S²-Attn group size (default: ${DEFAULT-VALUE})")
    int group = 64;

    @Option(names = "--steps", paramLabel = "N", description = "fine-tuning steps per row (default: ${DEFAULT-VALUE})")
    int steps = 200;

    @Option(names = "--batch", paramLabel = "B", description = "windows of --context per step (default: ${DEFAULT-VALUE})")
    int batch = 8;

    @Option(names = "--rank", paramLabel = "R", description = "LoRA rank, alpha = 2r (default: ${DEFAULT-VALUE})")
    int rank = 8;

    @Option(names = "--lr", paramLabel = "LR", description = "Adam learning rate (default: ${DEFAULT-VALUE})")
    double learningRate = 2e-3;

    @Option(names = "--eval-windows", paramLabel = "N", description = "held-out windows of --context (default: ${DEFAULT-VALUE})")
    int evalWindows = 64;

    @Option(names = "--pretrain-steps", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int pretrainSteps = 600;

    @Option(names = "--max-chars", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int maxChars = 1_000_000;

    @Option(names = "--seed", paramLabel = "S", description = "seed of the batches (default: ${DEFAULT-VALUE})")
    long seed = 42;

    @Option(names = "--out", paramLabel = "DIR", description = "output directory (default: ${DEFAULT-VALUE})")
    Path out = Path.of("peft-runs", "long-context");

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "pretrained-model cache (default: ${DEFAULT-VALUE})")
    Path cacheDir = Path.of(System.getProperty("user.home"), ".cache", "peft4j", "pretrained");

    @Option(names = "--tiny", description = "tiny model and data, for tests (pretrained context 32)")
    boolean tiny;

    /**
     * One row of the table.
     *
     * @param name what was evaluated
     * @param bitsPerChar held-out bits per character over windows of {@code --context}
     * @param trainable trainable parameters (0 for rows that do not train)
     * @param msPerStep mean training step time, first step excluded (0 for rows that do not train)
     * @param workspaceBytes the size DL4J's workspaces grew to while training: the peak working memory
     *     of a training step (activations kept for backprop, and every layer's and vertex's scratch)
     * @param attentionBytes bytes of one attention core's score and probability arrays in a training step
     */
    record Row(String name, double bitsPerChar, long trainable, double msPerStep, long workspaceBytes,
               long attentionBytes) {
    }

    /** What a run produced. */
    record Outcome(List<Row> rows, double reloadMaxAbsDiff, Path report) {
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new LongContextExample()).execute(args));
    }

    @Override
    public Integer call() {
        run();
        return 0;
    }

    Outcome run() {
        if (steps <= 0 || batch <= 0 || rank <= 0 || evalWindows <= 0 || pretrainSteps <= 0 || maxChars <= 0
                || !(learningRate > 0)) {
            throw new ParameterException(spec.commandLine(), "--steps, --batch, --rank, --lr, --eval-windows, "
                    + "--pretrain-steps and --max-chars must be positive");
        }
        List<String> args = new ArrayList<>(List.of("--pretrain-steps", String.valueOf(pretrainSteps), "--max-chars",
                String.valueOf(maxChars), "--cache-dir", cacheDir.toString(), "--no-progress"));
        if (tiny) {
            args.addAll(List.of("--d-model", "32", "--heads", "2", "--layers", "1", "--seq-len", "32", "--batch", "16"));
        }
        FineTuneExample settings = new FineTuneExample();
        FineTuneExample.commandLine(settings).parseArgs(args.toArray(String[]::new));
        int trained = settings.seqLen;
        if (context <= trained || context % group != 0 || group % 2 != 0 || group > context) {
            throw new ParameterException(spec.commandLine(), "--context " + context + " must be longer than the "
                    + "pretrained context " + trained + " and a multiple of --group " + group + ", an even number");
        }
        FineTuneExample.Base base = settings.loadOrPretrainBase();
        DomainData data = base.data();
        List<DataSet> heldOut = data.sourceHeldOut().fixedBatches(evalWindows, batch, context);
        ComputationGraph longBase = PositionInterpolation.extend(base.graph(), trained, context);
        int vocab = data.vocab().size();
        List<Row> rows = new ArrayList<>();

        rows.add(new Row("base, sliding window " + trained, SlidingWindow.bitsPerChar(base.graph(), heldOut, trained), 0, 0, 0, 0));
        rows.add(new Row("base, positions interpolated to " + context + ", untrained",
                HeldOutMetrics.of(longBase, heldOut, vocab).bitsPerChar(), 0, 0, 0, 0));

        // control: the same LoRA+ training at the pretrained context, as many characters per step
        PeftModel shortTuned = Peft.wrap(base.graph(), config(base.graph(), 0));
        Row control = train(shortTuned, data, trained, batch * (context / trained), "LoRA+ trained at " + trained
                + ", sliding window " + trained, 0);
        rows.add(new Row(control.name(), SlidingWindow.bitsPerChar(shortTuned.graph(), heldOut, trained),
                control.trainable(), control.msPerStep(), control.workspaceBytes(), control.attentionBytes()));

        PeftModel longLora = Peft.wrap(longBase, config(longBase, group));
        Row s2 = train(longLora, data, context, batch, "LongLoRA (LoRA+, S²-Attn G=" + group + ") at " + context, group);
        PeftModel fullAttention = Peft.wrap(longBase, config(longBase, 0));
        Row full = train(fullAttention, data, context, batch, "LoRA+ with full attention at " + context, 0);
        rows.add(new Row(full.name(), HeldOutMetrics.of(fullAttention.graph(), heldOut, vocab).bitsPerChar(),
                full.trainable(), full.msPerStep(), full.workspaceBytes(), full.attentionBytes()));
        rows.add(new Row(s2.name(), HeldOutMetrics.of(longLora.graph(), heldOut, vocab).bitsPerChar(), s2.trainable(),
                s2.msPerStep(), s2.workspaceBytes(), s2.attentionBytes()));

        double reloadDiff;
        try {
            Path dir = out.resolve("adapters").resolve("longlora");
            longLora.saveAdapter(dir);
            PeftModel reloaded = Peft.load(PositionInterpolation.extend(base.graph(), trained, context), dir);
            INDArray x = heldOut.get(0).getFeatures();
            longLora.graph().clear();
            reloadDiff = longLora.graph().outputSingle(false, x).castTo(DataType.DOUBLE)
                    .sub(reloaded.graph().outputSingle(false, x).castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save or reload the LongLoRA adapter under " + out, e);
        }

        String md = report(rows, trained, settings, reloadDiff);
        System.out.println();
        System.out.print(md);
        Path report = out.resolve("long-context.md");
        try {
            Files.createDirectories(out);
            Files.writeString(report, md);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + report, e);
        }
        System.out.println("Wrote " + report + " and the LongLoRA adapter under " + out.resolve("adapters"));
        return new Outcome(List.copyOf(rows), reloadDiff, report);
    }

    /** LoRA (q, k, v, o) with the embeddings and norms trainable, S²-Attn of {@code g} (0: full attention). */
    private LongLoraConfig config(ComputationGraph base, int g) {
        LoraConfig lora = LoraConfig.builder().rank(rank).alpha(2.0 * rank).targetModulesRegex("block\\d+\\.attn\\.(q|k|v|o)")
                .build();
        return LongLoraConfig.builder().lora(lora).groupSize(g).trainEmbeddingsAndNormsOf(base).build();
    }

    private Row train(PeftModel m, DomainData data, int length, int windows, String name, int g) {
        ComputationGraph graph = m.graph();
        graph.setLearningRate(learningRate);
        System.out.println(name + ": " + m.trainableParametersSummary());
        Nd4j.getWorkspaceManager().destroyAllWorkspacesForCurrentThread();
        TrainingLoop.Outcome o = TrainingLoop.run(graph, data.sourceTrain(), steps, windows, length,
                new Random(seed + 1), name.length() > 9 ? name.substring(0, 9) : name, new MemoryProbe(), false);
        long workspaces = 0;
        for (MemoryWorkspace w : Nd4j.getWorkspaceManager().getAllWorkspacesForCurrentThread()) {
            workspaces += w.getCurrentSize();
        }
        Nd4j.getWorkspaceManager().destroyAllWorkspacesForCurrentThread();
        return new Row(name, Double.NaN, m.trainableParameters(), o.msPerStep(), workspaces,
                attentionBytes(windows, length, g, m));
    }

    /**
     * Bytes of the scores and probabilities ({@code 2 × b·h·T·K} floats, {@code K} = keys per query:
     * {@code T}, or {@code G} with S²-Attn) of one attention core in one training step.
     */
    private static long attentionBytes(int windows, int length, int g, PeftModel m) {
        int heads = m.graph().getConfiguration().getVertices().values().stream()
                .filter(v -> v instanceof org.peft4j.core.blocks.AttentionCore)
                .map(v -> ((org.peft4j.core.blocks.AttentionCore) v).getHeads()).findFirst().orElse(0);
        long keys = g > 0 ? g : length;
        return 2L * 4L * windows * heads * length * keys;
    }

    private String report(List<Row> rows, int trained, FineTuneExample settings, double reloadDiff) {
        StringBuilder md = new StringBuilder();
        md.append(String.format(Locale.ROOT, "Extending the character decoder (d=%d, %d layers, %d heads) pretrained at %d "
                        + "characters on %s to %d characters: %d steps of %d windows per trained row, LoRA r=%d (alpha %d) on "
                        + "q, k, v, o plus the embeddings and norms, Adam %.0e. Held-out %s text, %d windows of %d "
                        + "characters.%n%n", settings.dModel, settings.layers, settings.heads, trained, settings.sources,
                context, steps, batch, rank, 2 * rank, learningRate, settings.sources, evalWindows, context));
        md.append("| model | held-out bits/char | trainable params | ms/step | training working memory (MiB) | attention scores+probs per core per step (MiB) |\n");
        md.append("|---|---:|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            md.append(String.format(Locale.ROOT, "| %s | %.3f | %s | %s | %s | %s |%n", r.name(), r.bitsPerChar(),
                    r.trainable() == 0 ? "-" : String.format(Locale.ROOT, "%,d", r.trainable()),
                    r.msPerStep() == 0 ? "-" : String.format(Locale.ROOT, "%.0f", r.msPerStep()),
                    r.workspaceBytes() == 0 ? "-" : String.format(Locale.ROOT, "%.1f", r.workspaceBytes() / 1048576.0),
                    r.attentionBytes() == 0 ? "-" : String.format(Locale.ROOT, "%.1f", r.attentionBytes() / 1048576.0)));
        }
        md.append(String.format(Locale.ROOT, "%nThe control row trains at %d characters with %d windows per step (as many "
                + "characters as the rows at %d). Trained rows at %d are scored with full attention (S²-Attn is for "
                + "training only). The LongLoRA adapter reloaded from its LoRA files onto the interpolated base gives the "
                + "same outputs (max |diff| %.2e). Training working memory is the size DL4J's workspaces grew to over the "
                + "row's training steps (activations kept for backprop and every layer's scratch arrays).%n",
                trained, batch * (context / trained), context, context, reloadDiff));
        return md.toString();
    }
}
