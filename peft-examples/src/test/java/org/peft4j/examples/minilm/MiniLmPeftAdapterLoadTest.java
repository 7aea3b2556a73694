package org.peft4j.examples.minilm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.lora.LoraConfig;

/**
 * The LoRA adapter for all-MiniLM-L6-v2 in Hugging Face PEFT's names (written by an independent numpy
 * script, {@code minilm-peft-adapter/}) loads onto the MiniLM imported from ONNX through the name map
 * of {@code BertOnnxImport}: after {@code mergeAndUnload} every query and value weight is the imported
 * weight plus {@code (alpha / r)·B·A} computed here with plain loops from the file, every other weight is
 * the imported one, and saving in PEFT's names gives back the file's tensors under the file's names with
 * a config PEFT 0.13 accepts.
 */
class MiniLmPeftAdapterLoadTest {

    private static ComputationGraph base;
    private static ModuleNames names;

    @BeforeAll
    static void importMiniLm(@TempDir Path cache) throws Exception {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        base = new MiniLm(cache).load();
        names = MiniLm.moduleNames(base);
    }

    private static Path fixture() throws Exception {
        return MiniLmPeftAdapterFixtureTest.fixture("adapter_config.json").getParent();
    }

    @Test
    void theNameMapCoversEveryParameterOfTheImportedEncoder() {
        Set<String> layersWithParams = new TreeSet<>();
        for (org.deeplearning4j.nn.api.Layer l : base.getLayers()) {
            if (l.numParams() > 0) {
                layersWithParams.add(l.conf().getLayer().getLayerName());
            }
        }
        layersWithParams.remove("embed.pos");
        assertEquals(layersWithParams, new TreeSet<>(names.layersByPath().values()),
                "every layer but the fused position table has a module path");
        assertEquals("block3.attn.q", names.layerOf("encoder.layer.3.attention.self.query").orElseThrow());
        assertEquals("block5.mlp.down", names.layerOf("encoder.layer.5.output.dense").orElseThrow());
        assertEquals("encoder.layer.0.attention.output.LayerNorm", names.pathOf("block0.ln1").orElseThrow());
        assertEquals(Set.of("embeddings.position_embeddings", "embeddings.token_type_embeddings", "pooler.dense"),
                names.unmapped());
    }

    @Test
    void mergedQueryAndValueWeightsAreTheBasePlusTheFilesUpdate() throws Exception {
        PeftModel peft = Peft.load(base, fixture(), names);
        LoraConfig config = assertInstanceOf(LoraConfig.class, peft.config());
        assertEquals(4, config.rank());
        assertEquals(8.0, config.alpha());
        Set<String> expectedTargets = new TreeSet<>();
        for (int i = 0; i < MiniLmPeftAdapterFixtureTest.LAYERS; i++) {
            expectedTargets.add("block" + i + ".attn.q");
            expectedTargets.add("block" + i + ".attn.v");
        }
        assertEquals(expectedTargets, new TreeSet<>(peft.adaptedLayers().keySet()));

        ComputationGraph merged = peft.mergeAndUnload();
        SafetensorsFile file = Safetensors.read(fixture().resolve("adapter_model.safetensors"));
        int d = MiniLmPeftAdapterFixtureTest.D;
        for (int i = 0; i < MiniLmPeftAdapterFixtureTest.LAYERS; i++) {
            for (String[] target : new String[][] {{"query", "q"}, {"value", "v"}}) {
                String layer = "block" + i + ".attn." + target[1];
                double[][] delta = MiniLmPeftAdapterFixtureTest.delta(file,
                        "encoder.layer." + i + ".attention.self." + target[0], 8);
                // DL4J's W is [in, out]: W[in][out] = PyTorch weight[out][in]
                float[] w = base.getLayer(layer).getParam("W").dup('c').data().asFloat();
                float[] m = merged.getLayer(layer).getParam("W").dup('c').data().asFloat();
                double worst = 0;
                for (int in = 0; in < d; in++) {
                    for (int out = 0; out < d; out++) {
                        double expected = w[in * d + out] + delta[out][in];
                        worst = Math.max(worst, Math.abs(m[in * d + out] - expected));
                    }
                }
                assertTrue(worst < 2e-6, layer + ": merged weight differs from W + (alpha/r)·B·A by " + worst);
                assertEquals(base.getLayer(layer).getParam("b"), merged.getLayer(layer).getParam("b"), layer + " bias");
            }
            for (String other : List.of("attn.k", "attn.o", "mlp.up", "mlp.down", "ln1", "ln2")) {
                String layer = "block" + i + "." + other;
                assertEquals(base.getLayer(layer).params(), merged.getLayer(layer).params(), layer + " is not adapted");
            }
        }
    }

    @Test
    void savingInPeftNamesGivesTheFilesTensorsAndKeysBack(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.load(base, fixture(), names);
        peft.saveAdapter(dir, names);

        SafetensorsFile original = Safetensors.read(fixture().resolve("adapter_model.safetensors"));
        SafetensorsFile saved = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(new TreeSet<>(original.tensors().keySet()), new TreeSet<>(saved.tensors().keySet()));
        for (Map.Entry<String, SafeTensor> e : original.tensors().entrySet()) {
            SafeTensor s = saved.get(e.getKey());
            assertArrayEquals(e.getValue().shape(), s.shape(), e.getKey());
            assertArrayEquals(e.getValue().toFloats(), s.toFloats(), e.getKey() + " values");
        }

        Map<String, Object> config = PeftJson.parseObject(Files.readAllBytes(dir.resolve("adapter_config.json")),
                "adapter_config.json");
        assertEquals(List.of("query", "value"), config.get("target_modules"));
        assertEquals(4, config.get("r"));
        assertEquals(8.0, ((Number) config.get("lora_alpha")).doubleValue());
        assertEquals("LORA", config.get("peft_type"));
        Set<String> peft013 = new TreeSet<>();
        for (String line : Files.readAllLines(Path.of("..", "peft-lora", "src", "test", "resources",
                "peft-0.13-lora-config-fields.txt"), StandardCharsets.UTF_8)) {
            if (!line.startsWith("#") && !line.isBlank()) {
                peft013.add(line.split("\t")[0]);
            }
        }
        Set<String> extra = new TreeSet<>(config.keySet());
        extra.removeAll(peft013);
        assertEquals(Set.of(), extra, "keys PEFT 0.13's LoraConfig does not accept");

        INDArray x = Nd4j.createFromArray(new float[][] {{101, 7592, 2088, 2003, 102}});
        INDArray expected = peft.output(x)[0];
        assertEquals(expected, Peft.load(base, dir, names).output(x)[0], "the saved files load back");
    }

    @Test
    void withoutTheNameMapTheFileIsRefusedWithTheHint() throws Exception {
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class,
                () -> Peft.load(base, fixture()));
        assertTrue(e.getMessage().contains("no layer matched targetModules [query, value]"), e.getMessage());
        assertTrue(e.getMessage().endsWith("(no layer of the graph holds the file's tensors: if the adapter was saved "
                + "for a PyTorch model, whose module paths differ from the layer names, load it with the graph's "
                + "ModuleNames, Peft.load(base, dir, names))"), e.getMessage());
    }
}
