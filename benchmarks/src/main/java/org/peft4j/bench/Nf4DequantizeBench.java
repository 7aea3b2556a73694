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
 * Dequantize throughput: a 4096×4096 NF4 matrix (double-quantized, block 64) expanded to a
 * preallocated float[] (64 MiB written), against System.arraycopy of a 64 MiB float[] into the
 * same kind of buffer, the memory-bandwidth ceiling. Target: dequantize time ≤ 2× the copy time
 * (≥ 0.5× copy bandwidth, counting output bytes).
 *
 * <p>The fork adds the Vector API module, so on Java 25+ the vector dequantizer runs
 * ({@code VectorKernels}); Java 17 keeps the scalar loop.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g", "--add-modules=jdk.incubator.vector"})
public class Nf4DequantizeBench {
    @Param({"4096"})
    int n;

    QuantizedTensor w;
    float[] src;
    float[] out;

    @Setup(Level.Trial)
    public void setup() {
        src = BenchData.gaussian(n * n, 1, 0.02f);
        w = QuantizedTensor.quantize(src, new long[] {n, n}, QuantSpec.nf4());
        out = new float[n * n];
    }

    @Benchmark
    public void dequantizeNf4(Blackhole bh) {
        w.dequantize(0, out.length, out, 0);
        bh.consume(out);
    }

    @Benchmark
    public void arraycopyBaseline(Blackhole bh) {
        System.arraycopy(src, 0, out, 0, out.length);
        bh.consume(out);
    }
}
