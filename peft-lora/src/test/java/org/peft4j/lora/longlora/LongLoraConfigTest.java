package org.peft4j.lora.longlora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.AttentionCore;
import org.peft4j.core.blocks.PositionInterpolation;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyDecoders;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.LoraDenseLayer;

/**
 * LongLoRA: LoRA plus trainable embeddings and norms, S²-Attn while training, full attention at
 * inference and after merging, LoRA files in PEFT's layout.
 */
class LongLoraConfigTest {

    private static final String QKVO = "block\\d+\\.attn\\.(q|k|v|o)";

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static LoraConfig lora() {
        return LoraConfig.builder().rank(2).alpha(4).targetModulesRegex(QKVO).build();
    }

    private static ComputationGraph base(DataType dt, org.nd4j.linalg.learning.config.IUpdater u, int maxLength) {
        return TinyDecoders.decoder(dt, u, 5, 7, 8, 1, maxLength);
    }

    private static Map<String, Integer> groupSizes(ComputationGraph g) {
        Map<String, Integer> m = new java.util.TreeMap<>();
        for (Map.Entry<String, GraphVertex> e : g.getConfiguration().getVertices().entrySet()) {
            if (e.getValue() instanceof AttentionCore c) {
                m.put(e.getKey(), c.getShiftedSparseGroupSize());
            }
        }
        return m;
    }

    @Test
    void wrapsLoraTrainsEmbeddingsAndNormsAndSwitchesAttentionToS2WhileTraining() {
        ComputationGraph base = base(DataType.DOUBLE, new NoOp(), 16);
        LongLoraConfig cfg = LongLoraConfig.builder().lora(lora()).groupSize(4).trainEmbeddingsAndNormsOf(base).build();
        assertEquals(List.of("embed.tokens", "embed.pos", "block0.ln1", "block0.ln2", "final.ln"), cfg.modulesToSave());
        assertEquals("LORA", cfg.peftType());
        PeftModel m = Peft.wrap(base, cfg);
        assertEquals(Map.of("block0.attn.core", 4), groupSizes(m.graph()));
        assertEquals(Map.of("block0.attn.core", 0), groupSizes(base), "the base keeps full attention");
        assertEquals(Set.of("block0.attn.q", "block0.attn.k", "block0.attn.v", "block0.attn.o"), m.adaptedLayers().keySet());
        long loraParams = 4L * (8 * 2 + 2 * 8);
        long saved = 7 * 8 + 16 * 8 + 3 * 2 * 8;
        assertEquals(loraParams + saved, m.trainableParameters());

        DataSet ds = TinyDecoders.domain(DataType.DOUBLE, 6, 2, 12, 7, 1, 0.1);
        INDArray inference = base.outputSingle(false, ds.getFeatures());
        assertEquals(inference, m.graph().outputSingle(false, ds.getFeatures()), "identity at init, full attention");
        assertNotEquals(inference, m.graph().outputSingle(true, ds.getFeatures()), "S²-Attn while training (T > G)");
    }

    @Test
    void wrappedDecoderMatchesFiniteDifferences() {
        ComputationGraph base = TinyDecoders.forGradientCheck(4);
        PeftModel m = Peft.wrap(base, LongLoraConfig.builder().lora(lora()).groupSize(2).trainEmbeddingsAndNormsOf(base)
                .build());
        Nd4j.getRandom().setSeed(8);
        m.adaptedLayers().keySet().forEach(n -> {
            INDArray b = m.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B);
            b.assign(Nd4j.randn(DataType.DOUBLE, b.shape()).muli(0.5));
        });
        DataSet ds = TinyDecoders.domain(DataType.DOUBLE, 9, 2, 5, 5, 2, 0.2);
        assertTrue(GradientChecks.passes(m.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void trainsOnlyLoraEmbeddingsAndNormsThenSavesALoraFileThatLoadsWithFullAttention(@TempDir Path dir)
            throws Exception {
        ComputationGraph shortBase = base(DataType.FLOAT, new Adam(1e-2), 8);
        ComputationGraph base = PositionInterpolation.extend(shortBase, 8, 16);
        LongLoraConfig cfg = LongLoraConfig.builder().lora(lora()).groupSize(4).trainEmbeddingsAndNormsOf(base).build();
        PeftModel m = Peft.wrap(base, cfg);
        INDArray frozenBefore = m.reconstructBase().getLayer("block0.mlp.up").params().dup();
        INDArray posBefore = m.graph().getLayer("embed.pos").params().dup();
        DataSet ds = TinyDecoders.domain(DataType.FLOAT, 10, 4, 16, 7, 3, 0.1);
        for (int i = 0; i < 5; i++) {
            m.graph().fit(ds);
        }
        assertEquals(frozenBefore, m.reconstructBase().getLayer("block0.mlp.up").params(), "frozen weights unchanged");
        assertNotEquals(posBefore, m.graph().getLayer("embed.pos").params(), "the positional table trains");

        m.saveAdapter(dir);
        String json = Files.readString(dir.resolve("adapter_config.json"));
        assertTrue(json.contains("\"peft_type\": \"LORA\""), json);
        String records = Files.readString(dir.resolve("peft4j.json"));
        assertTrue(records.contains("\"s2_attn_group_size\": 4"), records);
        TreeSet<String> names = new TreeSet<>(Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors().keySet());
        assertTrue(names.contains("base_model.model.embed.pos.weight") && names.contains("base_model.model.block0.ln1.weight")
                && names.contains("base_model.model.block0.attn.k.lora_A.weight"), names.toString());

        INDArray x = ds.getFeatures();
        INDArray expected = m.graph().outputSingle(false, x);
        PeftModel plain = Peft.load(base, dir);
        assertTrue(plain.config() instanceof LoraConfig, "a LoRA file: " + plain.config());
        assertEquals(Map.of("block0.attn.core", 0), groupSizes(plain.graph()));
        assertTrue(expected.equalsWithEps(plain.graph().outputSingle(false, x), 1e-6), "reloaded for inference");
        PeftModel resumed = Peft.load(base, dir, c -> LongLoraConfig.of((LoraConfig) c, 4), false);
        assertEquals(cfg, resumed.config(), "the LoRA file and the group size give back the config");
        assertEquals(Map.of("block0.attn.core", 4), groupSizes(resumed.graph()));
        assertTrue(expected.equalsWithEps(resumed.graph().outputSingle(false, x), 1e-6), "reloaded to train on");

        ComputationGraph merged = m.mergeAndUnload();
        assertEquals(Map.of("block0.attn.core", 0), groupSizes(merged));
        assertTrue(expected.equalsWithEps(merged.outputSingle(false, x), 1e-5), "merged: full attention, same outputs");
    }

    @Test
    void badSettingsAreRefusedWithTheReason() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LongLoraConfig.builder().groupSize(3));
        assertTrue(e.getMessage().contains("even number of at least 2"), e.getMessage());
        IllegalStateException s = assertThrows(IllegalStateException.class,
                () -> LongLoraConfig.builder().groupSize(4).build());
        assertTrue(s.getMessage().startsWith("lora must be set"), s.getMessage());
        ComputationGraph oddHeads = Transformers.decoder().vocabSize(5).maxLength(8).dModel(6).heads(3).layers(1).build();
        e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(oddHeads, LongLoraConfig.of(lora(), 4)));
        assertTrue(e.getMessage().contains("attention core \"block0.attn.core\"") && e.getMessage().contains("heads must be "
                + "even"), e.getMessage());
        ComputationGraph noCore = new ComputationGraph(new org.deeplearning4j.nn.conf.NeuralNetConfiguration.Builder().graphBuilder()
                        .addInputs("in").addLayer("q", new org.deeplearning4j.nn.conf.layers.OutputLayer.Builder()
                                .nIn(3).nOut(2).build(), "in").setOutputs("q").build());
        noCore.init();
        e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(noCore, LongLoraConfig.of(
                LoraConfig.builder().targetModules("q").build(), 4)));
        assertTrue(e.getMessage().contains("needs peft4j's AttentionCore vertices"), e.getMessage());
        assertEquals(0, Peft.wrap(noCore, LongLoraConfig.of(LoraConfig.builder().targetModules("q").build(), 0)).graph()
                .getConfiguration().getVertices().values().stream().filter(v -> v instanceof AttentionCore).count(),
                "groupSize 0: plain LoRA");
    }
}
