package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
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
import org.peft4j.quant.Adam8bit;

/**
 * One optimizer update alone ({@code GradientUpdater.applyUpdater} of one updater block), 8-bit
 * Adam against DL4J's float Adam op on the same gradient: the per-parameter cost of decoding,
 * updating and re-encoding the blockwise 8-bit moments, which the QLoRA step with {@code Adam8bit}
 * pays on top of the step with Adam ({@link FineTuneWaysBench}). {@code n = 65536} is that MLP's
 * adapter parameters (state and gradient in the second-level cache), 4 Mi a size that streams
 * from memory. Each invocation starts from the same gradient, log-uniform over six decades.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class Adam8bitUpdateBench {

    @Param({"65536", "4194304"})
    public int n;

    @Param({"adam8bit", "adam"})
    public String updater;

    private GradientUpdater<?> gradientUpdater;
    private INDArray source;
    private INDArray gradient;
    private int iteration;

    @Setup(Level.Trial)
    public void setUp() {
        IUpdater config = updater.equals("adam8bit") ? new Adam8bit(1e-3) : new Adam(1e-3);
        INDArray state = Nd4j.zeros(DataType.FLOAT, 1, config.stateSize(n));
        gradientUpdater = config.instantiate(state, true);
        float[] g = BenchData.gaussian(n, 5, 1f);
        for (int i = 0; i < n; i++) {
            g[i] = (float) (Math.signum(g[i]) * Math.pow(10, -2 - 6 * Math.abs(g[i]) / 4));
        }
        source = Nd4j.create(g, new long[] {1, n}, 'c');
        gradient = source.dup();
    }

    @Setup(Level.Invocation)
    public void resetGradient() {
        gradient.assign(source);
    }

    @Benchmark
    public INDArray update() {
        gradientUpdater.applyUpdater(gradient, iteration++, 0);
        return gradient;
    }
}
