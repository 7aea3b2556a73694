package org.peft4j.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
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
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FamilyGraphs;
import org.peft4j.lora.testing.PeftFiles;

/**
 * AdaLoRA on dense layers and 2D convolutions as a user meets it: a new adapter changes nothing,
 * only its parameters train (the frozen weights stay bit for bit), merging gives the unmerged
 * outputs and unmerging restores the base exactly, a pruned adapter is saved with PEFT's shapes and
 * reloads to the same outputs, files round-trip bit for bit, and the wrapped graph survives DL4J's
 * copy paths.
 */
class AdaLoraBehaviourTest {

    private static AdaLoraConfig.Builder dense() {
        return AdaLoraConfig.builder().initR(4).targetR(2).alpha(8).totalStep(12).tinit(2).tfinal(3).deltaT(2)
                .targetModules("dense1", "dense2", "output");
    }

    private static AdaLoraConfig.Builder conv() {
        return AdaLoraConfig.builder().initR(3).targetR(2).alpha(4).totalStep(12).tinit(2).tfinal(3).deltaT(2)
                .targetModules("conv", "conv1x1");
    }

    private static ComputationGraph mlp() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 41, 5, 6, 3);
    }

    private static ComputationGraph cnn() {
        return FamilyGraphs.cnn2d(DataType.FLOAT, new Adam(1e-2), 42);
    }

    private static DataSet mlpData() {
        return TinyGraphs.classification(DataType.FLOAT, 43, 8, 5, 3);
    }

    private static DataSet cnnData(ComputationGraph base) {
        return FamilyGraphs.data(base, false, DataType.FLOAT, 44, 4);
    }

    /** {@code steps} fits of {@code ds} with an allocator attached. */
    private static void train(PeftModel peft, DataSet ds, int steps) {
        AdaLoraAllocator.attach(peft);
        for (int i = 0; i < steps; i++) {
            peft.graph().fit(ds);
        }
    }

    private static double relDiff(INDArray expected, INDArray actual) {
        double scale = Math.max(expected.amaxNumber().doubleValue(), 1e-30);
        return expected.castTo(DataType.DOUBLE).sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue() / scale;
    }

    @Test
    void aNewAdapterGivesTheBaseOutputsExactly() {
        ComputationGraph base = mlp();
        DataSet ds = mlpData();
        PeftModel peft = Peft.wrap(base, dense().build());
        assertEquals(base.outputSingle(ds.getFeatures()), peft.graph().outputSingle(ds.getFeatures()));

        ComputationGraph cnn = cnn();
        DataSet images = cnnData(cnn);
        PeftModel convPeft = Peft.wrap(cnn, conv().build());
        assertEquals(cnn.outputSingle(images.getFeatures()), convPeft.graph().outputSingle(images.getFeatures()));
        // r·(n + 1 + out) per layer: conv 3·(3·3·3 + 1 + 4), conv1x1 3·(4 + 1 + 4)
        assertEquals(3 * (27 + 1 + 4) + 3 * (4 + 1 + 4), convPeft.trainableParameters());
    }

    @Test
    void onlyTheAdapterTrainsAndTheFrozenWeightsStayBitForBit() {
        ComputationGraph base = mlp();
        INDArray baseParams = base.params().dup();
        PeftModel peft = Peft.wrap(base, dense().build());
        INDArray before = peft.graph().params().dup();
        train(peft, mlpData(), 14);
        assertNotEquals(before, peft.graph().params(), "the adapter trained");
        assertEquals(baseParams, base.params(), "the user's graph is untouched");
        assertEquals(baseParams, peft.reconstructBase().params(), "the frozen weights are the base's, bit for bit");
        // r·(nIn + 1 + nOut) per layer, nothing else
        assertEquals(4 * (6 + 1 + 6) * 2 + 4 * (6 + 1 + 3), peft.trainableParameters());
    }

    @Test
    void mergeGivesTheUnmergedOutputsAndUnmergeRestoresTheBase() {
        for (boolean convolution : new boolean[] {false, true}) {
            ComputationGraph base = convolution ? cnn() : mlp();
            DataSet ds = convolution ? cnnData(base) : mlpData();
            PeftModel peft = Peft.wrap(base, (convolution ? conv() : dense()).build());
            train(peft, ds, 14);
            INDArray x = ds.getFeatures();
            INDArray unmerged = peft.graph().outputSingle(x).dup();
            assertTrue(relDiff(base.outputSingle(x), unmerged) > 1e-3, "the adapter changes the outputs");
            assertTrue(relDiff(unmerged, peft.mergeAndUnload().outputSingle(x)) <= 1e-5, "mergeAndUnload");

            peft.merge();
            assertTrue(relDiff(unmerged, peft.graph().outputSingle(x)) <= 1e-5, "merged in place");
            peft.unmerge();
            for (FrozenBaseLayer f : peft.adaptedLayers().values()) {
                assertTrue(f.effectiveWeight() == f.frozenWeight(), "unmerge restores the frozen weight itself");
            }
            assertEquals(unmerged, peft.graph().outputSingle(x), "unmerged again: the same outputs, bit for bit");
            try (var off = peft.disableAdapter()) {
                assertEquals(base.outputSingle(x), peft.graph().outputSingle(x), "disabled: the base outputs");
            }
        }
    }

    /** Dilation and NHWC: the update is applied with the layer's own geometry in its row form. */
    @Test
    void aDilatedNhwcConvolutionMergesToItsOutputs() {
        ComputationGraph base = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(45).dataType(DataType.FLOAT)
                .updater(new Adam(1e-2)).graphBuilder().addInputs("in")
                .setInputTypes(InputType.convolutional(7, 7, 2, CNN2DFormat.NHWC))
                .addLayer("conv", new ConvolutionLayer.Builder(3, 3).dilation(2, 2).stride(1, 1).nOut(3)
                        .dataFormat(CNN2DFormat.NHWC).convolutionMode(ConvolutionMode.Truncate)
                        .activation(Activation.TANH).build(), "in")
                .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                        .activation(Activation.IDENTITY).build(), "conv")
                .setOutputs("head").build());
        base.init();
        Nd4j.getRandom().setSeed(46);
        DataSet ds = new DataSet(Nd4j.randn(DataType.FLOAT, 3, 7, 7, 2), Nd4j.randn(DataType.FLOAT, 3, 2));
        PeftModel peft = Peft.wrap(base, AdaLoraConfig.builder().initR(2).targetR(1).totalStep(8).targetModules("conv")
                .build());
        train(peft, ds, 6);
        INDArray out = peft.graph().outputSingle(ds.getFeatures());
        assertTrue(relDiff(base.outputSingle(ds.getFeatures()), out) > 1e-3, "the adapter changes the outputs");
        assertTrue(relDiff(out, peft.mergeAndUnload().outputSingle(ds.getFeatures())) <= 1e-5);
    }

    /**
     * After the budget schedule the adapter is saved pruned, as PEFT saves it: each layer's kept
     * triplets only ({@code lora_A [k, n]}, {@code lora_E [k, 1]}, {@code lora_B [out, k]}) and the
     * flags as {@code rank_pattern}. It reloads to the same outputs, and saving the reloaded adapter
     * writes the same files bit for bit.
     */
    @Test
    void aPrunedAdapterIsSavedWithPeftsShapesAndReloadsToTheSameOutputs(@TempDir Path tmp) throws Exception {
        for (boolean convolution : new boolean[] {false, true}) {
            ComputationGraph base = convolution ? cnn() : mlp();
            DataSet ds = convolution ? cnnData(base) : mlpData();
            AdaLoraConfig cfg = (convolution ? conv() : dense()).build();
            PeftModel peft = Peft.wrap(base, cfg);
            train(peft, ds, 14);
            Path dir = tmp.resolve(convolution ? "conv" : "dense");
            peft.saveAdapter(dir);

            Map<String, Object> json = FamilyCase.readConfig(dir);
            Map<?, ?> pattern = (Map<?, ?>) json.get("rank_pattern");
            Map<String, SafeTensor> tensors = Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors();
            int kept = 0;
            for (Map.Entry<String, FrozenBaseLayer> e : peft.adaptedLayers().entrySet()) {
                AdaLoraLayer a = (AdaLoraLayer) e.getValue();
                List<?> flags = (List<?>) pattern.get(a.baseLayerName() + ".lora_E");
                assertEquals(a.rankPattern(), flags, e.getKey() + ": rank_pattern as the layer holds it");
                int k = (int) flags.stream().filter(Boolean.TRUE::equals).count();
                kept += k;
                String p = "base_model.model." + a.baseLayerName() + ".";
                INDArray params = peft.graph().getLayer(e.getKey()).getParam(AdaLoraLayer.LORA_A);
                if (k > 0) {
                    assertArrayEquals(new long[] {k, params.size(1)}, tensors.get(p + "lora_A").shape(), p + "lora_A");
                    assertArrayEquals(new long[] {k, 1}, tensors.get(p + "lora_E").shape(), p + "lora_E");
                    assertEquals(k, tensors.get(p + "lora_B").shape()[1], p + "lora_B");
                }
            }
            int layers = peft.adaptedLayers().size();
            assertEquals(cfg.targetR() * layers, kept, "the budget ends at target_r per layer");

            PeftModel reloaded = Peft.load(convolution ? cnn() : mlp(), dir);
            INDArray x = ds.getFeatures();
            assertTrue(relDiff(peft.graph().outputSingle(x), reloaded.graph().outputSingle(x)) <= 1e-6,
                    "the pruned adapter gives the trained model's outputs");
            Path again = tmp.resolve((convolution ? "conv" : "dense") + "-again");
            reloaded.saveAdapter(again);
            PeftFiles.assertSameTensors(tensors, again);
            assertEquals(json.get("rank_pattern"), FamilyCase.readConfig(again).get("rank_pattern"));
        }
    }

    /** An adapter saved before any allocation: every triplet, {@code rank_pattern} null, parameters bit for bit. */
    @Test
    void anUnprunedAdapterRoundTripsBitForBit(@TempDir Path tmp) throws Exception {
        ComputationGraph base = mlp();
        PeftModel peft = Peft.wrap(base, dense().build());
        AdaLoraGraphs.randomize(peft, 47);
        peft.saveAdapter(tmp);
        assertTrue(FamilyCase.readConfig(tmp).containsKey("rank_pattern"));
        assertEquals(null, FamilyCase.readConfig(tmp).get("rank_pattern"));
        PeftModel loaded = Peft.load(mlp(), tmp);
        assertEquals(TinyGraphs.paramsByLayer(peft.graph()), TinyGraphs.paramsByLayer(loaded.graph()));
    }

    /**
     * A layer the allocation pruned to no triplet writes no tensor (a layer cannot declare PEFT's
     * empty {@code [out, 0]} tensor here) and its all-false {@code rank_pattern} entry; it reloads as
     * a layer without parameters that adds nothing, and the outputs are the same.
     */
    @Test
    void aLayerPrunedToNothingWritesNoTensorAndReloads(@TempDir Path tmp) throws Exception {
        ComputationGraph base = mlp();
        DataSet ds = mlpData();
        PeftModel peft = Peft.wrap(base, dense().build());
        AdaLoraGraphs.randomize(peft, 48);
        var layer = peft.graph().getLayer("dense2");
        AdaLoraDenseLayer conf = (AdaLoraDenseLayer) layer.conf().getLayer();
        conf.setSvd(conf.svd().withRankPattern(new boolean[] {false, false, false, false}));
        layer.getParam(AdaLoraLayer.LORA_E).assign(0);
        peft.saveAdapter(tmp);
        Map<String, SafeTensor> tensors = Safetensors.read(tmp.resolve("adapter_model.safetensors")).tensors();
        assertFalse(tensors.keySet().stream().anyMatch(k -> k.contains(".dense2.")), tensors.keySet().toString());
        assertEquals(List.of(false, false, false, false),
                ((Map<?, ?>) FamilyCase.readConfig(tmp).get("rank_pattern")).get("dense2.lora_E"));

        PeftModel loaded = Peft.load(mlp(), tmp);
        AdaLoraLayer reloaded = (AdaLoraLayer) loaded.adaptedLayers().get("dense2");
        assertEquals(0, reloaded.rank());
        assertEquals(0, loaded.graph().getLayer("dense2").numParams());
        assertTrue(relDiff(peft.graph().outputSingle(ds.getFeatures()), loaded.graph().outputSingle(ds.getFeatures()))
                <= 1e-6);
        loaded.saveAdapter(tmp.resolve("again"));
        PeftFiles.assertSameTensors(tensors, tmp.resolve("again"));
    }

    /** The settings an allocator makes (rank pattern, regularizer) live in the layer configuration and survive DL4J's copies. */
    @Test
    void theWrappedGraphSurvivesCloneJsonAndModelSerializer(@TempDir Path tmp) throws Exception {
        ComputationGraph base = cnn();
        DataSet ds = cnnData(base);
        PeftModel peft = Peft.wrap(base, conv().build());
        train(peft, ds, 14);
        ComputationGraph g = peft.graph();
        INDArray x = ds.getFeatures();
        INDArray expected = g.outputSingle(x);

        ComputationGraph cloned = g.clone();
        assertEquals(expected, cloned.outputSingle(x), "clone()");
        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()));
        fromJson.init(g.params().dup(), false);
        assertEquals(expected, fromJson.outputSingle(x), "configuration JSON");
        File zip = tmp.resolve("model.zip").toFile();
        ModelSerializer.writeModel(g, zip, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(zip, true);
        assertEquals(expected, restored.outputSingle(x), "ModelSerializer");
        AdaLoraLayer a = (AdaLoraLayer) restored.getLayer("conv").conf().getLayer();
        assertEquals(((AdaLoraLayer) g.getLayer("conv").conf().getLayer()).rankPattern(), a.rankPattern());
        assertEquals(g.score(ds, false), restored.score(ds, false), 1e-6, "the regularizer is on in the copy too");
    }

    @Test
    void aOneDimensionalConvolutionIsRefusedNamingTheLayer() {
        ComputationGraph base = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(49).dataType(DataType.FLOAT)
                .graphBuilder().addInputs("in").setInputTypes(InputType.recurrent(2, 6))
                .addLayer("conv1d", new Convolution1DLayer.Builder().kernelSize(3).nOut(3).build(), "in")
                .addLayer("head", new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nOut(2)
                        .activation(Activation.IDENTITY).build(), "conv1d")
                .setOutputs("head").build());
        base.init();
        INDArray before = base.params().dup();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Peft.wrap(base, AdaLoraConfig.builder().totalStep(5).targetModules("conv1d").build()));
        assertTrue(e.getMessage().contains("\"conv1d\"") && e.getMessage().contains("1D convolution"), e.getMessage());
        assertEquals(before, base.params());
    }
}
