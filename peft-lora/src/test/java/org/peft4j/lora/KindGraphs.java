package org.peft4j.lora;

import java.util.Random;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Tiny graphs whose middle layer is an embedding or a convolution, for the LoRA kinds' tests:
 * <ul>
 *   <li>{@link #conv2d}: {@code in [n, 2, 7, 7] → pre (conv 2×2, same) → conv (3×3, stride 2, padding 1, 4
 *       channels) → head (dense, MSE)};</li>
 *   <li>{@link #conv1d}: {@code in [n, 2, 9] → pre (conv1d k 2) → conv (k 3, stride 2, padding 1, 4
 *       channels) → head (per step, MSE)};</li>
 *   <li>{@link #embedding}: {@code in (ids) → embed (vocabulary 7, width 4, with bias) → head (softmax)},
 *       as an {@code EmbeddingSequenceLayer} over 5 steps or an {@code EmbeddingLayer}.</li>
 * </ul>
 * {@code pre} is there to be trained in full ({@code modulesToSave}), so the target's input gradient
 * reaches a parameter.
 */
final class KindGraphs {
    static final int VOCAB = 7;
    static final int STEPS = 5;

    private KindGraphs() {
    }

    private static NeuralNetConfiguration.Builder common(DataType dt, IUpdater updater, long seed) {
        return new NeuralNetConfiguration.Builder().seed(seed).dataType(dt).updater(updater);
    }

    static ComputationGraph conv2d(DataType dt, IUpdater updater, long seed, CNN2DFormat format) {
        ComputationGraph g = new ComputationGraph(common(dt, updater, seed).graphBuilder().addInputs("in")
                .setInputTypes(InputType.convolutional(7, 7, 2, format))
                .addLayer("pre", new ConvolutionLayer.Builder().kernelSize(2, 2).nOut(3).dataFormat(format)
                        .convolutionMode(ConvolutionMode.Same).activation(Activation.TANH).build(), "in")
                .addLayer("conv", new ConvolutionLayer.Builder().kernelSize(3, 3).stride(2, 2).padding(1, 1).nOut(4)
                        .dataFormat(format).activation(Activation.SIGMOID).build(), "pre")
                .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                        .activation(Activation.IDENTITY).build(), "conv")
                .setOutputs("head").build());
        g.init();
        return g;
    }

    static ComputationGraph conv1d(DataType dt, IUpdater updater, long seed) {
        ComputationGraph g = new ComputationGraph(common(dt, updater, seed).graphBuilder().addInputs("in")
                .setInputTypes(InputType.recurrent(2, 9))
                .addLayer("pre", new Convolution1DLayer.Builder().kernelSize(2).nOut(3).activation(Activation.TANH)
                        .build(), "in")
                .addLayer("conv", new Convolution1DLayer.Builder().kernelSize(3).stride(2).padding(1).nOut(4)
                        .activation(Activation.TANH).build(), "pre")
                .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                        .activation(Activation.IDENTITY).build(), "conv")
                .setOutputs("head").build());
        g.init();
        return g;
    }

    static ComputationGraph embedding(DataType dt, IUpdater updater, long seed, boolean sequence) {
        var b = common(dt, updater, seed).graphBuilder().addInputs("in");
        if (sequence) {
            b.addLayer("embed", new EmbeddingSequenceLayer.Builder().nIn(VOCAB).nOut(4).hasBias(true)
                            .activation(Activation.TANH).build(), "in")
                    .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(3)
                            .activation(Activation.SOFTMAX).build(), "embed");
        } else {
            b.addLayer("embed", new EmbeddingLayer.Builder().nIn(VOCAB).nOut(4).hasBias(true)
                            .activation(Activation.TANH).build(), "in")
                    .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(3)
                            .activation(Activation.SOFTMAX).build(), "embed");
        }
        ComputationGraph g = new ComputationGraph(b.setOutputs("head").build());
        g.init();
        return g;
    }

    /** Images {@code [n, 2, 7, 7]} (NCHW) or {@code [n, 7, 7, 2]} (NHWC) with labels {@code [n, 2]}. */
    static DataSet images(DataType dt, long seed, int n, CNN2DFormat format) {
        Nd4j.getRandom().setSeed(seed);
        INDArray x = format == CNN2DFormat.NHWC ? Nd4j.randn(dt, n, 7, 7, 2) : Nd4j.randn(dt, n, 2, 7, 7);
        return new DataSet(x, Nd4j.randn(dt, n, 2));
    }

    /** Sequences {@code [n, 2, 9]} with labels {@code [n, 2, 4]} (the output length of {@code conv}). */
    static DataSet sequences(DataType dt, long seed, int n) {
        Nd4j.getRandom().setSeed(seed);
        return new DataSet(Nd4j.randn(dt, n, 2, 9), Nd4j.randn(dt, n, 2, 4));
    }

    /** Token ids ({@code [n, 5]}, or {@code [n, 1]} unless {@code sequence}) with one-hot labels over 3 classes. */
    static DataSet tokens(DataType dt, long seed, int n, boolean sequence) {
        Random r = new Random(seed);
        int t = sequence ? STEPS : 1;
        INDArray ids = Nd4j.create(dt, n, t);
        INDArray labels = sequence ? Nd4j.zeros(dt, n, 3, t) : Nd4j.zeros(dt, n, 3);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < t; j++) {
                int id = r.nextInt(VOCAB);
                ids.putScalar(i, j, id);
                if (sequence) {
                    labels.putScalar(new long[] {i, id % 3, j}, 1.0);
                } else {
                    labels.putScalar(i, id % 3, 1.0);
                }
            }
        }
        return new DataSet(ids, labels);
    }
}
