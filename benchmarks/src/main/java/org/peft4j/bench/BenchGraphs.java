package org.peft4j.bench;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/** Shapes shared by the benchmarks: a stack of {@code d × d} dense layers and random data. */
final class BenchGraphs {

    private BenchGraphs() {
    }

    /**
     * {@code in [d] → dense0 … dense{layers-2} (relu) → output (softmax over d classes)}: {@code layers}
     * weight matrices of {@code d × d}, Adam.
     */
    static ComputationGraph mlp(int d, int layers) {
        return mlp(d, layers, new Adam(1e-3));
    }

    /** As {@link #mlp(int, int)} with the given updater. */
    static ComputationGraph mlp(int d, int layers, org.nd4j.linalg.learning.config.IUpdater updater) {
        ComputationGraphConfiguration.GraphBuilder b = new NeuralNetConfiguration.Builder()
                .seed(1).dataType(DataType.FLOAT).updater(updater).weightInit(WeightInit.XAVIER)
                .graphBuilder().addInputs("in");
        String prev = "in";
        for (int i = 0; i < layers - 1; i++) {
            b.addLayer("dense" + i, new DenseLayer.Builder().nIn(d).nOut(d).activation(Activation.RELU).build(), prev);
            prev = "dense" + i;
        }
        b.addLayer("output", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(d).nOut(d)
                .activation(Activation.SOFTMAX).build(), prev);
        ComputationGraph g = new ComputationGraph(b.setOutputs("output").build());
        g.init();
        return g;
    }

    static INDArray features(int batch, int d) {
        Nd4j.getRandom().setSeed(3);
        return Nd4j.randn(DataType.FLOAT, batch, d);
    }

    static DataSet data(int batch, int d) {
        INDArray x = features(batch, d);
        INDArray y = Nd4j.zeros(DataType.FLOAT, batch, d);
        for (int i = 0; i < batch; i++) {
            y.putScalar(i, (i * 7) % d, 1.0);
        }
        return new DataSet(x, y);
    }
}
