package org.peft4j.lora.lycoris;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenParamsLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyDecoders;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.loha.LoHaConfig;
import org.peft4j.lora.lokr.LoKrConfig;
import org.peft4j.lora.lokr.LoKrInit;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FamilyGraphs;

/**
 * What LoHa and LoKr must guarantee on every kind of target they take (dense, 2D and 1D
 * convolutions), as every tuner must: a fresh adapter changes nothing, training moves only the
 * factors and leaves every frozen weight bit for bit, merging reproduces the unmerged outputs and
 * unmerging restores the base exactly, {@code mergeAndUnload} gives stock layers, files round-trip
 * bit for bit, DL4J's copy paths keep outputs, and embeddings (which PEFT's LoHa and LoKr do not
 * take) are refused.
 */
class LycorisBehaviourTest {

    /** A base graph, its data, and the targets of each model. */
    enum Model {
        MLP(s -> TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), s, 8, 16, 4), new String[] {"dense1", "output"}),
        CNN2D(s -> FamilyGraphs.cnn2d(DataType.FLOAT, new Adam(1e-2), s), new String[] {"conv", "conv1x1"}),
        CNN1D(s -> FamilyGraphs.cnn1d(DataType.FLOAT, new Adam(1e-2), s), new String[] {"conv", "conv1x1"});

        final Function<Long, ComputationGraph> graph;
        final String[] targets;

        Model(Function<Long, ComputationGraph> graph, String[] targets) {
            this.graph = graph;
            this.targets = targets;
        }

        ComputationGraph base() {
            return graph.apply(42L);
        }

        DataSet data(ComputationGraph base, long seed) {
            return this == MLP ? TinyGraphs.classification(DataType.FLOAT, seed, 16, 8, 4)
                    : FamilyGraphs.data(base, this == CNN1D, DataType.FLOAT, seed, 8);
        }
    }

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (Model m : Model.values()) {
            b.add(Arguments.of("LoHa " + m, m, LoHaConfig.builder().rank(2).alpha(4).useEffectiveConv2d(m != Model.MLP)
                    .targetModules(m.targets).build()));
            b.add(Arguments.of("LoKr " + m, m, LoKrConfig.builder().rank(2).alpha(2).targetModules(m.targets).build()));
        }
        return b.build();
    }

    private static void train(PeftModel peft, DataSet ds, int steps) {
        for (int i = 0; i < steps; i++) {
            peft.graph().fit(ds);
        }
    }

    private static double relDiff(INDArray expected, INDArray actual) {
        INDArray e = expected.castTo(DataType.DOUBLE);
        return e.sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue()
                / Math.max(1e-12, e.amaxNumber().doubleValue());
    }

    /** Every frozen layer's frozen weight and bias, copied, by vertex name. */
    private static Map<String, INDArray[]> frozen(PeftModel peft) {
        Map<String, INDArray[]> m = new HashMap<>();
        for (Layer l : peft.graph().getLayers()) {
            if (l.conf().getLayer() instanceof FrozenBaseLayer f) {
                m.put(f.getLayerName(), new INDArray[] {f.frozenWeight().dup(),
                        f.frozenBias() == null ? null : f.frozenBias().dup()});
            } else if (l.conf().getLayer() instanceof FrozenParamsLayer f) {
                m.put(f.getLayerName(), new INDArray[] {f.frozenParams().dup(), null});
            }
        }
        return m;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void freshAdapterLeavesOutputsUnchanged(String name, Model model, PeftConfig config) {
        ComputationGraph base = model.base();
        INDArray x = model.data(base, 1).getFeatures();
        PeftModel peft = Peft.wrap(base, config);
        assertEquals(model.targets.length, peft.adaptedLayers().size());
        assertTrue(relDiff(base.outputSingle(x), peft.graph().outputSingle(x)) <= 1e-6);
    }

    @Test
    void lycorisInitOfLoKrIsAnIdentityTooAndRandomInitsAreNot() {
        ComputationGraph base = Model.MLP.base();
        INDArray x = Model.MLP.data(base, 1).getFeatures();
        INDArray expected = base.outputSingle(x);
        PeftModel lycoris = Peft.wrap(base, LoKrConfig.builder().rank(1).decomposeBoth(true).init(LoKrInit.ZERO_W2)
                .targetModules("dense1", "output").build());
        assertTrue(relDiff(expected, lycoris.graph().outputSingle(x)) <= 1e-6);
        for (PeftConfig random : new PeftConfig[] {
                LoKrConfig.builder().init(LoKrInit.RANDOM).targetModules("dense1").build(),
                LoHaConfig.builder().initWeights(false).targetModules("dense1").build()}) {
            assertTrue(relDiff(expected, Peft.wrap(base, random).graph().outputSingle(x)) > 1e-3, random.toString());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void fitTrainsOnlyTheFactorsAndLeavesFrozenWeightsBitForBit(String name, Model model, PeftConfig config) {
        ComputationGraph base = model.base();
        PeftModel peft = Peft.wrap(base, config);
        long factors = 0;
        for (FrozenBaseLayer f : peft.adaptedLayers().values()) {
            factors += ((LycorisLayer) f).adapter().paramShapes().values().stream()
                    .mapToLong(s -> java.util.Arrays.stream(s).reduce(1, (a, c) -> a * c)).sum();
        }
        assertEquals(factors, peft.graph().numParams(), "the flat vector holds the factors only");
        Map<String, INDArray[]> before = frozen(peft);
        assertEquals(base.getLayers().length, before.size(), "every layer with weights is held frozen");
        INDArray paramsBefore = peft.graph().params().dup();

        train(peft, model.data(base, 2), 4);

        assertEquals(factors, peft.graph().getFlattenedGradients().length());
        assertEquals(2 * factors, peft.graph().getUpdater().getStateViewArray().length(), "Adam's m and v per factor");
        Map<String, INDArray[]> after = frozen(peft);
        for (Map.Entry<String, INDArray[]> e : before.entrySet()) {
            assertEquals(e.getValue()[0], after.get(e.getKey())[0], "frozen weight of " + e.getKey());
            assertEquals(e.getValue()[1], after.get(e.getKey())[1], "frozen bias of " + e.getKey());
        }
        assertNotEquals(paramsBefore, peft.graph().params(), "the factors trained");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void mergeMatchesUnmergedOutputsAndUnmergeRestoresTheBaseExactly(String name, Model model, PeftConfig config) {
        ComputationGraph base = model.base();
        PeftModel peft = Peft.wrap(base, config);
        DataSet ds = model.data(base, 3);
        train(peft, ds, 4);
        INDArray x = ds.getFeatures();
        INDArray unmerged = peft.graph().outputSingle(x);
        assertTrue(relDiff(base.outputSingle(x), unmerged) > 1e-4, "training changed the outputs");
        Map<String, INDArray> weights = new HashMap<>();
        peft.adaptedLayers().forEach((n, f) -> weights.put(n, f.effectiveWeight().dup()));

        peft.merge();
        assertTrue(relDiff(unmerged, peft.graph().outputSingle(x)) <= 1e-5, "merged outputs");
        peft.unmerge();
        peft.adaptedLayers().forEach((n, f) -> assertEquals(weights.get(n), f.effectiveWeight(), n + " restored"));
        assertEquals(unmerged, peft.graph().outputSingle(x));

        ComputationGraph plain = peft.mergeAndUnload();
        for (Layer l : plain.getLayers()) {
            Class<?> c = l.conf().getLayer().getClass();
            assertTrue(c == DenseLayer.class || c == OutputLayer.class || c == RnnOutputLayer.class
                    || c == ConvolutionLayer.class || c == Convolution1DLayer.class, "stock layer, got " + c);
        }
        assertEquals(base.numParams(), plain.numParams());
        assertTrue(relDiff(unmerged, plain.outputSingle(x)) <= 1e-5, "mergeAndUnload outputs");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void savedAdapterLoadsBitForBit(String name, Model model, PeftConfig config, @TempDir Path dir) throws Exception {
        ComputationGraph base = model.base();
        PeftModel peft = Peft.wrap(base, config);
        DataSet ds = model.data(base, 4);
        train(peft, ds, 3);
        peft.saveAdapter(dir);
        PeftModel loaded = Peft.load(model.base(), dir);
        assertEquals(config, loaded.config());
        for (String layer : peft.adaptedLayers().keySet()) {
            Map<String, INDArray> expected = peft.graph().getLayer(layer).paramTable();
            Map<String, INDArray> actual = loaded.graph().getLayer(layer).paramTable();
            assertEquals(expected.keySet(), actual.keySet());
            expected.forEach((k, v) -> assertEquals(v, actual.get(k), layer + "." + k));
        }
        assertEquals(peft.graph().outputSingle(ds.getFeatures()), loaded.graph().outputSingle(ds.getFeatures()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void cloneJsonRoundTripAndModelSerializerKeepOutputs(String name, Model model, PeftConfig config, @TempDir Path dir)
            throws Exception {
        ComputationGraph base = model.base();
        PeftModel peft = Peft.wrap(base, config);
        DataSet ds = model.data(base, 5);
        train(peft, ds, 2);
        ComputationGraph g = peft.graph();
        INDArray expected = g.outputSingle(ds.getFeatures());
        assertEquals(expected, g.clone().outputSingle(ds.getFeatures()), "clone()");
        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        fromJson.init(g.params().dup(), false);
        assertEquals(expected, fromJson.outputSingle(ds.getFeatures()), "configuration JSON round trip");
        File f = dir.resolve("model.zip").toFile();
        ModelSerializer.writeModel(g, f, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(f, true);
        assertEquals(expected, restored.outputSingle(ds.getFeatures()), "ModelSerializer");
        restored.fit(ds);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void disabledAdapterGivesTheBaseOutputsExactly(String name, Model model, PeftConfig config) {
        ComputationGraph base = model.base();
        PeftModel peft = Peft.wrap(base, config);
        DataSet ds = model.data(base, 6);
        train(peft, ds, 2);
        INDArray x = ds.getFeatures();
        INDArray adapted = peft.graph().outputSingle(x);
        INDArray frozenOnly;
        try (PeftModel.AdapterScope s = peft.disableAdapter()) {
            frozenOnly = peft.graph().outputSingle(x);
        }
        assertTrue(relDiff(base.outputSingle(x), frozenOnly) <= 1e-6);
        assertEquals(adapted, peft.graph().outputSingle(x));
    }

    @Test
    void convolutionsKeepTheirGeometryStrideDilationSamePaddingAndNhwc() {
        ComputationGraph base = new ComputationGraph(new org.deeplearning4j.nn.conf.NeuralNetConfiguration.Builder()
                .seed(3).dataType(DataType.FLOAT).updater(new Adam(1e-2)).graphBuilder().addInputs("in")
                .setInputTypes(org.deeplearning4j.nn.conf.inputs.InputType.convolutional(9, 9, 2,
                        org.deeplearning4j.nn.conf.CNN2DFormat.NHWC))
                .addLayer("conv", new ConvolutionLayer.Builder(3, 2).stride(2, 1).dilation(2, 1).nOut(4)
                        .convolutionMode(org.deeplearning4j.nn.conf.ConvolutionMode.Same)
                        .dataFormat(org.deeplearning4j.nn.conf.CNN2DFormat.NHWC)
                        .activation(org.nd4j.linalg.activations.Activation.TANH).build(), "in")
                .addLayer("head", new OutputLayer.Builder(org.nd4j.linalg.lossfunctions.LossFunctions.LossFunction.MSE)
                        .nOut(2).activation(org.nd4j.linalg.activations.Activation.IDENTITY).build(), "conv")
                .setOutputs("head").build());
        base.init();
        org.nd4j.linalg.factory.Nd4j.getRandom().setSeed(4);
        INDArray x = org.nd4j.linalg.factory.Nd4j.randn(DataType.FLOAT, 4, 9, 9, 2);
        DataSet ds = new DataSet(x, org.nd4j.linalg.factory.Nd4j.randn(DataType.FLOAT, 4, 2));
        for (PeftConfig c : new PeftConfig[] {LoHaConfig.builder().rank(2).useEffectiveConv2d(true).targetModules("conv")
                .build(), LoKrConfig.builder().rank(1).targetModules("conv").build()}) {
            PeftModel peft = Peft.wrap(base, c);
            assertTrue(relDiff(base.outputSingle(x), peft.graph().outputSingle(x)) <= 1e-6, "identity at init");
            train(peft, ds, 3);
            INDArray unmerged = peft.graph().outputSingle(x);
            assertTrue(relDiff(base.outputSingle(x), unmerged) > 1e-4, "trained");
            assertTrue(relDiff(unmerged, peft.mergeAndUnload().outputSingle(x)) <= 1e-5, c.peftType() + " merged");
        }
    }

    @Test
    void embeddingTargetsAreRefusedNamingTheKindsLoHaAndLoKrAdapt() {
        ComputationGraph decoder = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 3, 7, 4, 1, 8);
        INDArray params = decoder.params().dup();
        for (PeftConfig c : new PeftConfig[] {LoHaConfig.builder().targetModules("embed.tokens").build(),
                LoKrConfig.builder().targetModules("embed.tokens").build()}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(decoder, c));
            assertTrue(e.getMessage().contains("target module \"embed.tokens\" is a EmbeddingSequenceLayer (kind EMBEDDING)")
                    && e.getMessage().contains(c.peftType() + " adapts")
                    && e.getMessage().contains("DENSE") && e.getMessage().contains("CONVOLUTION"), e.getMessage());
        }
        assertEquals(params, decoder.params());
    }

    @Test
    void switchingToAnAdapterOfTheSameLayoutTakesItsAlpha() throws Exception {
        FamilyCase c = FamilyCase.of("loha/dense");
        ComputationGraph base = c.base(DataType.DOUBLE);
        PeftModel peft = Peft.load(base, c.dir());
        INDArray x = c.x(DataType.DOUBLE);
        INDArray baseOut = base.outputSingle(x);
        INDArray update = peft.graph().outputSingle(x).sub(baseOut);
        LoHaConfig config = (LoHaConfig) peft.config();
        peft.addAdapter("twice", config.toBuilder().alpha(2 * config.alpha()).build(),
                peft.adapterParameters(PeftModel.DEFAULT_ADAPTER));
        peft.setAdapter("twice");
        assertSame(peft.graph(), peft.graph(), "same layout: the graph is reused");
        assertTrue(relDiff(update.mul(2), peft.graph().outputSingle(x).sub(baseOut)) <= 1e-12);
        peft.setAdapter(PeftModel.DEFAULT_ADAPTER);
        assertTrue(relDiff(update, peft.graph().outputSingle(x).sub(baseOut)) <= 1e-12);
        assertFalse(peft.isMerged());
    }
}
