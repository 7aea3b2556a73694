package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.layers.RnnLossLayer;
import org.deeplearning4j.nn.conf.layers.SelfAttentionLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.Blackhole;
import org.peft4j.core.blocks.Attention;

/**
 * One forward and one backward pass of multi-head self-attention, peft4j's fused
 * {@code MultiHeadAttention} (hand-written backward) against DL4J's stock {@code SelfAttentionLayer}
 * (SameDiff) with the same weights and shape, float, no workspaces: the ratio
 * {@code peft4j / stock} is read from one run. Setup (graphs, weights, inputs) is outside the
 * measured methods; the layer is driven directly so that nothing else is timed.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class AttentionBench {

    @Param({"8"})
    public int batch;
    @Param({"128"})
    public int dModel;
    @Param({"4"})
    public int heads;
    @Param({"64"})
    public int steps;

    private Layer stock;
    private Layer ours;
    private INDArray x;
    private INDArray eps;
    private final LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();

    @Setup
    public void setup() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(1).dataType(DataType.FLOAT)
                .updater(new Sgd(0.1)).graphBuilder().addInputs("in")
                .addLayer("attn", new SelfAttentionLayer.Builder().nIn(dModel).nOut(dModel).nHeads(heads)
                        .projectInput(true).build(), "in")
                .addLayer("loss", new RnnLossLayer.Builder(LossFunctions.LossFunction.MSE).activation(Activation.IDENTITY)
                        .dataFormat(RNNFormat.NCW).build(), "attn")
                .setOutputs("loss").build();
        ComputationGraph stockGraph = new ComputationGraph(conf);
        stockGraph.init();
        ComputationGraph oursGraph = Attention.fromStock(stockGraph);
        stockGraph.initGradientsView();
        oursGraph.initGradientsView();
        stock = stockGraph.getLayer("attn");
        ours = oursGraph.getLayer("attn");
        Nd4j.getRandom().setSeed(2);
        x = Nd4j.randn(DataType.FLOAT, batch, dModel, steps);
        eps = Nd4j.randn(DataType.FLOAT, batch, dModel, steps);
    }

    private Pair<?, INDArray> step(Layer l) {
        l.setInput(x, mgr);
        INDArray out = l.activate(true, mgr);
        Pair<org.deeplearning4j.nn.gradient.Gradient, INDArray> p = l.backpropGradient(eps, mgr);
        return new Pair<>(out, p.getSecond());
    }

    @Benchmark
    public void stockSelfAttention(Blackhole bh) {
        bh.consume(step(stock));
    }

    @Benchmark
    public void peft4jMultiHeadAttention(Blackhole bh) {
        bh.consume(step(ours));
    }
}
