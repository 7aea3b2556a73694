package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.dataset.MultiDataSet;
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
import org.peft4j.quant.Adam8bit;

/**
 * One training step ({@code fit} on 8 × 64 tokens, Adam 1e-4) of a MiniLM-sized encoder
 * ({@link EncoderShapes}), the step {@code benchmarks/peer/torch_encoder.py} times in PyTorch:
 * LoRA r 8 on q, v with the head trained ({@code lora-qv}), full fine-tuning ({@code full}), the
 * head alone ({@code head}), the LoRA adapters over the NF4 base ({@code qlora-qv}) and the same
 * with 8-bit Adam ({@code qlora-qv-adam8bit}). Sample mode, so the median compares with the peer's
 * median. Targets: lora-qv ≤ 0.8–1.0 × PyTorch, full ≤ 1.0 ×, qlora-qv ≤ 1.3 × lora-qv,
 * qlora-qv-adam8bit ≤ 1.1 × qlora-qv ({@code benchmarks/encoder-vs-pytorch.sh} prints the ratios).
 *
 * <p>Warm-up: 5 × 4 s; pinned to one core the JIT still compiles after 3 × 4 s ({@code -prof comp},
 * lora-qv: 3.9 s of compile time by 12 s, 4.5 s by 24 s, then 0.1–0.7 s per 4-s iteration).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 4)
@Measurement(iterations = 4, time = 5)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g"})
public class EncoderStepBench {

    @Param({"lora-qv", "full", "head", "qlora-qv", "qlora-qv-adam8bit"})
    public String mode;

    private ComputationGraph graph;
    private MultiDataSet batch;

    @Setup(Level.Trial)
    public void setUp() {
        boolean eightBit = mode.endsWith("-adam8bit");
        String m = eightBit ? mode.substring(0, mode.length() - "-adam8bit".length()) : mode;
        graph = EncoderShapes.trainable(m, eightBit ? new Adam8bit(1e-4) : new Adam(1e-4));
        batch = EncoderShapes.batch(8);
        graph.fit(batch);
    }

    @Benchmark
    public void trainStep(Blackhole bh) {
        graph.fit(batch);
        bh.consume(graph.score());
    }
}
