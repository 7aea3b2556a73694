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
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.dataset.DataSet;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Many adapters over one base model: the character decoder of {@link FineTuneExample} (same
 * cache) gets one LoRA adapter (q, v) per held-out language, trained one after the other in one
 * {@link PeftModel} by switching the active adapter; then it serves every language with its own
 * adapter, reports held-out bits per character of every adapter on every language, the mean
 * latency of {@link PeftModel#setAdapter} and the memory one extra adapter costs (its parameters;
 * the base weights are shared and never copied).
 *
 * <p>Run: {@code java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.MultiAdapterExample}.
 */
@Command(name = "java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.MultiAdapterExample",
        mixinStandardHelpOptions = true, versionProvider = Cli.Version.class, sortOptions = false,
        description = "Trains one LoRA adapter per language over one pretrained base and serves them by switching.")
public final class MultiAdapterExample implements Callable<Integer> {

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--domains", split = ",", paramLabel = "LANGS",
            description = "held-out languages, one adapter each (default: ${DEFAULT-VALUE})")
    List<String> domains = List.of("pt", "nl", "sv");

    @Option(names = "--steps", paramLabel = "N", description = "training steps per adapter (default: ${DEFAULT-VALUE})")
    int steps = 100;

    @Option(names = "--pretrain-steps", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int pretrainSteps = 600;

    @Option(names = "--max-chars", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int maxChars = 1_000_000;

    @Option(names = "--rank", paramLabel = "R", description = "LoRA rank, alpha = 2r (default: ${DEFAULT-VALUE})")
    int rank = 8;

    @Option(names = "--switches", paramLabel = "N", description = "adapter switches timed (default: ${DEFAULT-VALUE})")
    int switches = 300;

    @Option(names = "--out", paramLabel = "DIR", description = "output directory (default: ${DEFAULT-VALUE})")
    Path out = Path.of("peft-runs", "multi-adapter");

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "pretrained-model cache (default: ${DEFAULT-VALUE})")
    Path cacheDir = Path.of(System.getProperty("user.home"), ".cache", "peft4j", "pretrained");

    @Option(names = "--tiny", description = "tiny model and data, for tests")
    boolean tiny;

    /** What a run measured. */
    record Outcome(Map<String, Map<String, Double>> bitsPerChar, double switchMicros, long bytesPerAdapter, Path report) {
    }

    public static void main(String[] args) {
        System.exit(Cli.of(new MultiAdapterExample()).execute(args));
    }

    @Override
    public Integer call() {
        run();
        return 0;
    }

    Outcome run() {
        if (steps <= 0 || pretrainSteps <= 0 || rank <= 0 || switches <= 0 || maxChars <= 0) {
            throw new ParameterException(spec.commandLine(), "--steps, --pretrain-steps, --rank, --switches and "
                    + "--max-chars must be positive");
        }
        if (domains.isEmpty() || domains.stream().distinct().count() != domains.size()) {
            throw new ParameterException(spec.commandLine(), "--domains must name distinct languages; got " + domains);
        }
        List<String> args = new ArrayList<>(List.of("--target", domains.get(0), "--pretrain-steps",
                String.valueOf(pretrainSteps), "--max-chars", String.valueOf(maxChars), "--cache-dir", cacheDir.toString(),
                "--no-progress"));
        if (tiny) {
            args.addAll(List.of("--d-model", "32", "--heads", "2", "--layers", "1", "--seq-len", "32", "--batch", "16"));
        }
        FineTuneExample settings = new FineTuneExample();
        FineTuneExample.commandLine(settings).parseArgs(args.toArray(String[]::new));
        for (String d : domains) {
            if (!LanguageGuess.LANGUAGES.contains(d) || settings.sources.contains(d)) {
                throw new ParameterException(spec.commandLine(), "domain \"" + d + "\" must be a known language that is "
                        + "not a pretraining language " + settings.sources + "; known: " + LanguageGuess.LANGUAGES);
            }
        }
        FineTuneExample.Base base = settings.loadOrPretrainBase();
        CharVocabulary vocab = base.data().vocab();

        Map<String, TextStream> train = new LinkedHashMap<>();
        Map<String, List<DataSet>> heldOut = new LinkedHashMap<>();
        for (String d : domains) {
            List<String> docs = base.byLanguage().get(d);
            int cut = Math.max(1, docs.size() * 9 / 10);
            train.put(d, TextStream.of(limit(docs.subList(0, cut), maxChars), vocab));
            heldOut.put(d, TextStream.of(limit(docs.subList(cut, docs.size()), maxChars / 9), vocab)
                    .fixedBatches(tiny ? 16 : 128, settings.batch, settings.seqLen));
        }

        LoraConfig cfg = LoraConfig.builder().rank(rank).alpha(2.0 * rank).targetModulesRegex(CharModels.ATTENTION_QV).build();
        PeftModel peft = Peft.wrap(base.graph(), cfg);
        Map<String, String> adapterOf = new LinkedHashMap<>();
        for (String d : domains) {
            String name = d.equals(domains.get(0)) ? PeftModel.DEFAULT_ADAPTER : d;
            if (!name.equals(PeftModel.DEFAULT_ADAPTER)) {
                peft.addAdapter(name, cfg);
                peft.setAdapter(name);
            }
            adapterOf.put(d, name);
            ComputationGraph g = peft.graph();
            g.setLearningRate(5e-3);
            TrainingLoop.run(g, train.get(d), steps, settings.batch, settings.seqLen, new Random(7 + d.hashCode()),
                    "adapter " + d, new MemoryProbe(), false);
            System.out.println("trained the adapter for " + d + " (\"" + name + "\""
                    + (name.equals(PeftModel.DEFAULT_ADAPTER) ? ", the name PeftModel gives its first adapter" : "")
                    + "): " + peft.trainableParametersSummary());
        }

        Map<String, Map<String, Double>> bits = new LinkedHashMap<>();
        var off = peft.disableAdapter();
        try (off) {
            Map<String, Double> row = new LinkedHashMap<>();
            for (String d : domains) {
                row.put(d, HeldOutMetrics.of(peft.graph(), heldOut.get(d), vocab.size()).bitsPerChar());
            }
            bits.put("base", row);
        }
        for (String d : domains) {
            peft.setAdapter(adapterOf.get(d));
            Map<String, Double> row = new LinkedHashMap<>();
            for (String e : domains) {
                row.put(e, HeldOutMetrics.of(peft.graph(), heldOut.get(e), vocab.size()).bitsPerChar());
            }
            bits.put("adapter " + d, row);
        }

        List<String> names = new ArrayList<>(adapterOf.values());
        for (int i = 0; i < 20; i++) {
            peft.setAdapter(names.get(i % names.size()));
        }
        long t0 = System.nanoTime();
        for (int i = 0; i < switches; i++) {
            peft.setAdapter(names.get(i % names.size()));
        }
        double micros = (System.nanoTime() - t0) / 1e3 / switches;
        long bytesPerAdapter = 4L * peft.trainableParameters();

        StringBuilder md = new StringBuilder();
        md.append(String.format(Locale.ROOT, "One base (%,d frozen parameters), %d LoRA adapters (r = %d on q, v), %d steps "
                        + "each. Held-out bits per character (rows: what serves; columns: language):%n%n",
                peft.allParameters() - peft.trainableParameters(), domains.size(), rank, steps));
        md.append("| served by | ").append(String.join(" | ", domains)).append(" |\n|---|");
        domains.forEach(d -> md.append("---:|"));
        md.append('\n');
        bits.forEach((k, row) -> {
            md.append("| ").append(k).append(" |");
            row.values().forEach(v -> md.append(String.format(Locale.ROOT, " %.3f |", v)));
            md.append('\n');
        });
        md.append(String.format(Locale.ROOT, "%nSwitching adapters (`setAdapter`, mean of %d): %.1f µs. Memory per extra "
                + "adapter: %,d bytes (%,d float parameters; the base weights are shared).%n", switches, micros,
                bytesPerAdapter, peft.trainableParameters()));
        System.out.println();
        System.out.print(md);
        Path report = out.resolve("multi-adapter.md");
        try {
            Files.createDirectories(out);
            Files.writeString(report, md.toString());
            peft.saveAdapter(out.resolve("adapters"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write to " + out, e);
        }
        System.out.println("Wrote " + report + " and the adapters under " + out.resolve("adapters"));
        return new Outcome(bits, micros, bytesPerAdapter, report);
    }

    private static List<String> limit(List<String> docs, int maxChars) {
        List<String> out = new ArrayList<>();
        int n = 0;
        for (String d : docs) {
            if (n >= maxChars) {
                break;
            }
            out.add(d);
            n += d.length();
        }
        return out;
    }
}
