package org.peft4j.lora.testing;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
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
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Small convolutional graphs for the LoRA family's tests, each {@code in → pre → conv → conv1x1 → head}
 * with {@code pre} a stock convolution (train it in full to check the epsilon the targets pass
 * down), {@code conv} a 3-tap (1D) or 3×3 (2D, stride 1, padding 1) convolution and
 * {@code conv1x1} a one-tap convolution, both tanh, and an MSE head.
 *
 * <p>Thread-safety: stateless.
 */
public final class FamilyGraphs {

    private FamilyGraphs() {
    }

    /** 2D: {@code in [batch, 2, 5, 5]} (NCHW) → pre (2×2, same, 3 channels) → conv (3×3, 4) → conv1x1 (4) → head (2). */
    public static ComputationGraph cnn2d(DataType dt, IUpdater updater, long seed) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder()
                .seed(seed).dataType(dt).updater(updater).weightInit(WeightInit.XAVIER)
                .graphBuilder()
                .addInputs("in")
                .setInputTypes(InputType.convolutional(5, 5, 2))
                .addLayer("pre", new ConvolutionLayer.Builder(2, 2).nOut(3).convolutionMode(ConvolutionMode.Same)
                        .activation(Activation.TANH).build(), "in")
                .addLayer("conv", new ConvolutionLayer.Builder(3, 3).padding(1, 1).nOut(4)
                        .convolutionMode(ConvolutionMode.Truncate).activation(Activation.TANH).build(), "pre")
                .addLayer("conv1x1", new ConvolutionLayer.Builder(1, 1).nOut(4).activation(Activation.TANH).build(), "conv")
                .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                        .activation(Activation.IDENTITY).build(), "conv1x1")
                .setOutputs("head")
                .build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    /** 1D: {@code in [batch, 2, 7]} (NCW) → pre (k 2, 3 channels) → conv (k 3, padding 1, 4) → conv1x1 (4) → head (2 per step). */
    public static ComputationGraph cnn1d(DataType dt, IUpdater updater, long seed) {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder()
                .seed(seed).dataType(dt).updater(updater).weightInit(WeightInit.XAVIER)
                .graphBuilder()
                .addInputs("in")
                .setInputTypes(InputType.recurrent(2, 7))
                .addLayer("pre", new Convolution1DLayer.Builder().kernelSize(2).nOut(3).activation(Activation.TANH).build(), "in")
                .addLayer("conv", new Convolution1DLayer.Builder().kernelSize(3).padding(1).nOut(4)
                        .convolutionMode(ConvolutionMode.Truncate).activation(Activation.TANH).build(), "pre")
                .addLayer("conv1x1", new Convolution1DLayer.Builder().kernelSize(1).nOut(4).activation(Activation.TANH).build(),
                        "conv")
                .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                        .activation(Activation.IDENTITY).build(), "conv1x1")
                .setOutputs("head")
                .build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    /** Random inputs for {@code g} ({@code [batch, 2, 5, 5]} or {@code [batch, 2, 7]}) with random regression targets. */
    public static DataSet data(ComputationGraph g, boolean oneD, DataType dt, long seed, int batch) {
        Nd4j.getRandom().setSeed(seed);
        INDArray x = oneD ? Nd4j.randn(dt, batch, 2, 7) : Nd4j.randn(dt, batch, 2, 5, 5);
        INDArray y = Nd4j.randn(dt, g.outputSingle(x).shape());
        return new DataSet(x, y);
    }
}
