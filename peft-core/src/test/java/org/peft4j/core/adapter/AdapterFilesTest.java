package org.peft4j.core.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.AdapterDirs;
import org.peft4j.core.testing.TinyDecoders;

/** Bottleneck adapters saved as adapter files (peft_type BOTTLENECK) and loaded back. */
class AdapterFilesTest {

    private static final int VOCAB = 11;

    /** The same weights on every call (fixed seed): a "fresh copy" of one base model. */
    private static ComputationGraph base() {
        return TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 7, VOCAB, 8, 1, 16);
    }

    private static PeftModel trained(AdapterConfig config) {
        PeftModel peft = Peft.wrap(base(), config);
        DataSet train = TinyDecoders.domain(DataType.FLOAT, 3, 4, 6, VOCAB, 2, 0.1);
        for (int i = 0; i < 4; i++) {
            peft.graph().fit(train);
        }
        return peft;
    }

    private static INDArray tokens() {
        return TinyDecoders.domain(DataType.FLOAT, 5, 4, 6, VOCAB, 2, 0.1).getFeatures();
    }

    @Test
    void savedAdaptersReloadOntoAFreshBaseWithIdenticalOutputs(@TempDir Path dir) throws Exception {
        AdapterConfig config = AdapterConfig.builder().houlsby().reductionFactor(4).nonlinearity(Activation.TANH).build();
        PeftModel peft = trained(config);
        INDArray x = tokens();
        INDArray expected = peft.output(x)[0];
        var off = peft.disableAdapter();
        try (off) {
            assertTrue(expected.sub(peft.output(x)[0]).amaxNumber().doubleValue() > 1e-4,
                    "training moved the adapters away from the identity");
        }
        peft.saveAdapter(dir);

        PeftModel back = Peft.load(base(), dir);
        assertEquals(config, back.config());
        assertEquals(expected, back.output(x)[0]);

        PeftModel other = Peft.wrap(base(), AdapterConfig.builder().pfeiffer().bottleneckSize(3).build());
        other.loadAdapter(dir, "houlsby");
        other.setAdapter("houlsby");
        assertEquals(expected, other.output(x)[0]);
    }

    @Test
    void filesHoldTheConfigKeysAndPyTorchOrientedTensors(@TempDir Path dir) throws Exception {
        PeftModel peft = trained(AdapterConfig.builder().houlsby().reductionFactor(4).modulesToSave("final.ln").build());
        peft.saveAdapter(dir);

        Map<String, Object> json = PeftJson.parseObject(Files.readAllBytes(dir.resolve("adapter_config.json")), "config");
        assertEquals("BOTTLENECK", json.get("peft_type"));
        assertEquals("HOULSBY", json.get("architecture"));
        assertEquals("block\\d+\\.(attn\\.o|mlp\\.down)", json.get("insert_after"));
        assertEquals(4, json.get("reduction_factor"));
        assertTrue(json.containsKey("bottleneck_size"));
        assertNull(json.get("bottleneck_size"));
        assertEquals("relu", json.get("non_linearity"));
        assertEquals(List.of("final.ln"), json.get("modules_to_save"));
        assertTrue(String.valueOf(((Map<?, ?>) json.get("peft4j")).get("note")).contains("peft4j extension"));

        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        Map<String, long[]> shapes = new LinkedHashMap<>();
        f.tensors().forEach((k, v) -> shapes.put(k, v.shape()));
        String a = "base_model.model.block0.attn.o.";
        String m = "base_model.model.block0.mlp.down.";
        assertEquals(Set.of(a + "adapter_down.weight", a + "adapter_down.bias", a + "adapter_up.weight",
                a + "adapter_up.bias", m + "adapter_down.weight", m + "adapter_down.bias", m + "adapter_up.weight",
                m + "adapter_up.bias", "base_model.model.final.ln.g", "base_model.model.final.ln.b"),
                shapes.keySet());
        assertArrayEquals(new long[] {2, 8}, shapes.get(a + "adapter_down.weight"), "[m, d] = Wdᵀ");
        assertArrayEquals(new long[] {2}, shapes.get(a + "adapter_down.bias"));
        assertArrayEquals(new long[] {8, 2}, shapes.get(a + "adapter_up.weight"), "[d, m] = Wuᵀ");
        assertArrayEquals(new long[] {8}, shapes.get(a + "adapter_up.bias"));

        INDArray downW = peft.graph().getLayer("block0.attn.o.adapter").getParam(BottleneckAdapterLayer.DOWN_W);
        assertEquals(downW.transpose(), f.get(a + "adapter_down.weight").toINDArray(DataType.FLOAT));
        INDArray upW = peft.graph().getLayer("block0.mlp.down.adapter").getParam(BottleneckAdapterLayer.UP_W);
        assertEquals(upW.transpose(), f.get(m + "adapter_up.weight").toINDArray(DataType.FLOAT));
    }

    @Test
    void aTensorOfTheWrongShapeIsRefusedAndLeavesTheModelAlone(@TempDir Path dir) throws Exception {
        PeftModel peft = trained(AdapterConfig.builder().houlsby().bottleneckSize(2).build());
        peft.saveAdapter(dir);
        Path weights = dir.resolve("adapter_model.safetensors");
        Map<String, SafeTensor> tensors = new LinkedHashMap<>(Safetensors.read(weights).tensors());
        String name = "base_model.model.block0.mlp.down.adapter_up.weight";
        tensors.put(name, SafeTensor.ofFloats(new long[] {8, 3}, new float[24]));
        AdapterDirs.replaceWeights(dir, tensors, Map.of("format", "pt"));

        ComputationGraph base = base();
        INDArray baseParams = base.params().dup();
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base, dir));
        assertTrue(e.getMessage().contains(name + " has shape [8, 3], expected [8, 2]"), e.getMessage());
        assertEquals(baseParams, base.params(), "the base model is untouched");

        PeftModel target = Peft.wrap(base(), AdapterConfig.builder().houlsby().bottleneckSize(2).build());
        INDArray before = target.graph().params().dup();
        assertThrows(IncompatibleAdapterException.class, () -> target.loadAdapter(dir, "bad"));
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), target.adapterNames());
        assertEquals(before, target.graph().params());
    }

    /**
     * A config whose bottleneck size was edited to a huge value is refused before the wrapped
     * graph is allocated: without the check, loading would first try to allocate 6.8·10^10 floats.
     * Two adapters of bottleneck m over d = 8 hold 2·(8m + m + 8m + 8) parameters.
     */
    @Test
    void aConfigFarLargerThanItsWeightsIsRefusedBeforeAllocating(@TempDir Path dir) throws Exception {
        trained(AdapterConfig.builder().houlsby().bottleneckSize(2).build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config);
        assertTrue(json.contains("\"bottleneck_size\": 2,"), json);
        Files.writeString(config, json.replace("\"bottleneck_size\": 2,", "\"bottleneck_size\": 2000000000,"));

        ComputationGraph base = base();
        long baseParams = base.numParams();
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        assertEquals(config + " describes a wrapped graph of " + 2 * (17 * 2_000_000_000L + 8)
                + " parameters, more than the " + 2 * (17 * 2 + 8) + " values in adapter_model.safetensors plus "
                + "the base model's " + baseParams + ": the config does not match its weights (was a size such as r or "
                + "bottleneck_size edited?); the wrapped graph was not allocated", e.getMessage());

        PeftModel target = Peft.wrap(base(), AdapterConfig.builder().houlsby().bottleneckSize(2).build());
        assertThrows(AdapterFormatException.class, () -> target.loadAdapter(dir, "huge"));
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), target.adapterNames());
    }

    @Test
    void anAdapterAfterALayerTheBaseLacksIsRefused(@TempDir Path dir) throws Exception {
        trained(AdapterConfig.builder().insertAfter("block0.mlp.down").bottleneckSize(2).build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"block0.mlp.down\"", "\"block7.mlp.down\""));
        ComputationGraph base = base();
        INDArray baseParams = base.params().dup();
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class,
                () -> Peft.load(base, dir, true));
        assertEquals(baseParams, base.params(), "the base model is untouched");
        assertTrue(e.getMessage().contains("no layer named \"block7.mlp.down\""), e.getMessage());
    }
}
