package org.peft4j.bench;

import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.Blackhole;
import org.peft4j.quant.QuantSpec;
import org.peft4j.quant.QuantizedTensor;

/**
 * Quantize throughput: a 4096×4096 float matrix (64 MiB input) to NF4, block 64, with and without
 * double quantization; input GB/s = 0.0671 GB / (ms/op) × 1000. Loading a base model quantizes
 * every weight once, so this bounds model load time. The baseline copies the input once (one read
 * and write pass over the same bytes, the memory floor for any codec).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g"})
public class Nf4QuantizeBench {
    @Param({"4096"})
    int n;

    float[] w;
    float[] copy;
    long[] shape;

    @Setup(Level.Trial)
    public void setup() {
        w = BenchData.gaussian(n * n, 6, 0.02f);
        shape = new long[] {n, n};
        copy = new float[n * n];
    }

    @Benchmark
    public void quantizeNf4(Blackhole bh) {
        bh.consume(QuantizedTensor.quantize(w, shape, QuantSpec.nf4().withDoubleQuant(false)));
    }

    @Benchmark
    public void quantizeNf4DoubleQuant(Blackhole bh) {
        bh.consume(QuantizedTensor.quantize(w, shape, QuantSpec.nf4()));
    }

    @Benchmark
    public void arraycopyBaseline(Blackhole bh) {
        System.arraycopy(w, 0, copy, 0, w.length);
        bh.consume(copy);
    }
}
