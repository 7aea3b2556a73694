package org.peft4j.core.testing;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.LSTM;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Small graphs and data shared by the tests of every module (published in peft-core's test-jar).
 * Layer names match what the tests target: {@code dense0}, {@code dense1}, {@code dense2},
 * {@code output} for the MLP; {@code proj}, {@code lstm}, {@code step}, {@code output} for the
 * sequence model.
 */
public final class TinyGraphs {

    private TinyGraphs() {
    }

    /** {@code in [nIn] → dense0 → dense1 → dense2 → output (softmax, MCXENT)}, tanh hidden layers. */
    public static ComputationGraph mlp(DataType dt, IUpdater updater, long seed, int nIn, int hidden, int nOut) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder()
                .seed(seed).dataType(dt).updater(updater).weightInit(WeightInit.XAVIER)
                .graphBuilder()
                .addInputs("in")
                .addLayer("dense0", new DenseLayer.Builder().nIn(nIn).nOut(hidden).activation(Activation.TANH).build(), "in")
                .addLayer("dense1", new DenseLayer.Builder().nIn(hidden).nOut(hidden).activation(Activation.TANH).build(), "dense0")
                .addLayer("dense2", new DenseLayer.Builder().nIn(hidden).nOut(hidden).activation(Activation.TANH).build(), "dense1")
                .addLayer("output", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(hidden).nOut(nOut)
                        .activation(Activation.SOFTMAX).build(), "dense2")
                .setOutputs("output")
                .build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    /** The MLP in double precision with a no-op updater, as GradientCheckUtil requires. */
    public static ComputationGraph mlpForGradientCheck(long seed) {
        return mlp(DataType.DOUBLE, new NoOp(), seed, 5, 6, 3);
    }

    /**
     * A sequence model with per-time-step dense layers: {@code in [nIn, T] → proj (dense per step)
     * → lstm → step (dense per step) → output (RnnOutputLayer, softmax)}.
     */
    public static ComputationGraph sequence(DataType dt, IUpdater updater, long seed, int nIn, int hidden, int nOut) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder()
                .seed(seed).dataType(dt).updater(updater).weightInit(WeightInit.XAVIER)
                .graphBuilder()
                .addInputs("in")
                .setInputTypes(InputType.recurrent(nIn))
                .addLayer("proj", new DenseLayer.Builder().nOut(hidden).activation(Activation.TANH).build(), "in")
                .addLayer("lstm", new LSTM.Builder().nOut(hidden).activation(Activation.TANH).build(), "proj")
                .addLayer("step", new DenseLayer.Builder().nOut(hidden).activation(Activation.TANH).build(), "lstm")
                .addLayer("output", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nOut(nOut)
                        .activation(Activation.SOFTMAX).build(), "step")
                .setOutputs("output")
                .build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    /** Random features with one-hot labels from a fixed random linear rule (learnable). */
    public static DataSet classification(DataType dt, long seed, int batch, int nIn, int nOut) {
        Nd4j.getRandom().setSeed(seed);
        INDArray x = Nd4j.randn(dt, batch, nIn);
        INDArray w = Nd4j.randn(dt, nIn, nOut);
        INDArray idx = Nd4j.argMax(x.mmul(w), 1);
        INDArray y = Nd4j.zeros(dt, batch, nOut);
        for (int i = 0; i < batch; i++) {
            y.putScalar(i, idx.getInt(i), 1.0);
        }
        return new DataSet(x, y);
    }

    /** Random sequences {@code [batch, nIn, T]} with one-hot labels {@code [batch, nOut, T]}. */
    public static DataSet sequences(DataType dt, long seed, int batch, int nIn, int nOut, int steps) {
        Nd4j.getRandom().setSeed(seed);
        INDArray x = Nd4j.randn(dt, batch, nIn, steps);
        INDArray y = Nd4j.zeros(dt, batch, nOut, steps);
        for (int i = 0; i < batch; i++) {
            for (int t = 0; t < steps; t++) {
                int c = (int) Math.floorMod(Math.round(x.getDouble(i, 0, t) * 3), nOut);
                y.putScalar(new int[] {i, c, t}, 1.0);
            }
        }
        return new DataSet(x, y);
    }

    /** Every layer's parameters by layer name and key, copied. */
    public static Map<String, Map<String, INDArray>> paramsByLayer(ComputationGraph g) {
        Map<String, Map<String, INDArray>> m = new HashMap<>();
        for (org.deeplearning4j.nn.api.Layer l : g.getLayers()) {
            Map<String, INDArray> p = new HashMap<>();
            l.paramTable().forEach((k, v) -> p.put(k, v.dup()));
            m.put(l.conf().getLayer().getLayerName(), p);
        }
        return m;
    }

    /** Names of the graph's layers. */
    public static List<String> layerNames(ComputationGraph g) {
        List<String> n = new ArrayList<>();
        for (org.deeplearning4j.nn.api.Layer l : g.getLayers()) {
            n.add(l.conf().getLayer().getLayerName());
        }
        return n;
    }
}
