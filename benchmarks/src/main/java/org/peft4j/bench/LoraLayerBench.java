package org.peft4j.bench;

import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;

/**
 * One layer's forward + backward, batch 32, d = 1024: DL4J's dense layer (computes the weight
 * gradient and the input gradient) against our LoRA layer with r = 8 (input gradient through the
 * frozen weight plus the low-rank branch, no weight gradient). Both layers sit in the middle of a
 * network with trainable layers below, so both must compute the input gradient. The ratio
 * {@code lora / dense} is what LoRA saves per layer.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class LoraLayerBench {

    private static final int D = 1024;
    private static final int BATCH = 32;

    private Layer dense;
    private Layer lora;
    private INDArray x;
    private INDArray eps;
    private final LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();

    @Setup(Level.Trial)
    public void setUp() {
        ComputationGraph base = BenchGraphs.mlp(D, 3);
        // dense0 trains in full below dense1, so dense1 must pass its input gradient down.
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(8).alpha(16)
                .targetModules("dense1").modulesToSave("dense0").build());
        base.initGradientsView();
        peft.graph().initGradientsView();
        dense = base.getLayer("dense1");
        lora = peft.graph().getLayer("dense1");
        x = BenchGraphs.features(BATCH, D);
        eps = BenchGraphs.features(BATCH, D);
    }

    private void step(Layer layer, Blackhole bh) {
        layer.setInput(x, mgr);
        bh.consume(layer.activate(true, mgr));
        bh.consume(layer.backpropGradient(eps, mgr));
    }

    @Benchmark
    public void denseForwardBackward(Blackhole bh) {
        step(dense, bh);
    }

    @Benchmark
    public void loraForwardBackward(Blackhole bh) {
        step(lora, bh);
    }
}
