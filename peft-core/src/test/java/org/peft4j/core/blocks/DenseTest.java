package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.TargetKind;
import org.peft4j.core.testing.GradientChecks;

/**
 * {@link Dense} is DL4J's dense layer with another implementation: the same outputs, parameter
 * gradients and input gradients as a stock {@link DenseLayer} with the same weights (activations
 * with and without a backward that reads {@code z}, with and without bias, with a per-row mask),
 * finite differences, the copy paths, and what it refuses.
 */
class DenseTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    /** {@code in [5] → hidden (the layer under test, 6) → out (dense, 4) → output (softmax, 3)}. */
    private static ComputationGraph graph(boolean peft, IActivation act, boolean bias) {
        DenseLayer hidden = new DenseLayer.Builder().nIn(5).nOut(6).activation(act).hasBias(bias).build();
        DenseLayer out = new DenseLayer.Builder().nIn(6).nOut(4).activation(Activation.TANH).build();
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(3).dataType(DataType.DOUBLE)
                .updater(new NoOp()).weightInit(WeightInit.XAVIER).graphBuilder()
                .addInputs("in")
                .addLayer("hidden", peft ? Dense.of(hidden) : hidden, "in")
                .addLayer("out", peft ? Dense.of(out) : out, "hidden")
                .addLayer("output", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(3)
                        .activation(Activation.SOFTMAX).build(), "out")
                .setOutputs("output").build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    private static final INDArray X = Nd4j.rand(DataType.DOUBLE, 7, 5).subi(0.5).muli(3);
    private static final INDArray Y = Nd4j.eye(3).getRows(0, 1, 2, 0, 1, 2, 0).castTo(DataType.DOUBLE);
    /** Rows 2 and 5 masked out, as the per-row masks between the blocks of a transformer. */
    private static final INDArray MASK = Nd4j.createFromArray(new double[] {1, 1, 0, 1, 1, 0, 1}).reshape(7, 1);

    @Test
    void outputsAndGradientsEqualTheStockDenseLayerWithTheSameWeights() {
        for (IActivation act : new IActivation[] {Activation.IDENTITY.getActivationFunction(),
            Activation.TANH.getActivationFunction(), new ExactGelu()}) {
            for (boolean bias : new boolean[] {true, false}) {
                for (INDArray mask : new INDArray[] {null, MASK}) {
                    ComputationGraph stock = graph(false, act, bias);
                    ComputationGraph ours = graph(true, act, bias);
                    ours.setParams(stock.params());
                    String what = act + ", bias " + bias + ", mask " + (mask != null);
                    INDArray so = stock.output(false, new INDArray[] {X}, mask == null ? null : new INDArray[] {mask})[0];
                    INDArray oo = ours.output(false, new INDArray[] {X}, mask == null ? null : new INDArray[] {mask})[0];
                    assertTrue(so.equalsWithEps(oo, 1e-12), what);
                    for (ComputationGraph g : new ComputationGraph[] {stock, ours}) {
                        g.setInputs(X);
                        g.setLabels(Y);
                        g.setLayerMaskArrays(mask == null ? null : new INDArray[] {mask}, null);
                    }
                    stock.computeGradientAndScore();
                    ours.computeGradientAndScore();
                    assertEquals(stock.score(), ours.score(), 1e-12, what);
                    // "hidden" gets its gradient through "out": the input gradients agree too
                    Gradient gs = stock.gradient();
                    Gradient go = ours.gradient();
                    for (Map.Entry<String, INDArray> e : gs.gradientForVariable().entrySet()) {
                        assertTrue(e.getValue().equalsWithEps(go.getGradientFor(e.getKey()), 1e-12), what + " " + e.getKey());
                    }
                    assertEquals(gs.gradientForVariable().keySet(), go.gradientForVariable().keySet(), what);
                }
            }
        }
    }

    @Test
    void matchesFiniteDifferencesWithAMask() {
        ComputationGraph g = graph(true, new ExactGelu(), true);
        assertTrue(GradientChecks.passes(g, X, Y, MASK, null));
    }

    @Test
    void survivesJsonKeepsItsClassAndIsNotEqualToTheStockLayer() {
        ComputationGraph g = graph(true, Activation.TANH.getActivationFunction(), true);
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson());
        assertEquals(g.getConfiguration(), back);
        Layer l = back.getVertices().get("hidden") instanceof org.deeplearning4j.nn.conf.graph.LayerVertex lv
                ? lv.getLayerConf().getLayer() : null;
        assertEquals(Dense.class, l.getClass());
        DenseLayer stock = new DenseLayer.Builder().nIn(5).nOut(6).activation(Activation.TANH).build();
        assertNotEquals(stock, Dense.of(stock));
        assertNotEquals(Dense.of(stock), stock);
        assertEquals(Dense.of(stock), Dense.of(stock));
        assertEquals(TargetKind.DENSE, TargetKind.of(Dense.of(stock)));
    }

    @Test
    void layerNormOfThePreActivationIsRefused() {
        DenseLayer withNorm = new DenseLayer.Builder().nIn(5).nOut(6).hasLayerNorm(true).build();
        assertEquals("Dense does not implement DenseLayer's hasLayerNorm; use a LayerNorm layer before the dense layer "
                + "instead", assertThrows(IllegalArgumentException.class, () -> Dense.of(withNorm)).getMessage());
    }
}
