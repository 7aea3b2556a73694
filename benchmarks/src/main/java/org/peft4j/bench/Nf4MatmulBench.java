package org.peft4j.bench;

import java.util.concurrent.TimeUnit;

import org.nd4j.linalg.api.buffer.DataType;
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
 * Batch-64 products with a 4096×4096 weight: the NF4 path (where the native AVX-512 kernels run,
 * the fused kernels that dequantize into L1 and multiply on the same core; elsewhere 1 MiB tiles
 * and BLAS) for the forward {@code x · W} and the backward {@code g · Wᵀ}, against ND4J's float32
 * GEMM with the whole float matrix resident (preallocated output). The price of 4-bit storage in
 * training. Target (issue 25): NF4 ≤ 1.2× the float time, at 2 threads and at 1.
 *
 * <p>The fork adds the Vector API module, so on Java 25+ the Java tile fill uses the vector
 * kernel ({@code VectorKernels}); Java 17 keeps the scalar loop.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g", "--add-modules=jdk.incubator.vector"})
public class Nf4MatmulBench {
    @Param({"4096"})
    int n;

    @Param({"64"})
    int batch;

    QuantizedTensor wq;
    INDArray x;
    INDArray wFloat;
    INDArray y;
    INDArray yT;

    @Setup(Level.Trial)
    public void setup() {
        float[] w = BenchData.gaussian(n * n, 4, 0.02f);
        wq = QuantizedTensor.quantize(w, new long[] {n, n}, QuantSpec.nf4());
        wFloat = Nd4j.create(w, new long[] {n, n}, 'c');
        x = Nd4j.create(BenchData.gaussian(batch * n, 5, 1f), new long[] {batch, n}, 'c');
        y = Nd4j.create(DataType.FLOAT, batch, n);
        yT = Nd4j.create(DataType.FLOAT, batch, n);
    }

    @Benchmark
    public void nf4Mmul(Blackhole bh) {
        bh.consume(QuantizedMatmul.mmul(x, wq));
    }

    @Benchmark
    public void nf4MmulTransposed(Blackhole bh) {
        bh.consume(QuantizedMatmul.mmulTransposed(x, wq));
    }

    @Benchmark
    public void floatGemmBaseline(Blackhole bh) {
        Nd4j.gemm(x, wFloat, y, false, false, 1.0, 0.0);
        bh.consume(y);
    }

    @Benchmark
    public void floatGemmTransposedBaseline(Blackhole bh) {
        Nd4j.gemm(x, wFloat, yT, false, true, 1.0, 0.0);
        bh.consume(yT);
    }
}
