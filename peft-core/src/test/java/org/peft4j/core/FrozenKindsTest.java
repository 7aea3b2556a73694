package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.util.List;
import java.util.Random;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.testing.DeltaTuner;
import org.peft4j.core.testing.GradientChecks;

/**
 * The frozen base layers of the embedding and convolution kinds compute what the stock layers
 * compute (outputs, and the epsilon a convolution passes down), carry a tuner's branch through
 * the spi hooks (gradient-checked in double with a trainable bias and an upstream layer), merge
 * into the stock layer's own parameter layout, and survive DL4J's copy paths.
 */
class FrozenKindsTest {

    private DataType before;

    @BeforeEach
    void doublePrecision() {
        before = Nd4j.dataType();
        GradientChecks.useDoublePrecision();
    }

    @AfterEach
    void restore() {
        Nd4j.setDefaultDataTypes(before, before);
    }

    /**
     * DL4J 1.0.0-M2.1's own 1D convolution cannot backprop NWC input (its conv1d_bp op fails "Op
     * validation failed"), so no stock NWC layer can sit upstream of the target, nor serve as the
     * reference for the epsilon.
     */
    private static boolean stockBackpropWorks(Layer conv) {
        return !(conv instanceof Convolution1DLayer c1 && c1.getRnnDataFormat() == RNNFormat.NWC);
    }

    /**
     * {@code in → pre (trained in full) → conv (target) → head}; {@code conv} given by the caller.
     * Without a working stock backprop (see {@link #stockBackpropWorks}) {@code pre} is a frozen-only
     * layer the wrapper does not train.
     */
    private static ComputationGraph convGraph(Layer conv, boolean oneD, long seed) {
        var b = new NeuralNetConfiguration.Builder().seed(seed).dataType(DataType.DOUBLE).updater(new NoOp())
                .graphBuilder().addInputs("in");
        if (oneD) {
            RNNFormat fmt = ((Convolution1DLayer) conv).getRnnDataFormat();
            b.setInputTypes(InputType.recurrent(2, 9, fmt))
                    .addLayer("pre", new Convolution1DLayer.Builder().kernelSize(2).nOut(3).rnnDataFormat(fmt)
                            .activation(Activation.TANH).build(), "in")
                    .addLayer("conv", conv, "pre")
                    .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2).dataFormat(fmt)
                            .activation(Activation.IDENTITY).build(), "conv");
        } else {
            CNN2DFormat fmt = ((ConvolutionLayer) conv).getCnn2dDataFormat();
            b.setInputTypes(InputType.convolutional(7, 7, 2, fmt))
                    .addLayer("pre", new ConvolutionLayer.Builder().kernelSize(2, 2).nOut(3).dataFormat(fmt)
                            .convolutionMode(ConvolutionMode.Same).activation(Activation.TANH).build(), "in")
                    .addLayer("conv", conv, "pre")
                    .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                            .activation(Activation.IDENTITY).build(), "conv");
        }
        ComputationGraph g = new ComputationGraph(b.setOutputs("head").build());
        g.init();
        return g;
    }

    private static List<Layer> convolutions() {
        return List.of(
                new ConvolutionLayer.Builder().kernelSize(3, 2).stride(2, 1).padding(1, 0).nOut(4)
                        .activation(Activation.SIGMOID).build(),
                new ConvolutionLayer.Builder().kernelSize(2, 3).dilation(2, 1).nOut(3).convolutionMode(ConvolutionMode.Same)
                        .dataFormat(CNN2DFormat.NHWC).activation(Activation.TANH).build(),
                new ConvolutionLayer.Builder().kernelSize(3, 3).stride(2, 2).padding(1, 1).nOut(2)
                        .convolutionMode(ConvolutionMode.Strict).hasBias(false).activation(Activation.TANH).build(),
                new Convolution1DLayer.Builder().kernelSize(3).stride(2).padding(1).nOut(4)
                        .activation(Activation.TANH).build(),
                new Convolution1DLayer.Builder().kernelSize(2).dilation(2).nOut(3).convolutionMode(ConvolutionMode.Same)
                        .rnnDataFormat(RNNFormat.NWC).activation(Activation.SIGMOID).build(),
                new Convolution1DLayer.Builder().kernelSize(3).dilation(2).nOut(3).convolutionMode(ConvolutionMode.Causal)
                        .activation(Activation.TANH).build());
    }

    private static INDArray convInput(boolean oneD, CNN2DFormat f2, RNNFormat f1, long seed) {
        Nd4j.getRandom().setSeed(seed);
        if (oneD) {
            return f1 == RNNFormat.NWC ? Nd4j.randn(DataType.DOUBLE, 3, 9, 2) : Nd4j.randn(DataType.DOUBLE, 3, 2, 9);
        }
        return f2 == CNN2DFormat.NHWC ? Nd4j.randn(DataType.DOUBLE, 3, 7, 7, 2) : Nd4j.randn(DataType.DOUBLE, 3, 2, 7, 7);
    }

    private static INDArray labels(ComputationGraph g, INDArray x) {
        INDArray out = g.outputSingle(x);
        Nd4j.getRandom().setSeed(11);
        return Nd4j.randn(DataType.DOUBLE, out.shape());
    }

    private static double maxAbsDiff(INDArray a, INDArray b) {
        return a.sub(b).amaxNumber().doubleValue();
    }

    /** A wrapped graph whose trainable parameters are {@code pre}'s (when its backprop works) and the target's. */
    private static PeftModel wrapConv(ComputationGraph base, BiasMode bias) {
        Layer conv = base.getLayer("conv").conf().getLayer();
        return Peft.wrap(base, stockBackpropWorks(conv) ? new DeltaTunerWithSave(bias, "conv", "pre")
                : new DeltaTuner(bias, "conv"));
    }

    @Test
    void frozenConvolutionsComputeTheStockOutputAndEpsilon() {
        for (Layer conv : convolutions()) {
            boolean oneD = conv instanceof Convolution1DLayer;
            ComputationGraph base = convGraph(conv, oneD, 5);
            INDArray x = convInput(oneD, oneD ? null : ((ConvolutionLayer) conv).getCnn2dDataFormat(),
                    oneD ? ((Convolution1DLayer) conv).getRnnDataFormat() : null, 3);
            INDArray y = labels(base, x);
            PeftModel peft = wrapConv(base, BiasMode.NONE);
            assertInstanceOf(FrozenConvolutionLayer.class, peft.graph().getLayer("conv").conf().getLayer());
            INDArray expected = base.outputSingle(x);
            assertTrue(maxAbsDiff(expected, peft.graph().outputSingle(x)) < 1e-12, conv + ": outputs differ");

            if (!stockBackpropWorks(conv)) {
                continue;
            }
            // The epsilon the target passes down is what reaches pre's parameters.
            base.setInputs(x);
            base.setLabels(y);
            base.computeGradientAndScore();
            ComputationGraph g = peft.graph();
            g.setInputs(x);
            g.setLabels(y);
            g.computeGradientAndScore();
            for (String k : List.of("W", "b")) {
                INDArray want = base.getGradient().getGradientFor("pre_" + k);
                INDArray got = g.getGradient().getGradientFor("pre_" + k);
                assertTrue(maxAbsDiff(want, got) < 1e-10, conv + ": gradient of pre_" + k + " differs by "
                        + maxAbsDiff(want, got));
            }
            assertEquals(base.score(), g.score(), 1e-12);
        }
    }

    @Test
    void convolutionBranchAndTrainableBiasPassGradientChecks() {
        for (Layer conv : convolutions()) {
            if (!stockBackpropWorks(conv)) {
                continue; // and the split NWC RnnOutputLayer reads NWC labels as NCW (RnnLossLayer of M2.1)
            }
            boolean oneD = conv instanceof Convolution1DLayer;
            ComputationGraph base = convGraph(conv, oneD, 7);
            INDArray x = convInput(oneD, oneD ? null : ((ConvolutionLayer) conv).getCnn2dDataFormat(),
                    oneD ? ((Convolution1DLayer) conv).getRnnDataFormat() : null, 4);
            PeftModel peft = wrapConv(base, BiasMode.ALL);
            randomizeDelta(peft, "conv");
            assertTrue(GradientChecks.passes(peft.graph(), x, labels(base, x)), conv + ": gradient check failed");
        }
    }

    private static void randomizeDelta(PeftModel peft, String layer) {
        Nd4j.getRandom().setSeed(21);
        INDArray d = peft.graph().getLayer(layer).getParam(DeltaTuner.DELTA);
        d.assign(Nd4j.randn(DataType.DOUBLE, d.shape()).muli(0.3));
    }

    @Test
    void convolutionMergesIntoTheStockKernelLayout() throws Exception {
        for (Layer conv : convolutions()) {
            boolean oneD = conv instanceof Convolution1DLayer;
            ComputationGraph base = convGraph(conv, oneD, 9);
            INDArray x = convInput(oneD, oneD ? null : ((ConvolutionLayer) conv).getCnn2dDataFormat(),
                    oneD ? ((Convolution1DLayer) conv).getRnnDataFormat() : null, 6);
            PeftModel peft = wrapConv(base, BiasMode.NONE);
            randomizeDelta(peft, "conv");
            checkMergeAndCopies(peft, base, x, "conv");
        }
    }

    /** Merge, unmerge, mergeAndUnload, clone, JSON and ModelSerializer all give the adapted outputs. */
    private static void checkMergeAndCopies(PeftModel peft, ComputationGraph base, INDArray x, String layer)
            throws Exception {
        INDArray adapted = peft.graph().outputSingle(x);
        assertTrue(maxAbsDiff(adapted, base.outputSingle(x)) > 1e-6, layer + ": the branch changes the output");
        FrozenBaseLayer f = peft.adaptedLayers().get(layer);
        INDArray frozen = f.frozenWeight().dup();

        ComputationGraph plain = peft.mergeAndUnload();
        assertEquals(base.getLayer(layer).conf().getLayer().getClass(), plain.getLayer(layer).conf().getLayer().getClass());
        INDArray expectedW = f.stockWeight(f.mergedWeight(frozen, peft.graph().getLayer(layer).paramTable()));
        assertEquals(expectedW, plain.getLayer(layer).getParam("W"), "merged weight in the stock layout");
        assertTrue(maxAbsDiff(adapted, plain.outputSingle(x)) < 1e-10, layer + ": mergeAndUnload differs");

        peft.merge();
        assertTrue(maxAbsDiff(adapted, peft.graph().outputSingle(x)) < 1e-10, layer + ": merged differs");
        peft.unmerge();
        assertEquals(frozen, f.effectiveWeight(), "unmerge restores the frozen weight exactly");
        assertEquals(adapted, peft.graph().outputSingle(x));

        ComputationGraph g = peft.graph();
        assertEquals(adapted, g.clone().outputSingle(x), "clone()");
        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        fromJson.init(g.params().dup(), false);
        assertEquals(adapted, fromJson.outputSingle(x), "configuration JSON round trip");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ModelSerializer.writeModel(g, bytes, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(new ByteArrayInputStream(bytes.toByteArray()), true);
        assertEquals(adapted, restored.outputSingle(x), "ModelSerializer");
    }

    /** {@code in (indices) → emb (target) → head}. */
    private static ComputationGraph embeddingGraph(boolean sequence, RNNFormat fmt, boolean bias, long seed) {
        var b = new NeuralNetConfiguration.Builder().seed(seed).dataType(DataType.DOUBLE).updater(new NoOp())
                .graphBuilder().addInputs("in");
        if (sequence) {
            b.addLayer("emb", new EmbeddingSequenceLayer.Builder().nIn(7).nOut(4).hasBias(bias).outputDataFormat(fmt)
                            .activation(Activation.TANH).build(), "in")
                    .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(4).nOut(2)
                            .dataFormat(fmt).activation(Activation.IDENTITY).build(), "emb");
        } else {
            b.addLayer("emb", new EmbeddingLayer.Builder().nIn(7).nOut(4).hasBias(bias).activation(Activation.SIGMOID)
                            .build(), "in")
                    .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(4).nOut(2)
                            .activation(Activation.IDENTITY).build(), "emb");
        }
        ComputationGraph g = new ComputationGraph(b.setOutputs("head").build());
        g.init();
        return g;
    }

    private static INDArray tokens(boolean sequence, long seed) {
        Random r = new Random(seed);
        INDArray x = Nd4j.create(DataType.DOUBLE, sequence ? new long[] {3, 5} : new long[] {3, 1});
        for (int i = 0; i < x.length(); i++) {
            x.putScalar(i, r.nextInt(7));
        }
        return x;
    }

    private static final List<Object[]> EMBEDDINGS = List.of(
            new Object[] {true, RNNFormat.NCW, true}, new Object[] {true, RNNFormat.NWC, false},
            new Object[] {false, RNNFormat.NCW, true});

    @Test
    void frozenEmbeddingsComputeTheStockOutputAndPassNoEpsilon() {
        for (Object[] c : EMBEDDINGS) {
            ComputationGraph base = embeddingGraph((Boolean) c[0], (RNNFormat) c[1], (Boolean) c[2], 5);
            INDArray x = tokens((Boolean) c[0], 2);
            PeftModel peft = Peft.wrap(base, new DeltaTuner(BiasMode.NONE, "emb"));
            assertInstanceOf(FrozenEmbeddingLayer.class, peft.graph().getLayer("emb").conf().getLayer());
            assertTrue(maxAbsDiff(base.outputSingle(x), peft.graph().outputSingle(x)) < 1e-12, c[0] + " " + c[1]);
            if (c[1] == RNNFormat.NWC) {
                continue; // the split of an NWC RnnOutputLayer reads NWC labels as NCW (GraphRewriter, not this layer)
            }
            ComputationGraph g = peft.graph();
            g.setInputs(x);
            g.setLabels(labels(base, x));
            g.computeGradientAndScore();
            assertEquals(base.getLayer("emb").getParam("W").length(), g.getLayer("emb").getParam(DeltaTuner.DELTA).length());
        }
        ComputationGraph masked = embeddingGraph(true, RNNFormat.NCW, true, 5);
        INDArray x = tokens(true, 4);
        INDArray mask = Nd4j.ones(DataType.DOUBLE, 3, 5);
        mask.putScalar(0, 4, 0.0);
        mask.putScalar(2, 3, 0.0);
        PeftModel peft = Peft.wrap(masked, new DeltaTuner(BiasMode.NONE, "emb"));
        INDArray want = masked.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        INDArray got = peft.graph().output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        assertTrue(maxAbsDiff(want, got) < 1e-12, "masked outputs differ");
    }

    @Test
    void embeddingBranchAndTrainableBiasPassGradientChecks() {
        for (Object[] c : EMBEDDINGS) {
            if (!(Boolean) c[2]) {
                continue;
            }
            ComputationGraph base = embeddingGraph((Boolean) c[0], (RNNFormat) c[1], true, 7);
            INDArray x = tokens((Boolean) c[0], 3);
            PeftModel peft = Peft.wrap(base, new DeltaTuner(BiasMode.LORA_ONLY, "emb"));
            assertTrue(peft.graph().getLayer("emb").paramTable().containsKey(FrozenBaseLayer.BIAS_KEY));
            randomizeDelta(peft, "emb");
            assertTrue(GradientChecks.passes(peft.graph(), x, labels(base, x)), c[0] + " " + c[1]);
        }
    }

    @Test
    void embeddingMergesIntoTheStockTableLayout() throws Exception {
        for (Object[] c : EMBEDDINGS) {
            ComputationGraph base = embeddingGraph((Boolean) c[0], (RNNFormat) c[1], (Boolean) c[2], 9);
            INDArray x = tokens((Boolean) c[0], 5);
            PeftModel peft = Peft.wrap(base, new DeltaTuner(BiasMode.NONE, "emb"));
            randomizeDelta(peft, "emb");
            checkMergeAndCopies(peft, base, x, "emb");
        }
    }

    @Test
    void aTargetOfAKindTheTunerDoesNotSupportIsRefusedNamingLayerKindAndKinds() {
        ComputationGraph base = embeddingGraph(true, RNNFormat.NCW, true, 1);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> Peft.wrap(base, new DeltaTuner(BiasMode.NONE, "head")));
        assertEquals("target module \"head\" is a RnnOutputLayer (kind DENSE), and TEST_DELTA adapts EMBEDDING "
                + "(EmbeddingLayer, EmbeddingSequenceLayer), CONVOLUTION (ConvolutionLayer, Convolution1DLayer); "
                + "choose targets of those kinds, or exclude it with excludeModules", e.getMessage());
        assertNull(TargetKind.of(new org.deeplearning4j.nn.conf.layers.Deconvolution2D.Builder().nOut(2).build()),
                "subclasses of a listed type are of no kind");
    }

    /** {@link DeltaTuner} that also trains {@code saved} in full, so something upstream of the target trains. */
    private static final class DeltaTunerWithSave implements PeftConfig {
        private final DeltaTuner tuner;
        private final Targeting targeting;

        DeltaTunerWithSave(BiasMode bias, String target, String saved) {
            this.tuner = new DeltaTuner(bias, target);
            this.targeting = tuner.targeting().toBuilder().modulesToSave(saved).build();
        }

        @Override
        public String peftType() {
            return tuner.peftType();
        }

        @Override
        public Targeting targeting() {
            return targeting;
        }

        @Override
        public java.util.Set<TargetKind> supportedTargetKinds() {
            return tuner.supportedTargetKinds();
        }

        @Override
        public FrozenBaseLayer adapt(Target target) {
            return tuner.adapt(target);
        }
    }
}
