package org.peft4j.lora.internal;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.Peft;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.LoraDenseLayer;

/**
 * A float32 LoRA dense layer on a batch large enough for the BLAS branch (its products go through
 * direct BLAS calls) computes its output, {@code dL/dA}, {@code dL/dB} and input gradient as the
 * formulas of {@link LoraDenseLayer} evaluated in double precision on the same values.
 */
class LoraBranchProductsTest {
    private static final int N_IN = 64;
    private static final int N_OUT = 48;
    private static final int ROWS = 96;

    private static double maxRelDiff(INDArray expected, INDArray actual) {
        INDArray e = expected.castTo(DataType.DOUBLE);
        double scale = Math.max(1e-3, e.amaxNumber().doubleValue());
        return e.sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue() / scale;
    }

    @Test
    void floatBranchMatchesTheDoubleFormulas() {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(4).dataType(DataType.FLOAT)
                .updater(new NoOp()).graphBuilder().addInputs("in")
                .addLayer("dense0", new DenseLayer.Builder().nIn(N_IN).nOut(N_IN).activation(Activation.TANH).build(), "in")
                .addLayer("dense1", new DenseLayer.Builder().nIn(N_IN).nOut(N_OUT).activation(Activation.IDENTITY).build(),
                        "dense0")
                .addLayer("out", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(N_OUT).nOut(3)
                        .activation(Activation.IDENTITY).build(), "dense1")
                .setOutputs("out").build();
        ComputationGraph base = new ComputationGraph(conf);
        base.init();
        ComputationGraph g = Peft.wrap(base, LoraConfig.builder().rank(8).alpha(16)
                .targetModules("dense0", "dense1").build()).graph();
        g.initGradientsView();
        Layer l = g.getLayer("dense1");
        l = l instanceof FrozenLayer ? ((FrozenLayer) l).getInsideLayer() : l;
        assertTrue(l instanceof LoraDenseLayerImpl, l.getClass().getName());
        Nd4j.getRandom().setSeed(12);
        // B away from zero (it starts at zero), so that every term is exercised
        l.getParam(LoraDenseLayer.LORA_B).assign(Nd4j.randn(DataType.FLOAT, 8, N_OUT).muli(0.3));
        INDArray x = Nd4j.randn(DataType.FLOAT, ROWS, N_IN);
        INDArray eps = Nd4j.randn(DataType.FLOAT, ROWS, N_OUT);
        LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
        l.setInput(x, mgr);
        INDArray y = l.activate(true, mgr).dup();
        Pair<Gradient, INDArray> p = l.backpropGradient(eps, mgr);

        LoraDenseLayer c = (LoraDenseLayer) l.conf().getLayer();
        double s = c.scaling();
        INDArray xd = x.castTo(DataType.DOUBLE);
        INDArray ed = eps.castTo(DataType.DOUBLE);
        INDArray a = l.getParam(LoraDenseLayer.LORA_A).castTo(DataType.DOUBLE);
        INDArray b = l.getParam(LoraDenseLayer.LORA_B).castTo(DataType.DOUBLE);
        INDArray w = c.frozenWeight().castTo(DataType.DOUBLE);
        INDArray bias = c.frozenBias().castTo(DataType.DOUBLE).reshape(1, N_OUT);
        INDArray h = xd.mmul(a);
        INDArray yRef = xd.mmul(w).addiRowVector(bias).addi(h.mmul(b).muli(s));
        INDArray gBRef = h.transpose().mmul(ed).muli(s);
        INDArray gh = ed.mmul(b.transpose()).muli(s);
        INDArray gARef = xd.transpose().mmul(gh);
        INDArray epsRef = ed.mmul(w.transpose()).addi(gh.mmul(a.transpose()));

        double tol = 1e-5;
        assertTrue(maxRelDiff(yRef, y) < tol, "output: " + maxRelDiff(yRef, y));
        INDArray gA = p.getFirst().gradientForVariable().get(LoraDenseLayer.LORA_A);
        INDArray gB = p.getFirst().gradientForVariable().get(LoraDenseLayer.LORA_B);
        assertTrue(maxRelDiff(gARef, gA) < tol, "dL/dA: " + maxRelDiff(gARef, gA));
        assertTrue(maxRelDiff(gBRef, gB) < tol, "dL/dB: " + maxRelDiff(gBRef, gB));
        assertTrue(maxRelDiff(epsRef, p.getSecond()) < tol, "input gradient: " + maxRelDiff(epsRef, p.getSecond()));
    }
}
