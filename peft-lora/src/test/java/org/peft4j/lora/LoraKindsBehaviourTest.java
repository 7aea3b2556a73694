package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.testing.TinyGraphs;

/**
 * LoRA on embeddings and convolutions, and DoRA on every kind, keep the invariants every tuner
 * keeps: a fresh adapter reproduces the base model; {@code fit} trains the adapter's parameters
 * only and leaves the frozen weights bit for bit; merging gives the unmerged outputs (to float
 * tolerance) and unmerging restores the frozen weights exactly; {@code mergeAndUnload()} gives the
 * stock layers; a saved adapter loads back bit-exactly with Hugging Face PEFT's tensor names and
 * shapes; the wrapped graph survives DL4J's {@code clone()} and {@code ModelSerializer}.
 */
class LoraKindsBehaviourTest {

    /** A base graph, the targeted layers, the stock class they merge back into, data, and the file tensors expected. */
    private record Variant(Supplier<ComputationGraph> base, LoraConfig config, Class<?> stock, DataSet data,
                           Map<String, long[]> tensors) {
    }

    private static final String P = "base_model.model.";

    private static Variant variant(String name) {
        boolean dora = name.endsWith("dora");
        LoraConfig.Builder b = LoraConfig.builder().rank(2).alpha(4).useDora(dora);
        Map<String, long[]> t = new LinkedHashMap<>();
        switch (name.substring(0, name.indexOf('-'))) {
            case "conv2d":
                t.put(P + "conv.lora_A.weight", new long[] {2, 3, 3, 3});
                t.put(P + "conv.lora_B.weight", new long[] {4, 2, 1, 1});
                magnitude(dora, t, "conv", 1, 4, 1, 1);
                return new Variant(() -> KindGraphs.conv2d(DataType.FLOAT, new Adam(2e-2), 31, CNN2DFormat.NCHW),
                        b.dropout(0.1).targetModules("conv").build(), ConvolutionLayer.class,
                        KindGraphs.images(DataType.FLOAT, 32, 8, CNN2DFormat.NCHW), t);
            case "conv1d":
                t.put(P + "conv.lora_A.weight", new long[] {2, 3, 3});
                t.put(P + "conv.lora_B.weight", new long[] {4, 2, 1});
                magnitude(dora, t, "conv", 1, 4, 1);
                return new Variant(() -> KindGraphs.conv1d(DataType.FLOAT, new Adam(2e-2), 33),
                        b.targetModules("conv").build(), Convolution1DLayer.class,
                        KindGraphs.sequences(DataType.FLOAT, 34, 8), t);
            case "embedseq":
            case "embed":
                boolean seq = name.startsWith("embedseq");
                t.put(P + "embed.lora_embedding_A", new long[] {2, KindGraphs.VOCAB});
                t.put(P + "embed.lora_embedding_B", new long[] {4, 2});
                magnitude(dora, t, "embed", 4);
                return new Variant(() -> KindGraphs.embedding(DataType.FLOAT, new Adam(2e-2), 35, seq),
                        b.targetModules("embed").build(), seq ? EmbeddingSequenceLayer.class : EmbeddingLayer.class,
                        KindGraphs.tokens(DataType.FLOAT, 36, 8, seq), t);
            default:
                t.put(P + "dense1.lora_A.weight", new long[] {2, 16});
                t.put(P + "dense1.lora_B.weight", new long[] {16, 2});
                magnitude(dora, t, "dense1", 16);
                return new Variant(() -> TinyGraphs.mlp(DataType.FLOAT, new Adam(2e-2), 37, 8, 16, 4),
                        b.dropout(0.1).targetModules("dense1").build(), DenseLayer.class,
                        TinyGraphs.classification(DataType.FLOAT, 38, 16, 8, 4), t);
        }
    }

    private static void magnitude(boolean dora, Map<String, long[]> t, String layer, long... shape) {
        if (dora) {
            t.put(P + layer + ".lora_magnitude_vector", shape);
        }
    }

    private static double relDiff(INDArray expected, INDArray actual) {
        double d = expected.castTo(DataType.DOUBLE).sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
        return d / Math.max(1e-12, expected.amaxNumber().doubleValue());
    }

    private static void train(PeftModel peft, DataSet ds, int steps) {
        for (int i = 0; i < steps; i++) {
            peft.graph().fit(ds);
        }
    }

    /** The single adapted layer's name (an output layer's vertex is {@code <name>-dense}). */
    private static String target(PeftModel peft) {
        return peft.adaptedLayers().keySet().iterator().next();
    }

    @ParameterizedTest
    @ValueSource(strings = {"conv2d-lora", "conv2d-dora", "conv1d-lora", "conv1d-dora", "embedseq-lora", "embed-dora",
        "dense-dora"})
    void freshAdapterReproducesTheBaseAndFitTrainsOnlyTheAdapter(String name) {
        Variant v = variant(name);
        ComputationGraph base = v.base().get();
        INDArray baseParams = base.params().dup();
        INDArray x = v.data().getFeatures();
        PeftModel peft = Peft.wrap(base, v.config());
        assertTrue(relDiff(base.outputSingle(x), peft.graph().outputSingle(x)) <= 1e-6, name + ": identity at init");

        String layer = target(peft);
        long expected = 0;
        for (long[] s : v.tensors().values()) {
            long n = 1;
            for (long d : s) {
                n *= d;
            }
            expected += n;
        }
        assertEquals(expected, peft.graph().numParams(), name + ": the adapter's parameters are the only ones");
        FrozenBaseLayer frozen = peft.adaptedLayers().get(layer);
        INDArray frozenBefore = frozen.frozenWeight().dup();
        Map<String, INDArray> before = new HashMap<>();
        peft.graph().getLayer(layer).paramTable().forEach((k, p) -> before.put(k, p.dup()));

        train(peft, v.data(), 3);

        assertEquals(frozenBefore, frozen.frozenWeight(), name + ": frozen weight bit for bit");
        assertEquals(baseParams, base.params(), name + ": the base model is untouched");
        peft.graph().getLayer(layer).paramTable().forEach((k, p) ->
                assertNotEquals(before.get(k), p, name + ": " + k + " trained"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"conv2d-lora", "conv2d-dora", "conv1d-dora", "embedseq-lora", "embed-dora", "dense-dora"})
    void mergeGivesTheUnmergedOutputsAndUnmergeRestoresExactly(String name) {
        Variant v = variant(name);
        PeftModel peft = Peft.wrap(v.base().get(), v.config());
        train(peft, v.data(), 3);
        FrozenBaseLayer layer = peft.adaptedLayers().get(target(peft));
        INDArray weight = layer.effectiveWeight().dup();
        INDArray x = v.data().getFeatures();
        INDArray unmerged = peft.graph().outputSingle(x);

        peft.merge();
        assertNotEquals(weight, layer.effectiveWeight(), name + ": merged");
        assertTrue(relDiff(unmerged, peft.graph().outputSingle(x)) <= 1e-5, name + ": merged output");
        peft.unmerge();
        assertFalse(layer.isMerged());
        assertEquals(weight, layer.effectiveWeight(), name + ": unmerge restores the frozen weight");
        assertEquals(unmerged, peft.graph().outputSingle(x), name + ": unmerged output");

        ComputationGraph plain = peft.mergeAndUnload();
        assertEquals(v.stock(), plain.getLayer(layer.baseLayerName()).conf().getLayer().getClass());
        assertTrue(relDiff(unmerged, plain.outputSingle(x)) <= 1e-5, name + ": mergeAndUnload output");
    }

    @ParameterizedTest
    @ValueSource(strings = {"conv2d-dora", "conv1d-lora", "conv1d-dora", "embedseq-dora", "embed-lora", "dense-dora"})
    void savedAdapterLoadsBackBitExactWithPeftNamesAndShapes(String name, @TempDir Path dir) throws Exception {
        Variant v = variant(name);
        ComputationGraph base = v.base().get();
        PeftModel peft = Peft.wrap(base, v.config());
        train(peft, v.data(), 2);
        peft.saveAdapter(dir);

        Map<String, SafeTensor> file = Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors();
        assertEquals(v.tensors().keySet(), file.keySet(), name + ": tensor names");
        v.tensors().forEach((k, s) -> assertArrayEquals(s, file.get(k).shape(), name + ": shape of " + k));
        String json = Files.readString(dir.resolve("adapter_config.json"));
        assertTrue(json.contains("\"use_dora\": " + name.endsWith("dora")), json);
        assertTrue(json.contains("\"peft_type\": \"LORA\""), json);

        PeftModel loaded = Peft.load(base, dir);
        assertEquals(peft.graph().params(), loaded.graph().params(), name + ": parameters bit for bit");
        INDArray x = v.data().getFeatures();
        assertEquals(peft.graph().outputSingle(x), loaded.graph().outputSingle(x), name + ": outputs");
        Path again = dir.resolve("again");
        loaded.saveAdapter(again);
        assertArrayEquals(Files.readAllBytes(dir.resolve("adapter_model.safetensors")),
                Files.readAllBytes(again.resolve("adapter_model.safetensors")), name + ": the same bytes");
    }

    @ParameterizedTest
    @ValueSource(strings = {"conv2d-dora", "conv1d-lora", "embedseq-dora"})
    void wrappedGraphSurvivesCloneAndModelSerializer(String name) throws Exception {
        Variant v = variant(name);
        PeftModel peft = Peft.wrap(v.base().get(), v.config());
        train(peft, v.data(), 2);
        INDArray x = v.data().getFeatures();
        INDArray expected = peft.graph().outputSingle(x);
        assertEquals(expected, peft.graph().clone().outputSingle(x), name + ": clone()");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ModelSerializer.writeModel(peft.graph(), out, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(new ByteArrayInputStream(out.toByteArray()),
                true);
        assertEquals(expected, restored.outputSingle(x), name + ": ModelSerializer");
        Layer l = restored.getLayer(target(peft));
        assertEquals(peft.graph().getLayer(target(peft)).conf().getLayer().getClass(), l.conf().getLayer().getClass());
    }
}
