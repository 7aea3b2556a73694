package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
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
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;

/**
 * Switching among 100 LoRA adapters (r = 8 on every weight matrix) over one base of about 10M
 * parameters (a 4-layer MLP, d = 1600): the latency of {@code setAdapter}, which copies one
 * adapter's parameter vector into the graph without rebuilding it. The setup prints the memory
 * an extra adapter costs (its parameters, float32). Baseline in the same class: one forward pass
 * of batch 1, to put the switch time in proportion.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class AdapterSwitchBench {

    private static final int D = 1600;
    private static final int ADAPTERS = 100;

    private PeftModel peft;
    private org.nd4j.linalg.api.ndarray.INDArray x;
    private int next;

    @Setup(Level.Trial)
    public void setUp() {
        ComputationGraph base = BenchGraphs.mlp(D, 4);
        LoraConfig cfg = LoraConfig.builder().rank(8).alpha(16).targetModulesRegex("dense\\d+|output").build();
        peft = Peft.wrap(base, cfg);
        for (int i = 1; i < ADAPTERS; i++) {
            peft.addAdapter("a" + i, cfg);
        }
        x = BenchGraphs.features(1, D);
        System.out.printf("base params: %,d; per adapter: %,d params = %,d bytes (float32)%n",
                base.numParams(), peft.trainableParameters(), peft.trainableParameters() * 4);
    }

    @Benchmark
    public String switchAdapter() {
        next = (next + 1) % ADAPTERS;
        String name = next == 0 ? PeftModel.DEFAULT_ADAPTER : "a" + next;
        peft.setAdapter(name);
        return name;
    }

    @Benchmark
    public Object forwardBatch1() {
        return peft.output(x);
    }
}
