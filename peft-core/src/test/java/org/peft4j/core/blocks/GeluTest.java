package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.activations.impl.ActivationGELU;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.testing.GradientChecks;

/** Which GELU DL4J's {@code Activation.GELU} is, and {@link ExactGelu}'s values and gradient. */
class GeluTest {

    private static final double[] X = {-3, -1.5, -0.5, 0, 0.3, 1, 2.5};

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static double erfGelu(double x) {
        return 0.5 * x * (1 + erf(x / Math.sqrt(2)));
    }

    /** erf by its Taylor series (|x| ≤ 3 here), accurate to 1e-15. */
    private static double erf(double x) {
        double sum = 0;
        double term = x;
        for (int n = 0; n < 200; n++) {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
    }

    private static INDArray apply(org.nd4j.linalg.activations.IActivation a) {
        return a.getActivation(Nd4j.createFromArray(X), false);
    }

    @Test
    void dl4jGeluIsTheSigmoidApproximationAndPreciseLacksTheCubicTerm() {
        INDArray dl4j = apply(Activation.GELU.getActivationFunction());
        INDArray precise = apply(new ActivationGELU(true));
        double maxFromErf = 0;
        for (int i = 0; i < X.length; i++) {
            double x = X[i];
            assertEquals(x / (1 + Math.exp(-1.702 * x)), dl4j.getDouble(i), 1e-7, "x=" + x);
            // "precise" is within 2e-4 of x·σ(√(8/π)·x) = ½x(1 + tanh(√(2/π)·x)), the tanh form without
            // its 0.044715·x³ term, and not the tanh form itself
            assertEquals(x / (1 + Math.exp(-Math.sqrt(8 / Math.PI) * x)), precise.getDouble(i), 2e-4, "x=" + x);
            maxFromErf = Math.max(maxFromErf, Math.abs(dl4j.getDouble(i) - erfGelu(x)));
        }
        assertTrue(maxFromErf > 1e-2, "Activation.GELU differs from the erf form by " + maxFromErf);
        double tanhForm = 0.5 * -3 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (-3 + 0.044715 * -27)));
        assertTrue(Math.abs(precise.getDouble(0) - tanhForm) > 1e-2);
    }

    @Test
    void exactGeluMatchesTheErfFormula() {
        INDArray y = apply(new ExactGelu());
        for (int i = 0; i < X.length; i++) {
            assertEquals(erfGelu(X[i]), y.getDouble(i), 1e-12, "x=" + X[i]);
        }
    }

    @Test
    void exactGeluMatchesFiniteDifferencesAndSurvivesJson() {
        ComputationGraphConfiguration.GraphBuilder b = BlockGraphs.below(50, 3, 4)
                .addLayer("block", new DenseLayer.Builder().nIn(4).nOut(4).activation(new ExactGelu()).build(),
                        new RnnToFeedForwardPreProcessor(RNNFormat.NCW), "below.rnn");
        ComputationGraph g = BlockGraphs.finishRows(b, "block", 4, 3);
        assertTrue(GradientChecks.passes(g, BlockGraphs.inputs(51, 2, 3, 3), BlockGraphs.oneHot(52, 2, 3, 3)));
        ComputationGraph d = Transformers.decoder().vocabSize(7).maxLength(4).dModel(4).heads(2).layers(1)
                .mlpActivation(new ExactGelu()).dataType(DataType.DOUBLE).updater(new NoOp()).build();
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(d.getConfiguration().toJson());
        assertEquals(d.getConfiguration(), back);
    }
}
