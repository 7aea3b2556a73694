package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * Forward-only inference ({@code output}, no training) of the MiniLM-sized encoder of
 * {@link EncoderShapes} on {@code batch} × 64 tokens with the padding mask: the float base
 * against the same encoder with LoRA q, v adapters over the NF4 base ({@code qlora-qv} of
 * {@link EncoderShapes#trainable}). The peer ({@code torch_encoder.py forward B}) times the float
 * forward in PyTorch under {@code no_grad}. Targets: base ≤ 1.0 × PyTorch; QLoRA at batch 32
 * ≤ 1.2 × the float base.
 *
 * <p>Warm-up: 5 × 4 s, because pinned to one core the JIT compiles for about 16 s before batch 1
 * settles ({@code -prof comp}: 7.8 s of compile time by then, 0.1–0.2 s per 4 s after; the median
 * of a 4-s iteration fell from 30 to 25 ms); 3 × 3 s measured while compiling.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 4)
@Measurement(iterations = 4, time = 4)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g"})
public class EncoderInferenceBench {

    @Param({"1", "32"})
    public int batch;

    private ComputationGraph base;
    private ComputationGraph qlora;
    private INDArray[] tokens;
    private INDArray[] mask;

    @Setup(Level.Trial)
    public void setUp() {
        base = EncoderShapes.encoder(new Adam(1e-4));
        qlora = EncoderShapes.trainable("qlora-qv", new Adam(1e-4));
        tokens = new INDArray[] {EncoderShapes.tokens(batch)};
        mask = new INDArray[] {EncoderShapes.mask(batch)};
    }

    @Benchmark
    public void baseForward(Blackhole bh) {
        bh.consume(base.output(false, tokens, mask));
    }

    @Benchmark
    public void qloraForward(Blackhole bh) {
        bh.consume(qlora.output(false, tokens, mask));
    }
}
