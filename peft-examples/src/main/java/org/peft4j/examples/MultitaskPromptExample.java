package org.peft4j.examples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.function.Function;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.mpt.MultitaskPromptTuningConfig;
import org.peft4j.core.prompt.PromptTuningConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Multitask prompt tuning on real text: the character decoder of {@link FineTuneExample} (same
 * cache) gets one multitask prompt trained on several source languages at once (by default four
 * the decoder was not pretrained on; each language a task, with its own rank-1 factor of the
 * shared prompt); the held-out target language then
 * starts from that source adapter with each of PEFT's transfer inits (average of the source tasks,
 * one source task, the shared prompt only) and, for comparison, plain prompt tuning starts from a
 * random prompt and from the embeddings of target text. Every target row trains the same number
 * of steps at the same learning rate; held-out bits per character of the target language are
 * reported along the way. Windows are {@code p} characters shorter than the decoder's pretraining
 * windows, so that with the {@code p} virtual tokens in front every position a row uses is one the
 * decoder was pretrained at (its positional table's last rows never trained); the untuned base is
 * scored on the same windows.
 *
 * <p>Run: {@code java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.MultitaskPromptExample}.
 */
@Command(name = "multitask-prompt", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Multitask prompt tuning: source languages as tasks, transferred to a held-out language.")
public final class MultitaskPromptExample implements Callable<Integer> {

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--source-tasks", split = ",", paramLabel = "LANGS",
            description = "source languages, one task each (default: ${DEFAULT-VALUE}: languages the decoder was not "
                    + "pretrained on)")
    List<String> sourceTasks = List.of("da", "fi", "nl", "sv");

    @Option(names = "--target", paramLabel = "LANG", description = "held-out target language (default: ${DEFAULT-VALUE})")
    String target = "pt";

    @Option(names = "--exact-task", paramLabel = "LANG",
            description = "the source task EXACT_SOURCE_TASK starts from (default: ${DEFAULT-VALUE})")
    String exactTask = "nl";

    @Option(names = "--virtual-tokens", paramLabel = "P", description = "prompt length (default: ${DEFAULT-VALUE})")
    int virtualTokens = CharModels.VIRTUAL_TOKENS;

    @Option(names = "--source-steps", paramLabel = "N", description = "multitask source training steps (default: ${DEFAULT-VALUE})")
    int sourceSteps = 400;

    @Option(names = "--steps", paramLabel = "N", description = "target training steps per row (default: ${DEFAULT-VALUE})")
    int steps = 150;

    @Option(names = "--lr", paramLabel = "LR", description = "Adam learning rate, every row (default: ${DEFAULT-VALUE})")
    double learningRate = 1e-2;

    @Option(names = "--eval-windows", paramLabel = "N", description = "held-out windows per language (default: ${DEFAULT-VALUE})")
    int evalWindows = 128;

    @Option(names = "--pretrain-steps", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int pretrainSteps = 600;

    @Option(names = "--max-chars", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int maxChars = 1_000_000;

    @Option(names = "--seed", paramLabel = "S", description = "seed of batches and inits (default: ${DEFAULT-VALUE})")
    long seed = 42;

    @Option(names = "--out", paramLabel = "DIR", description = "output directory (default: ${DEFAULT-VALUE})")
    Path out = Path.of("peft-runs", "multitask-prompt");

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "pretrained-model cache (default: ${DEFAULT-VALUE})")
    Path cacheDir = Path.of(System.getProperty("user.home"), ".cache", "peft4j", "pretrained");

    @Option(names = "--tiny", description = "tiny model and data, for tests")
    boolean tiny;

    /**
     * One target row.
     *
     * @param name how the target started
     * @param trainable trainable parameters
     * @param bitsPerChar held-out target bits per character after each checkpoint (step → value), step 0 first
     */
    record Row(String name, long trainable, Map<Integer, Double> bitsPerChar) {

        double last() {
            return bitsPerChar.values().stream().reduce((a, b) -> b).orElseThrow();
        }
    }

    /** What a run produced: the target rows, the source model per task, the report. */
    record Outcome(double zeroShot, List<Row> rows, Map<String, double[]> sourcePerTask, Path report) {
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new MultitaskPromptExample()).execute(args));
    }

    @Override
    public Integer call() {
        run();
        return 0;
    }

    Outcome run() {
        if (sourceSteps <= 0 || steps <= 0 || virtualTokens <= 0 || evalWindows <= 0 || pretrainSteps <= 0
                || maxChars <= 0 || !(learningRate > 0)) {
            throw new ParameterException(spec.commandLine(), "--source-steps, --steps, --virtual-tokens, --lr, "
                    + "--eval-windows, --pretrain-steps and --max-chars must be positive");
        }
        if (sourceTasks.size() < 2 || sourceTasks.stream().distinct().count() != sourceTasks.size()
                || sourceTasks.contains(target) || !sourceTasks.contains(exactTask)) {
            throw new ParameterException(spec.commandLine(), "--source-tasks must name at least two distinct languages, "
                    + "not the --target " + target + ", and include --exact-task " + exactTask + "; got " + sourceTasks);
        }
        List<String> args = new ArrayList<>(List.of("--target", target, "--pretrain-steps", String.valueOf(pretrainSteps),
                "--max-chars", String.valueOf(maxChars), "--cache-dir", cacheDir.toString(), "--no-progress"));
        if (tiny) {
            args.addAll(List.of("--d-model", "32", "--heads", "2", "--layers", "1", "--seq-len", "32", "--batch", "16"));
        }
        FineTuneExample settings = new FineTuneExample();
        FineTuneExample.commandLine(settings).parseArgs(args.toArray(String[]::new));
        for (String l : sourceTasks) {
            if (!LanguageGuess.LANGUAGES.contains(l)) {
                throw new ParameterException(spec.commandLine(), "unknown language \"" + l + "\"; known: "
                        + LanguageGuess.LANGUAGES);
            }
        }
        if (virtualTokens > CharModels.VIRTUAL_TOKENS) {
            throw new ParameterException(spec.commandLine(), "--virtual-tokens must be at most "
                    + CharModels.VIRTUAL_TOKENS + " (the room the decoder's position table leaves)");
        }
        FineTuneExample.Base base = settings.loadOrPretrainBase();
        CharVocabulary vocab = base.data().vocab();
        int len = settings.seqLen - virtualTokens;
        if (len < 2) {
            throw new ParameterException(spec.commandLine(), "--virtual-tokens " + virtualTokens + " leaves windows of "
                    + len + " characters; use fewer");
        }
        int batch = settings.batch;
        Map<String, TextStream> train = new LinkedHashMap<>();
        Map<String, List<DataSet>> heldOut = new LinkedHashMap<>();
        for (String l : sourceTasks) {
            List<String> docs = base.byLanguage().get(l);
            int cut = Math.max(1, docs.size() * 9 / 10);
            train.put(l, TextStream.of(limit(docs.subList(0, cut), maxChars), vocab));
            heldOut.put(l, TextStream.of(limit(docs.subList(cut, docs.size()), maxChars / 9), vocab)
                    .fixedBatches(evalWindows, batch, len));
        }
        TextStream targetTrain = base.data().targetTrain();
        List<DataSet> targetHeldOut = base.data().targetHeldOut().fixedBatches(evalWindows, batch, len);
        double zeroShot = HeldOutMetrics.of(base.graph(), targetHeldOut, vocab.size()).bitsPerChar();

        // 1. source: one multitask prompt over every source language, each language a task
        MultitaskPromptTuningConfig sourceConfig = MultitaskPromptTuningConfig.builder().numVirtualTokens(virtualTokens)
                .numTasks(sourceTasks.size()).numRanks(1).build();
        Nd4j.getRandom().setSeed(seed);
        PeftModel source = Peft.wrap(base.graph(), sourceConfig);
        source.graph().setLearningRate(learningRate);
        System.out.println("source (" + sourceTasks + "): " + source.trainableParametersSummary());
        Random rnd = new Random(seed + 1);
        TrainingLoop.run(source.graph(), () -> mixedBatch(train, batch, len, rnd), ComputationGraph::fit, 1.0 / len,
                sourceSteps, "source", new MemoryProbe(), false);
        Map<String, double[]> perTask = new LinkedHashMap<>();
        for (int k = 0; k < sourceTasks.size(); k++) {
            String l = sourceTasks.get(k);
            perTask.put(l, new double[] {HeldOutMetrics.of(base.graph(), heldOut.get(l), vocab.size()).bitsPerChar(),
                bitsPerChar(source.graph(), heldOut.get(l), k, vocab.size())});
        }
        Path sourceDir = out.resolve("adapters").resolve("source");
        try {
            source.saveAdapter(sourceDir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save the source adapter to " + sourceDir, e);
        }
        Path sourceWeights = sourceDir.resolve("adapter_model.safetensors");

        // 2. target: every start trains the same steps at the same rate
        int[] text = targetTrain.ids();
        int[] initIds = java.util.Arrays.copyOf(text, virtualTokens);
        Map<String, PeftConfig> starts = new LinkedHashMap<>();
        starts.put("prompt tuning, random init", PromptTuningConfig.builder().numVirtualTokens(virtualTokens).initRandom()
                .build());
        starts.put("prompt tuning, text init (\"" + vocab.decode(initIds, 0, initIds.length) + "\")",
                PromptTuningConfig.builder().numVirtualTokens(virtualTokens).initFromTokens(initIds).build());
        MultitaskPromptTuningConfig.Builder mpt = MultitaskPromptTuningConfig.builder().numVirtualTokens(virtualTokens)
                .numRanks(1);
        starts.put("MPT, AVERAGE_SOURCE_TASKS", mpt.initFromAverageOfSourceTasks(sourceWeights).build());
        starts.put("MPT, EXACT_SOURCE_TASK (" + exactTask + ")",
                mpt.initFromSourceTask(sourceWeights, sourceTasks.indexOf(exactTask)).build());
        starts.put("MPT, ONLY_SOURCE_SHARED", mpt.initFromSourceShared(sourceWeights).build());
        List<Integer> checkpoints = List.of(0, Math.max(1, steps / 4), Math.max(1, steps / 2), steps);
        List<Row> rows = new ArrayList<>();
        for (Map.Entry<String, PeftConfig> s : starts.entrySet()) {
            Nd4j.getRandom().setSeed(seed + 2);
            PeftModel m = Peft.wrap(base.graph(), s.getValue());
            m.graph().setLearningRate(learningRate);
            System.out.println(s.getKey() + ": " + m.trainableParametersSummary());
            boolean multitask = s.getValue() instanceof MultitaskPromptTuningConfig;
            Function<ComputationGraph, Double> eval = g -> multitask ? bitsPerChar(g, targetHeldOut, 0, vocab.size())
                    : HeldOutMetrics.of(g, targetHeldOut, vocab.size()).bitsPerChar();
            Map<Integer, Double> curve = new LinkedHashMap<>();
            Random r = new Random(seed + 3);
            int done = 0;
            for (int c : checkpoints) {
                if (c > done) {
                    if (multitask) {
                        TrainingLoop.run(m.graph(), () -> withTask(targetTrain.randomBatch(batch, len, r), 0),
                                ComputationGraph::fit, 1.0 / len, c - done, "target", new MemoryProbe(), false);
                    } else {
                        TrainingLoop.run(m.graph(), targetTrain, c - done, batch, len, r, "target", new MemoryProbe(),
                                false);
                    }
                    done = c;
                }
                curve.put(c, eval.apply(m.graph()));
            }
            rows.add(new Row(s.getKey(), m.trainableParameters(), curve));
            Nd4j.getWorkspaceManager().destroyAllWorkspacesForCurrentThread();
        }

        String md = report(zeroShot, rows, perTask, settings, checkpoints);
        System.out.println();
        System.out.print(md);
        Path report = out.resolve("multitask-prompt.md");
        try {
            Files.createDirectories(out);
            Files.writeString(report, md);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + report, e);
        }
        System.out.println("Wrote " + report + " and the source adapter under " + sourceDir);
        return new Outcome(zeroShot, List.copyOf(rows), perTask, report);
    }

    /** A batch whose every window comes from a randomly chosen source language, labelled with its task id. */
    private static MultiDataSet mixedBatch(Map<String, TextStream> train, int batch, int len, Random rnd) {
        List<TextStream> streams = new ArrayList<>(train.values());
        INDArray tokens = Nd4j.create(DataType.FLOAT, batch, len);
        INDArray labels = Nd4j.create(DataType.FLOAT, batch, 1, len);
        INDArray tasks = Nd4j.create(DataType.FLOAT, batch, 1);
        for (int b = 0; b < batch; b++) {
            int k = rnd.nextInt(streams.size());
            DataSet one = streams.get(k).randomBatch(1, len, rnd);
            tokens.getRow(b).assign(one.getFeatures().getRow(0));
            labels.get(org.nd4j.linalg.indexing.NDArrayIndex.point(b)).assign(one.getLabels().get(
                    org.nd4j.linalg.indexing.NDArrayIndex.point(0)));
            tasks.putScalar(b, 0, k);
        }
        return new MultiDataSet(new INDArray[] {tokens, tasks}, new INDArray[] {labels});
    }

    private static MultiDataSet withTask(DataSet ds, int task) {
        INDArray tasks = Nd4j.zeros(DataType.FLOAT, ds.getFeatures().size(0), 1).addi(task);
        return new MultiDataSet(new INDArray[] {ds.getFeatures(), tasks}, new INDArray[] {ds.getLabels()});
    }

    /** Held-out bits per character of a multitask-prompted graph, every window labelled with {@code task}. */
    static double bitsPerChar(ComputationGraph g, List<DataSet> batches, int task, int vocabSize) {
        double nll = 0;
        long count = 0;
        for (DataSet ds : batches) {
            g.clear();
            INDArray tasks = Nd4j.zeros(DataType.FLOAT, ds.getFeatures().size(0), 1).addi(task);
            INDArray outp = g.output(false, ds.getFeatures(), tasks)[0].castTo(DataType.DOUBLE);
            INDArray labels = HeldOutMetrics.oneHot(ds.getLabels(), vocabSize);
            nll -= Transforms.log(outp.add(1e-30), false).muli(labels).sumNumber().doubleValue();
            count += labels.size(0) * labels.size(2);
        }
        return nll / count / Math.log(2);
    }

    private String report(double zeroShot, List<Row> rows, Map<String, double[]> perTask, FineTuneExample settings,
                          List<Integer> checkpoints) {
        StringBuilder md = new StringBuilder();
        md.append(String.format(Locale.ROOT, "Multitask prompt tuning on the character decoder (d=%d, %d layers) pretrained on "
                        + "%s: source tasks %s trained together for %d steps (p = %d virtual tokens, rank 1, one task per "
                        + "language); target %s, %d steps per row, Adam %.0e, batch %d x %d characters. Held-out target bits "
                        + "per character (the base model, untuned: %.3f):%n%n", settings.dModel, settings.layers,
                settings.sources, sourceTasks, sourceSteps, virtualTokens, target, steps, learningRate, settings.batch,
                settings.seqLen - virtualTokens, zeroShot));
        md.append("| start | trainable params |");
        checkpoints.forEach(c -> md.append(" after ").append(c).append(" steps |"));
        md.append("\n|---|---:|");
        checkpoints.forEach(c -> md.append("---:|"));
        md.append('\n');
        for (Row r : rows) {
            md.append("| ").append(r.name()).append(String.format(Locale.ROOT, " | %,d |", r.trainable()));
            r.bitsPerChar().values().forEach(v -> md.append(String.format(Locale.ROOT, " %.3f |", v)));
            md.append('\n');
        }
        md.append(String.format(Locale.ROOT, "%nThe source model on each source language (held-out bits per character, "
                + "base vs. the multitask prompt with that language's task id):%n%n| task | base | multitask prompt |%n"
                + "|---|---:|---:|%n"));
        perTask.forEach((l, v) -> md.append(String.format(Locale.ROOT, "| %s | %.3f | %.3f |%n", l, v[0], v[1])));
        return md.toString();
    }

    private static List<String> limit(List<String> docs, int maxChars) {
        List<String> outDocs = new ArrayList<>();
        int n = 0;
        for (String d : docs) {
            if (n >= maxChars) {
                break;
            }
            outDocs.add(d);
            n += d.length();
        }
        return outDocs;
    }
}
