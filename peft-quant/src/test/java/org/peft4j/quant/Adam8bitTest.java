package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/** 8-bit blockwise Adam: memory, trajectory against float Adam, persistence. */
class Adam8bitTest {

    /**
     * Linear regression (convex): one output layer, its bias with another learning rate so that
     * DL4J gives weights and bias separate updater blocks (the second a view at an offset of the
     * state array).
     */
    private static ComputationGraph regression(IUpdater weights, IUpdater bias) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(3).dataType(DataType.FLOAT)
                .graphBuilder().addInputs("in")
                .addLayer("out", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(40).nOut(5)
                        .activation(Activation.IDENTITY).updater(weights).biasUpdater(bias).build(), "in")
                .setOutputs("out").build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    private static DataSet data() {
        Nd4j.getRandom().setSeed(9);
        INDArray x = Nd4j.randn(DataType.FLOAT, 256, 40);
        INDArray w = Nd4j.randn(DataType.FLOAT, 40, 5);
        return new DataSet(x, x.mmul(w).addi(0.5));
    }

    @Test
    void stateCostsAboutTwoBytesPerParameter() {
        Adam8bit a = new Adam8bit(1e-3);
        long n = 1_000_000;
        double bytesPerParam = 4.0 * a.stateSize(n) / n;
        // two 8-bit codes per parameter, plus two float scales per block of 256
        assertEquals(2.0 + 8.0 / 256, bytesPerParam, 1e-5);
        assertEquals(8.0, 4.0 * new Adam(1e-3).stateSize(n) / n, 0.0);
        ComputationGraph g = regression(new Adam8bit(1e-2), new Adam8bit(2e-2));
        g.fit(data());
        assertEquals(a.stateSize(40 * 5) + a.stateSize(5), g.getUpdater().getStateViewArray().length());
    }

    @Test
    void trajectoryTracksFloatAdamOnAConvexProblem() {
        DataSet ds = data();
        ComputationGraph f = regression(new Adam(5e-2), new Adam(1e-1));
        ComputationGraph q = regression(new Adam8bit(5e-2), new Adam8bit(1e-1));
        double start = f.score(ds);
        for (int i = 0; i < 200; i++) {
            f.fit(ds);
            q.fit(ds);
        }
        double lf = f.score(ds);
        double lq = q.score(ds);
        assertTrue(lf < 0.05 * start, "float Adam converges: " + start + " -> " + lf);
        assertTrue(Math.abs(lq - lf) <= 0.1 * lf + 1e-3 * start, "8-bit Adam loss " + lq + " vs float Adam " + lf);
        double paramDiff = f.params().sub(q.params()).norm2Number().doubleValue() / f.params().norm2Number().doubleValue();
        assertTrue(paramDiff < 0.02, "relative parameter distance " + paramDiff);
    }

    @Test
    void stateSurvivesModelSerializerSoTrainingContinuesIdentically(@TempDir Path dir) throws Exception {
        DataSet ds = data();
        ComputationGraph a = regression(new Adam8bit(1e-2), new Adam8bit(2e-2));
        for (int i = 0; i < 5; i++) {
            a.fit(ds);
        }
        File f = dir.resolve("m.zip").toFile();
        ModelSerializer.writeModel(a, f, true);
        ComputationGraph b = ModelSerializer.restoreComputationGraph(f, true);
        assertArrayEquals(bits(a.getUpdater().getStateViewArray()), bits(b.getUpdater().getStateViewArray()),
                "8-bit state is restored bit for bit");
        for (int i = 0; i < 5; i++) {
            a.fit(ds);
            b.fit(ds);
        }
        assertEquals(a.params(), b.params());
    }

    private static int[] bits(INDArray a) {
        float[] f = a.dup().data().asFloat();
        int[] r = new int[f.length];
        for (int i = 0; i < f.length; i++) {
            r[i] = Float.floatToRawIntBits(f[i]);
        }
        return r;
    }

    @Test
    void badSettingsAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Adam8bit(1e-3, 0.9, 0.999, 1e-8, 100));
        assertTrue(e.getMessage().contains("power of two in 64..4096; got 100"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Adam8bit(0));
        assertThrows(IllegalArgumentException.class, () -> new Adam8bit(1e-3, 1.0, 0.999, 1e-8, 256));
        e = assertThrows(IllegalArgumentException.class, () -> new Adam8bit(1e-3, 0.9, 0.999, 0, 256));
        assertEquals("epsilon must be a positive number; got 0.0 (with 0, a parameter whose gradients have all been 0, "
                + "as LoRA's A at the first step, updates by 0/0 = NaN)", e.getMessage());
        Adam8bit a = new Adam8bit(1e-3);
        e = assertThrows(IllegalArgumentException.class, () -> a.setLrAndSchedule(-1, null));
        assertEquals("learning rate must be a positive number; got -1.0", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> a.setLrAndSchedule(Double.NaN, null));
        assertEquals(1e-3, a.getLearningRate(0, 0), "a refused rate leaves the updater as it was");
    }
}
