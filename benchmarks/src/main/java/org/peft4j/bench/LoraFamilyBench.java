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
 * over it in backward). Setup builds and wraps the model and logs its trainable parameters
 * (decoder: LoRA 4,096, DoRA 4,352, lora-embed 5,632; encoder: 73,728, 78,336, 320,976); the
 * measured method is the step alone.
 *
 * <pre>java -jar benchmarks/target/benchmarks.jar LoraFamilyBench</pre>
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

    @Param({"lora", "dora", "lora-embed"})
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

    /** One optimizer step; the score is returned so the work cannot be optimized away. */
    @Benchmark
    public double trainStep() {
        graph.fit(batch);
        return graph.score();
    }
}
