package org.peft4j.bench;

import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.dataset.DataSet;
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
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.Adam8bit;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;

/**
 * One model (4-layer MLP, d = 1024, batch 32) fine-tuned four ways: full fine-tuning (Adam),
 * LoRA r = 8 on every weight matrix (Adam), QLoRA (NF4 with double quantization, Adam), and QLoRA
 * with 8-bit Adam. Measures one training step; the setup prints the bytes of frozen weights,
 * trainable weights, gradients and optimizer state of each way, read off the arrays the graph
 * holds. Targets: QLoRA step ≤ 1.5 × LoRA step.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class FineTuneWaysBench {

    private static final int D = 1024;

    @Param({"full", "lora", "qlora", "qlora-adam8bit"})
    public String way;

    private ComputationGraph graph;
    private DataSet batch;

    @Setup(Level.Trial)
    public void setUp() {
        boolean eightBit = way.endsWith("adam8bit");
        ComputationGraph base = BenchGraphs.mlp(D, 4, eightBit ? new Adam8bit(1e-3) : new Adam(1e-3));
        LoraConfig lora = LoraConfig.builder().rank(8).alpha(16).targetModulesRegex("dense\\d+|output").build();
        PeftConfig cfg = way.equals("full") ? FineTuningConfig.full()
                : way.equals("lora") ? lora : QLoraConfig.of(lora, QuantSpec.nf4().withDoubleQuant(true));
        PeftModel peft = Peft.wrap(base, cfg);
        graph = peft.graph();
        batch = BenchGraphs.data(32, D);
        graph.fit(batch);
        long frozen = cfg.trainsEverything() ? 0 : peft.frozenBytes();
        long trainable = 4L * graph.numParams();
        long gradients = 4L * graph.getFlattenedGradients().length();
        long state = 4L * graph.getUpdater().getStateViewArray().length();
        System.out.printf(Locale.ROOT, "%n[%s] frozen weights %,d B | trainable weights %,d B | gradients %,d B | "
                + "optimizer state %,d B | total %,d B%n", way, frozen, trainable, gradients, state,
                frozen + trainable + gradients + state);
    }

    @Benchmark
    public double trainStep() {
        graph.fit(batch);
        return graph.score();
    }
}
