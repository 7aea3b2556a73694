package org.peft4j.bench;

import java.util.concurrent.TimeUnit;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
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
import org.peft4j.quant.QuantizedMatmul;
import org.peft4j.quant.QuantizedTensor;

/**
 * Batch-1 forward {@code y = x · W}, W 4096×4096: the NF4 GEMV reading 4-bit codes directly
 * (float[] API and the INDArray API with its copies) against ND4J's float32 GEMM on the same
 * shape with preallocated output. Batch-1 decoding is memory bound, so reading 4.1 bits instead of
 * 32 per weight should win. Target: NF4 ≥ 2× faster than float.
 *
 * <p>The fork adds the Vector API module; {@code VectorKernels} uses it on Java 25+ (run the jar
 * with that JDK to measure the vector kernel) and keeps the scalar kernel on Java 17.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g", "--add-modules=jdk.incubator.vector"})
public class Nf4GemvBench {
    @Param({"4096"})
    int n;

    QuantizedTensor wq;
    float[] x;
    float[] y;
    INDArray xArr;
    INDArray wFloat;
    INDArray yArr;

    @Setup(Level.Trial)
    public void setup() {
        float[] w = BenchData.gaussian(n * n, 2, 0.02f);
        wq = QuantizedTensor.quantize(w, new long[] {n, n}, QuantSpec.nf4());
        x = BenchData.gaussian(n, 3, 1f);
        y = new float[n];
        xArr = Nd4j.create(x, new long[] {1, n}, 'c');
        wFloat = Nd4j.create(w, new long[] {n, n}, 'c');
        yArr = Nd4j.create(org.nd4j.linalg.api.buffer.DataType.FLOAT, 1, n);
    }

    @Benchmark
    public void nf4Gemv(Blackhole bh) {
        QuantizedMatmul.gemv(x, wq, y);
        bh.consume(y);
    }

    @Benchmark
    public void nf4MmulBatch1(Blackhole bh) {
        bh.consume(QuantizedMatmul.mmul(xArr, wq));
    }

    @Benchmark
    public void floatGemmBaseline(Blackhole bh) {
        Nd4j.gemm(xArr, wFloat, yArr, false, false, 1.0, 0.0);
        bh.consume(yArr);
    }
}
