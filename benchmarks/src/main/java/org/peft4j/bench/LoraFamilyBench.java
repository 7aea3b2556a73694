package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.loha.LoHaConfig;
import org.peft4j.lora.lokr.LoKrConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The LoRA family side by side: one training step ({@code ComputationGraph.fit} on one mini-batch)
 * of each method on the attention query and value projections, with plain LoRA as the baseline in
 * the same run, on two models:
 * <ul>
 *   <li>{@code decoder}: the examples' small decoder (vocabulary 128, d 64, 4 heads, 2 blocks),
 *       batch 8 × 32 tokens;</li>
 *   <li>{@code encoder}: a MiniLM-sized encoder (vocabulary 30522, d 384, 12 heads, 6 blocks, a
 *       2-class head), batch 8 × 32 tokens.</li>
 * </ul>
 * Ranks: LoRA 8; DoRA 8 (LoRA-8 plus one magnitude per output feature; its step also forms the
 * weight norm of every adapted layer); {@code lora-embed} is LoRA 8 on the projections and on the
 * token embedding {@code embed.tokens} (a lookup into a {@code [vocab, 8]} table, and a scatter-add
 * over it in backward); LoHa 4 (two rank-4 pairs: LoRA-8's parameter count, an update of rank up to
 * 16); LoKr 8 (its factor sizes follow the layer's split, so its count is what PEFT's rules give).
 * Setup builds and wraps the model and logs its trainable parameters (decoder: LoRA 4,096, DoRA
 * 4,352, lora-embed 5,632, LoHa 4,096, LoKr 512; encoder: 73,728, 78,336, 320,976, 73,728, 7,680);
 * the measured method is the step alone.
 *
 * <pre>java -jar benchmarks/target/benchmarks.jar LoraFamilyBench</pre>
 *
 * On a machine whose load changes between trials, {@link #main} gives steadier ratios: it steps
 * the methods in turn, round after round, in one JVM and prints each method's median step
 * time and its median per-round ratio to LoRA:
 * <pre>java -cp benchmarks/target/benchmarks.jar org.peft4j.bench.LoraFamilyBench encoder 20</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgs = {"-Xmx3g"})
public class LoraFamilyBench {
    private static final Logger LOG = LoggerFactory.getLogger(LoraFamilyBench.class);
    private static final String QV = "block\\d+\\.attn\\.(q|v)";

    @Param({"decoder", "encoder"})
    public String model;

    @Param({"lora", "dora", "lora-embed", "loha", "lokr"})
    public String method;

    private ComputationGraph graph;
    private DataSet batch;

    static PeftConfig config(String method) {
        switch (method) {
            case "lora":
                return LoraConfig.builder().rank(8).alpha(16).targetModulesRegex(QV).build();
            case "dora":
                return LoraConfig.builder().rank(8).alpha(16).useDora(true).targetModulesRegex(QV).build();
            case "lora-embed":
                return LoraConfig.builder().rank(8).alpha(16)
                        .targetModulesRegex(QV + "|" + Transformers.TOKEN_EMBEDDING.replace(".", "\\.")).build();
            case "loha":
                return LoHaConfig.builder().rank(4).alpha(8).targetModulesRegex(QV).build();
            case "lokr":
                return LoKrConfig.builder().rank(8).alpha(8).targetModulesRegex(QV).build();
            default:
                throw new IllegalArgumentException("unknown method " + method);
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        boolean decoder = model.equals("decoder");
        int vocab = decoder ? 128 : 30522;
        ComputationGraph base = decoder
                ? Transformers.decoder().vocabSize(vocab).maxLength(48).dModel(64).heads(4).layers(2)
                        .updater(new Adam(1e-3)).seed(7).build()
                : Transformers.encoder().vocabSize(vocab).maxLength(64).dModel(384).heads(12).layers(6).classes(2)
                        .updater(new Adam(1e-3)).seed(7).build();
        PeftModel peft = Peft.wrap(base, config(method));
        graph = peft.graph();
        LOG.info("{} {}: {}", model, method, peft.trainableParametersSummary());
        Nd4j.getRandom().setSeed(11);
        INDArray tokens = Nd4j.rand(DataType.FLOAT, 8, 32).muli(vocab).castTo(DataType.INT32).castTo(DataType.FLOAT);
        INDArray labels;
        if (decoder) {
            labels = Nd4j.rand(DataType.FLOAT, 8, 1, 32).muli(vocab).castTo(DataType.INT32).castTo(DataType.FLOAT);
        } else {
            labels = Nd4j.zeros(DataType.FLOAT, 8, 2);
            for (int i = 0; i < 8; i++) {
                labels.putScalar(i, i % 2, 1.0);
            }
        }
        batch = new DataSet(tokens, labels);
    }

    /**
     * Interleaved run: {@code args[0]} the model ({@code decoder} or {@code encoder}), {@code args[1]}
     * the measured rounds (after 3 warm-up rounds), each round one step of every method; further
     * arguments choose the methods (default: all, LoRA first, the baseline of the ratios).
     */
    public static void main(String[] args) {
        String[] methods = args.length > 2 ? java.util.Arrays.copyOfRange(args, 2, args.length)
                : new String[] {"lora", "dora", "lora-embed", "loha", "lokr"};
        int rounds = Integer.parseInt(args[1]);
        LoraFamilyBench[] b = new LoraFamilyBench[methods.length];
        for (int m = 0; m < methods.length; m++) {
            b[m] = new LoraFamilyBench();
            b[m].model = args[0];
            b[m].method = methods[m];
            b[m].setUp();
        }
        double[][] ms = new double[methods.length][rounds];
        for (int r = -3; r < rounds; r++) {
            for (int m = 0; m < methods.length; m++) {
                long start = System.nanoTime();
                b[m].trainStep();
                if (r >= 0) {
                    ms[m][r] = (System.nanoTime() - start) / 1e6;
                }
            }
        }
        for (int m = 0; m < methods.length; m++) {
            double[] ratio = new double[rounds];
            for (int r = 0; r < rounds; r++) {
                ratio[r] = ms[m][r] / ms[0][r];
            }
            LOG.info(String.format(java.util.Locale.ROOT, "%s %s: median %.1f ms/step, median ratio to %s %.2f",
                    args[0], methods[m], median(ms[m]), methods[0], median(ratio)));
        }
    }

    private static double median(double[] v) {
        double[] c = v.clone();
        java.util.Arrays.sort(c);
        return c[c.length / 2];
    }

    /** One optimizer step; the score is returned so the work cannot be optimized away. */
    @Benchmark
    public double trainStep() {
        graph.fit(batch);
        return graph.score();
    }
}
