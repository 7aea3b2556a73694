package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.dataset.DataSet;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.Peft;
import org.peft4j.lora.LoraConfig;

/**
 * One training step ({@code fit} on one batch of 32, Adam) of a 4-layer MLP with d = 1024: full
 * fine-tuning against LoRA (all four weight matrices: all-linear plus the output layer, r = 8).
 * The LoRA paper reports about 25% higher training throughput than full fine-tuning; the
 * target here is {@code lora / full ≤ 0.7}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class TrainStepBench {

    private static final int D = 1024;

    private ComputationGraph full;
    private ComputationGraph lora;
    private DataSet batch;

    @Setup(Level.Trial)
    public void setUp() {
        ComputationGraph base = BenchGraphs.mlp(D, 4);
        full = Peft.wrap(base, FineTuningConfig.full()).graph();
        lora = Peft.wrap(base, LoraConfig.builder().rank(8).alpha(16)
                .targetModulesRegex("dense\\d+|output").build()).graph();
        batch = BenchGraphs.data(32, D);
    }

    @Benchmark
    public double fullFineTuningStep() {
        full.fit(batch);
        return full.score();
    }

    @Benchmark
    public double loraStep() {
        lora.fit(batch);
        return lora.score();
    }
}
