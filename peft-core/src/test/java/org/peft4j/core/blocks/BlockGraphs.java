package org.peft4j.core.blocks;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.PreprocessorVertex;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToRnnPreProcessor;
import org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Small double-precision graphs around one block under test, each with a trainable stock dense
 * layer below it (so the block's epsilon is checked through that layer's gradient):
 * {@code in [nIn, T] → below (dense per step) → below.rnn → [block] → out (RnnOutputLayer, MCXENT)}.
 */
final class BlockGraphs {

    private BlockGraphs() {
    }

    static NeuralNetConfiguration.Builder base(long seed) {
        return new NeuralNetConfiguration.Builder().seed(seed).dataType(DataType.DOUBLE).updater(new NoOp())
                .weightInit(WeightInit.XAVIER);
    }

    static ComputationGraphConfiguration.GraphBuilder below(long seed, int nIn, int width) {
        return base(seed).graphBuilder().addInputs("in")
                .addLayer("below", new DenseLayer.Builder().nIn(nIn).nOut(width).activation(Activation.TANH).build(),
                        new RnnToFeedForwardPreProcessor(RNNFormat.NCW), "in")
                .addVertex("below.rnn", new PreprocessorVertex(new FeedForwardToRnnPreProcessor(RNNFormat.NCW)), "below");
    }

    static ComputationGraph finish(ComputationGraphConfiguration.GraphBuilder g, String last, int width, int nOut) {
        g.addLayer("out", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(width).nOut(nOut)
                .activation(Activation.SOFTMAX).dataFormat(RNNFormat.NCW).build(), last);
        g.setOutputs("out");
        ComputationGraph graph = new ComputationGraph(g.build());
        graph.init();
        return graph;
    }

    /** As {@link #finish} for a last vertex emitting time-distributed rows {@code [b·T, width]}. */
    static ComputationGraph finishRows(ComputationGraphConfiguration.GraphBuilder g, String last, int width, int nOut) {
        g.addLayer("out", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(width).nOut(nOut)
                .activation(Activation.SOFTMAX).dataFormat(RNNFormat.NCW).build(),
                new FeedForwardToRnnPreProcessor(RNNFormat.NCW), last);
        g.setOutputs("out");
        ComputationGraph graph = new ComputationGraph(g.build());
        graph.init();
        return graph;
    }

    /** {@code below → layer → out}. */
    static ComputationGraph aroundLayer(long seed, int nIn, int width, Layer layer, int layerOut, int nOut) {
        ComputationGraphConfiguration.GraphBuilder g = below(seed, nIn, width);
        g.addLayer("block", layer, "below.rnn");
        return finish(g, "block", layerOut, nOut);
    }

    /** {@code below → vertex → out}. */
    static ComputationGraph aroundVertex(long seed, int nIn, int width, GraphVertex v, int nOut) {
        ComputationGraphConfiguration.GraphBuilder g = below(seed, nIn, width);
        g.addVertex("block", v, "below.rnn");
        return finish(g, "block", width, nOut);
    }

    /** Random {@code [b, nIn, T]} inputs. */
    static INDArray inputs(long seed, int b, int nIn, int t) {
        Nd4j.getRandom().setSeed(seed);
        return Nd4j.randn(DataType.DOUBLE, b, nIn, t);
    }

    /** One-hot labels {@code [b, nOut, T]} with random classes. */
    static INDArray oneHot(long seed, int b, int nOut, int t) {
        java.util.Random r = new java.util.Random(seed);
        INDArray y = Nd4j.zeros(DataType.DOUBLE, b, nOut, t);
        for (int i = 0; i < b; i++) {
            for (int s = 0; s < t; s++) {
                y.putScalar(new int[] {i, r.nextInt(nOut), s}, 1.0);
            }
        }
        return y;
    }

    /** Overwrites every parameter of {@code layer} with N(0, scale²) values. */
    static void randomize(ComputationGraph g, String layer, double scale, long seed) {
        Nd4j.getRandom().setSeed(seed);
        g.getLayer(layer).paramTable().values()
                .forEach(p -> p.assign(Nd4j.randn(DataType.DOUBLE, p.shape()).muli(scale)));
    }
}
