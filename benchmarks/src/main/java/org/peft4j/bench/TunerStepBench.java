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
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.prefix.PrefixConfig;
import org.peft4j.core.prompt.PromptTuningConfig;
import org.peft4j.lora.LoraConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One training step ({@code ComputationGraph.fit} on one mini-batch) of the same small decoder
 * (vocabulary 128, d 64, 4 heads, 2 blocks, batch 8 × 32 tokens) under each tuner, with full
 * fine-tuning as the baseline in the same run: the ratio says what a tuner saves (or costs) per
 * step. Setup builds and wraps the model and logs its trainable share; the measured method is the
 * step alone.
 *
 * <pre>java -jar benchmarks/target/benchmarks.jar TunerStepBench</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgs = {"-Xmx2g"})
public class TunerStepBench {
    private static final Logger LOG = LoggerFactory.getLogger(TunerStepBench.class);

    @Param({"full", "lora", "ia3", "houlsby", "prefix", "prompt"})
    public String tuner;

    private ComputationGraph graph;
    private DataSet batch;

    static PeftConfig config(String tuner) {
        switch (tuner) {
            case "full":
                return FineTuningConfig.full();
            case "lora":
                return LoraConfig.builder().rank(8).alpha(16).targetModulesRegex("block\\d+\\.attn\\.(q|v)").build();
            case "ia3":
                return Ia3Config.builder().targetModulesRegex("block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down")
                        .feedforwardModulesRegex("block\\d+\\.mlp\\.down").build();
            case "houlsby":
                return AdapterConfig.builder().houlsby().reductionFactor(16).build();
            case "prefix":
                return PrefixConfig.builder().numVirtualTokens(8).build();
            case "prompt":
                return PromptTuningConfig.builder().numVirtualTokens(8).build();
            default:
                throw new IllegalArgumentException("unknown tuner " + tuner);
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        ComputationGraph base = Transformers.decoder().vocabSize(128).maxLength(48).dModel(64).heads(4).layers(2)
                .updater(new Adam(1e-3)).seed(7).build();
        PeftModel peft = Peft.wrap(base, config(tuner));
        graph = peft.graph();
        LOG.info("{}: {}", tuner, peft.trainableParametersSummary());
        Nd4j.getRandom().setSeed(11);
        INDArray tokens = Nd4j.rand(DataType.FLOAT, 8, 32).muli(128).castTo(DataType.INT32).castTo(DataType.FLOAT);
        INDArray labels = Nd4j.rand(DataType.FLOAT, 8, 1, 32).muli(128).castTo(DataType.INT32).castTo(DataType.FLOAT);
        batch = new DataSet(tokens, labels);
    }

    /** One optimizer step; the score is returned so the work cannot be optimized away. */
    @Benchmark
    public double trainStep() {
        graph.fit(batch);
        return graph.score();
    }
}
