package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.layers.RnnLossLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.LossFunctions;
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
import org.peft4j.core.blocks.AttentionCore;

/**
 * One training forward and backward pass of a causal attention core ({@code q, k, v [b, d, T] →
 * AttentionCore → MSE}), with LongLoRA's shifted sparse attention (groups of 64 positions, half of
 * the heads shifted by 32) against full attention on the same inputs, at lengths 256 and 1024: the
 * ratio is read from one run. S²-Attn's scores cost {@code b·h·T·G}, full attention's
 * {@code b·h·T²}, so the gap should widen about fourfold from 256 to 1024. Graphs and inputs are
 * built in setup; the measured method is {@code computeGradientAndScore} only. ND4J runs on
 * {@code threads} threads (default 1, as the examples: on a small shared machine one thread per op
 * gives steadier and, for ops this size, faster numbers).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g"})
public class ShiftedSparseAttentionBench {

    @Param({"256", "1024"})
    public int length;
    @Param({"64"})
    public int groupSize;
    @Param({"4"})
    public int batch;
    @Param({"128"})
    public int dModel;
    @Param({"4"})
    public int heads;
    @Param({"1"})
    public int threads;

    private ComputationGraph full;
    private ComputationGraph sparse;

    @Setup(Level.Trial)
    public void setup() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        Nd4j.factory().blas().setMaxThreads(threads);
        full = graph(new AttentionCore(heads, true));
        sparse = graph(new AttentionCore(heads, true).withShiftedSparseAttention(groupSize));
        Nd4j.getRandom().setSeed(7);
        INDArray[] in = {Nd4j.randn(DataType.FLOAT, batch, dModel, length), Nd4j.randn(DataType.FLOAT, batch, dModel, length),
            Nd4j.randn(DataType.FLOAT, batch, dModel, length)};
        INDArray[] labels = {Nd4j.randn(DataType.FLOAT, batch, dModel, length)};
        for (ComputationGraph g : new ComputationGraph[] {full, sparse}) {
            g.setInputs(in);
            g.setLabels(labels);
        }
    }

    private ComputationGraph graph(AttentionCore core) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(1).dataType(DataType.FLOAT)
                .updater(new Sgd(0.1)).graphBuilder().addInputs("q", "k", "v")
                .addVertex("core", core, "q", "k", "v")
                .addLayer("loss", new RnnLossLayer.Builder(LossFunctions.LossFunction.MSE).activation(Activation.IDENTITY)
                        .dataFormat(RNNFormat.NCW).build(), "core")
                .setOutputs("loss").build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    @Benchmark
    public void fullAttentionBaseline(Blackhole bh) {
        full.computeGradientAndScore();
        bh.consume(full.score());
    }

    @Benchmark
    public void shiftedSparseAttention(Blackhole bh) {
        sparse.computeGradientAndScore();
        bh.consume(sparse.score());
    }
}
