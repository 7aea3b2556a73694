package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
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
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;

/**
 * Inference ({@code output}) of a 4-layer d = 1024 MLP: the base graph, the graph with unmerged
 * LoRA adapters (r = 8 on every weight matrix), the same adapters merged in place
 * ({@link PeftModel#merge()}: still the wrapped graph, whose output layer is split into a dense
 * projection and a loss layer), the merged graph unloaded to stock DL4J layers
 * ({@link PeftModel#mergeAndUnload()}), and QLoRA over the NF4 base. Targets: unmerged ≤ 1.10 ×
 * base; merged = base; QLoRA at batch 1 faster than the float base.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class InferenceBench {

    private static final int D = 1024;

    @Param({"1", "32"})
    public int batch;

    private ComputationGraph base;
    private ComputationGraph unmerged;
    private ComputationGraph merged;
    private ComputationGraph unloaded;
    private ComputationGraph qlora;
    private INDArray x;

    @Setup(Level.Trial)
    public void setUp() {
        base = BenchGraphs.mlp(D, 4);
        LoraConfig cfg = LoraConfig.builder().rank(8).alpha(16).targetModulesRegex("dense\\d+|output").build();
        unmerged = Peft.wrap(base, cfg).graph();
        PeftModel m = Peft.wrap(base, cfg);
        m.merge();
        merged = m.graph();
        unloaded = Peft.wrap(base, cfg).mergeAndUnload();
        qlora = Peft.wrap(base, org.peft4j.quant.QLoraConfig.of(cfg,
                org.peft4j.quant.QuantSpec.nf4().withDoubleQuant(true))).graph();
        x = BenchGraphs.features(batch, D);
    }

    @Benchmark
    public INDArray baseForward() {
        return base.outputSingle(x);
    }

    @Benchmark
    public INDArray loraUnmergedForward() {
        return unmerged.outputSingle(x);
    }

    @Benchmark
    public INDArray loraMergedForward() {
        return merged.outputSingle(x);
    }

    @Benchmark
    public INDArray loraMergedAndUnloadedForward() {
        return unloaded.outputSingle(x);
    }

    /** LoRA over the NF4 base: at batch 1 the 4-bit GEMV reads 7.7× fewer weight bytes than float. */
    @Benchmark
    public INDArray qloraForward() {
        return qlora.outputSingle(x);
    }
}
