package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.LoraDenseLayer;

/** QLoRA: LoRA over a 4-bit NF4 base (issue #4). */
class QLoraTest {

    private static final QuantSpec NF4_DQ = QuantSpec.nf4().withDoubleQuant(true).withBlockSize(64);

    private static LoraConfig lora() {
        return LoraConfig.builder().rank(4).alpha(8).targetModules(TargetModules.ALL_LINEAR).build();
    }

    private static double maxAbsDiff(INDArray a, INDArray b) {
        return a.castTo(DataType.DOUBLE).sub(b.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
    }

    @Test
    void frozenWeightsAreHeldInFourBitsWithDoubleQuantization() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 1, 256, 256, 16);
        PeftModel peft = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ).quantizeFrozenLayers(true));
        long quantizedBytes = 0;
        long floatBytes = 0;
        long heldBytes = 0;
        for (Layer l : peft.graph().getLayers()) {
            Object c = l.conf().getLayer();
            QuantizedTensor q = c instanceof QLoraDenseLayer ? ((QLoraDenseLayer) c).quantizedWeight()
                    : c instanceof QuantizedDenseLayer ? ((QuantizedDenseLayer) c).quantizedWeight() : null;
            if (q == null) {
                continue;
            }
            floatBytes += 4L * q.length();
            quantizedBytes += q.memoryBytes();
            // what the tensor actually holds: packed codes, 8-bit block scales, nested scales, offset
            heldBytes += q.packedCodes().length + q.absmaxCodes().length + 4L * q.nestedAbsmax().length + 4;
            assertEquals(((FrozenDenseLayer) c).frozenBytes() - biasBytes((FrozenDenseLayer) c), q.memoryBytes());
        }
        assertEquals(heldBytes, quantizedBytes);
        assertEquals(4L * (256 * 256 * 3 + 256 * 16), floatBytes, "all four weight matrices are quantized");
        double ratio = (double) quantizedBytes / floatBytes;
        assertTrue(ratio <= 0.14, "4-bit footprint ratio " + ratio);
    }

    private static long biasBytes(FrozenDenseLayer f) {
        return f.frozenBias() == null ? 0 : 4L * f.frozenBias().length();
    }

    /** The base with each dense weight replaced by its NF4-dequantized value, as a float layer would hold it. */
    private static ComputationGraph dequantizedBase(ComputationGraph base, PeftModel qlora) {
        ComputationGraph copy = base.clone();
        for (Map.Entry<String, FrozenBaseLayer> e : qlora.adaptedLayers().entrySet()) {
            String name = e.getValue().baseLayerName();
            copy.getLayer(name).getParam("W").assign(e.getValue().frozenWeight().castTo(copy.params().dataType()));
        }
        return copy;
    }

    @Test
    void qloraLayerMatchesAFloatLoraLayerHoldingTheDequantizedWeightsAndPassesGradientChecks() {
        GradientChecks.useDoublePrecision();
        try {
            ComputationGraph base = TinyGraphs.mlp(DataType.DOUBLE, new NoOp(), 3, 5, 6, 3);
            LoraConfig cfg = LoraConfig.builder().rank(2).alpha(4).targetModules("dense1", "dense2", "output")
                    .modulesToSave("dense0").build();
            PeftModel q = Peft.wrap(base, QLoraConfig.of(cfg, QuantSpec.nf4().withBlockSize(32)));
            PeftModel f = Peft.wrap(dequantizedBase(base, q), cfg);
            Nd4j.getRandom().setSeed(5);
            for (String n : q.adaptedLayers().keySet()) {
                INDArray b = Nd4j.randn(DataType.DOUBLE, q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B).shape());
                q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B).assign(b);
                f.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B).assign(b);
                f.graph().getLayer(n).getParam(LoraDenseLayer.LORA_A).assign(q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_A));
            }
            DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3);
            assertTrue(maxAbsDiff(q.graph().outputSingle(ds.getFeatures()), f.graph().outputSingle(ds.getFeatures())) < 1e-12);
            q.graph().setInput(0, ds.getFeatures());
            q.graph().setLabel(0, ds.getLabels());
            q.graph().computeGradientAndScore();
            f.graph().setInput(0, ds.getFeatures());
            f.graph().setLabel(0, ds.getLabels());
            f.graph().computeGradientAndScore();
            assertTrue(maxAbsDiff(q.graph().getFlattenedGradients(), f.graph().getFlattenedGradients()) < 1e-12,
                    "the quantization is the only difference");
            assertTrue(GradientChecks.passes(q.graph(), ds.getFeatures(), ds.getLabels()));
        } finally {
            Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        }
    }

    /**
     * DoRA over a 4-bit base: PEFT supports it (with bitsandbytes it dequantizes the weight for the
     * norm); here the norm's product {@code Aᵀ·W} runs on the 4-bit kernel and {@code ‖W_j‖²} comes
     * from one dequantization, so the layer must compute exactly what float DoRA computes on the
     * dequantized weights: outputs and every gradient (DoRA's are gradient-checked in peft-lora); the
     * merged model (whose weights come from the float32 dequantized base) gives the same outputs to
     * float tolerance.
     */
    @Test
    void doraOverAFourBitBaseMatchesFloatDoraOnTheDequantizedWeights() {
        GradientChecks.useDoublePrecision();
        try {
            ComputationGraph base = TinyGraphs.mlp(DataType.DOUBLE, new NoOp(), 3, 5, 6, 3);
            LoraConfig cfg = LoraConfig.builder().rank(2).alpha(4).useDora(true).targetModules("dense1", "output")
                    .modulesToSave("dense0").build();
            PeftModel q = Peft.wrap(base, QLoraConfig.of(cfg, QuantSpec.nf4().withBlockSize(32)));
            PeftModel f = Peft.wrap(dequantizedBase(base, q), cfg);
            Nd4j.getRandom().setSeed(6);
            for (String n : q.adaptedLayers().keySet()) {
                Map<String, INDArray> qp = q.graph().getLayer(n).paramTable();
                assertEquals(qp.get(LoraDenseLayer.LORA_M), f.graph().getLayer(n).getParam(LoraDenseLayer.LORA_M),
                        "both start from the norms of the dequantized weight");
                qp.get(LoraDenseLayer.LORA_B).assign(Nd4j.randn(DataType.DOUBLE, qp.get(LoraDenseLayer.LORA_B).shape()));
                qp.get(LoraDenseLayer.LORA_M).muli(1.3);
                qp.forEach((k, v) -> f.graph().getLayer(n).getParam(k).assign(v));
            }
            DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3);
            assertTrue(maxAbsDiff(q.graph().outputSingle(ds.getFeatures()), f.graph().outputSingle(ds.getFeatures())) < 1e-12);
            for (PeftModel m : new PeftModel[] {q, f}) {
                m.graph().setInput(0, ds.getFeatures());
                m.graph().setLabel(0, ds.getLabels());
                m.graph().computeGradientAndScore();
            }
            assertTrue(maxAbsDiff(q.graph().getFlattenedGradients(), f.graph().getFlattenedGradients()) < 1e-12,
                    "the quantization is the only difference");
            INDArray expected = f.graph().outputSingle(ds.getFeatures());
            double rel = maxAbsDiff(q.mergeAndUnload().outputSingle(ds.getFeatures()), expected)
                    / expected.amaxNumber().doubleValue();
            assertTrue(rel < 1e-5, "merged over the dequantized base: relative difference " + rel);
        } finally {
            Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        }
    }

    @Test
    void anEmbeddingTargetIsRefusedOverAFourBitBase() {
        ComputationGraph decoder = org.peft4j.core.testing.TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 3, 7, 4,
                1, 8);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> Peft.wrap(decoder, QLoraConfig.of(LoraConfig.builder().targetModules("embed.tokens").build(),
                        NF4_DQ)));
        assertTrue(e.getMessage().contains("\"embed.tokens\" is a EmbeddingSequenceLayer (kind EMBEDDING), and LORA "
                + "adapts DENSE"), e.getMessage());
    }

    /** Batch 1 in float runs the heap GEMV path (no ND4J call) for forward and input gradient. */
    @Test
    void singleRowsInFloatAgreeWithTheFloatLayerForwardAndBackward() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 6, 128, 64, 5);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ));
        PeftModel f = Peft.wrap(dequantizedBase(base, q), lora());
        Nd4j.getRandom().setSeed(8);
        for (String n : q.adaptedLayers().keySet()) {
            INDArray b = Nd4j.randn(DataType.FLOAT, q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B).shape()).muli(0.1);
            q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B).assign(b);
            f.graph().getLayer(n).getParam(LoraDenseLayer.LORA_B).assign(b);
            f.graph().getLayer(n).getParam(LoraDenseLayer.LORA_A).assign(q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_A));
        }
        DataSet one = TinyGraphs.classification(DataType.FLOAT, 10, 1, 128, 5);
        assertTrue(maxAbsDiff(q.graph().outputSingle(one.getFeatures()), f.graph().outputSingle(one.getFeatures())) < 1e-5);
        for (PeftModel m : new PeftModel[] {q, f}) {
            m.graph().setInput(0, one.getFeatures());
            m.graph().setLabel(0, one.getLabels());
            m.graph().computeGradientAndScore();
        }
        INDArray gq = q.graph().getFlattenedGradients();
        INDArray gf = f.graph().getFlattenedGradients();
        assertTrue(maxAbsDiff(gq, gf) <= 1e-4 * gf.amaxNumber().doubleValue(),
                "the adapter gradients flow through the 4-bit input gradient of the layers above");
    }

    @Test
    void fusedKernelsAgreeWithTheDequantizedWeightInFloat() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 4, 70, 96, 5);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ).quantizeFrozenLayers(true));
        PeftModel f = Peft.wrap(dequantizedBase(base, q), lora());
        for (String n : q.adaptedLayers().keySet()) {
            f.graph().getLayer(n).getParam(LoraDenseLayer.LORA_A).assign(q.graph().getLayer(n).getParam(LoraDenseLayer.LORA_A));
        }
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 7, 70, 5).getFeatures();
        INDArray qo = q.graph().outputSingle(x);
        ComputationGraph unloaded = q.mergeAndUnload();
        assertTrue(maxAbsDiff(qo, unloaded.outputSingle(x)) < 1e-4, "mergeAndUnload gives a float graph of the dequantized base");
        for (Layer l : unloaded.getLayers()) {
            assertTrue(l.conf().getLayer().getClass().getName().startsWith("org.deeplearning4j"), "stock layer");
        }
    }

    /**
     * Batches of more than 64 rows in float: the 4-bit product accumulates onto the bias rows the
     * layer writes first ({@code QuantizedMatmul.layerForward}), in the adapted layer and in the
     * quantized frozen ones (the output projection included). With random biases and factors the
     * activations, in inference and in training, and the gradients must equal float LoRA over the
     * dequantized weights: a bias dropped or added twice would show.
     */
    @Test
    void largeBatchesAddTheBiasInsideTheFourBitProduct() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 4, 96, 128, 5);
        Nd4j.getRandom().setSeed(11);
        for (String n : new String[] {"dense0", "dense1", "dense2"}) {
            INDArray b = base.getLayer(n).getParam("b");
            b.assign(Nd4j.randn(DataType.FLOAT, b.shape()));
        }
        LoraConfig cfg = LoraConfig.builder().rank(4).alpha(8).targetModules("dense1").build();
        PeftModel q = Peft.wrap(base, QLoraConfig.of(cfg, NF4_DQ).quantizeFrozenLayers(true));
        assertInstanceOf(QLoraDenseLayer.class, q.graph().getLayer("dense1").conf().getLayer());
        assertInstanceOf(QuantizedDenseLayer.class, q.graph().getLayer("dense0").conf().getLayer());
        assertInstanceOf(QuantizedDenseLayer.class, q.graph().getLayer("dense2").conf().getLayer());
        ComputationGraph dequantized = base.clone();
        for (Layer l : q.graph().getLayers()) {
            if (l.conf().getLayer() instanceof FrozenDenseLayer fd) {
                dequantized.getLayer(fd.baseLayerName()).getParam("W").assign(fd.frozenWeight());
            }
        }
        PeftModel f = Peft.wrap(dequantized, cfg);
        INDArray b = Nd4j.randn(DataType.FLOAT, q.graph().getLayer("dense1").getParam(LoraDenseLayer.LORA_B).shape());
        q.graph().getLayer("dense1").getParam(LoraDenseLayer.LORA_B).assign(b);
        f.graph().getLayer("dense1").getParam(LoraDenseLayer.LORA_B).assign(b);
        f.graph().getLayer("dense1").getParam(LoraDenseLayer.LORA_A)
                .assign(q.graph().getLayer("dense1").getParam(LoraDenseLayer.LORA_A));
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 12, 100, 96, 5).getFeatures();
        assertTrue(QuantizedMatmul.accumulates(x, ((QuantizedDenseLayer) q.graph().getLayer("dense0").conf().getLayer())
                .quantizedWeight(), Nd4j.createUninitialized(DataType.FLOAT, 100, 128)), "the accumulating path is taken");
        for (boolean train : new boolean[] {false, true}) {
            for (String n : new String[] {"dense0", "dense1", "dense2"}) {
                INDArray qa = q.graph().feedForward(x, train).get(n);
                INDArray fa = f.graph().feedForward(x, train).get(n);
                assertTrue(maxAbsDiff(qa, fa) < 1e-5, n + (train ? " (training)" : "") + ": " + maxAbsDiff(qa, fa));
            }
        }
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 12, 100, 96, 5);
        for (PeftModel m : new PeftModel[] {q, f}) {
            m.graph().setInput(0, ds.getFeatures());
            m.graph().setLabel(0, ds.getLabels());
            m.graph().computeGradientAndScore();
        }
        INDArray gq = q.graph().getFlattenedGradients();
        INDArray gf = f.graph().getFlattenedGradients();
        assertTrue(maxAbsDiff(gq, gf) <= 1e-4 * gf.amaxNumber().doubleValue(),
                "gradients: " + maxAbsDiff(gq, gf) + " of " + gf.amaxNumber());
    }

    @Test
    void adaptersTrainedOnAQuantizedBaseSaveAndLoadLikeAnyOther(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4);
        QLoraConfig cfg = QLoraConfig.of(lora(), NF4_DQ);
        PeftModel q = Peft.wrap(base, cfg);
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < 3; i++) {
            q.graph().fit(ds);
        }
        q.saveAdapter(dir);
        PeftModel back = Peft.load(base, dir, c -> QLoraConfig.of((LoraConfig) c, NF4_DQ), false);
        assertInstanceOf(QLoraConfig.class, back.config());
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        assertEquals(q.graph().outputSingle(x), back.graph().outputSingle(x));

        File f = dir.resolve("graph.zip").toFile();
        ModelSerializer.writeModel(q.graph(), f, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(f, true);
        assertEquals(q.graph().outputSingle(x), restored.outputSingle(x), "4-bit weights survive ModelSerializer");
        assertEquals(q.graph().outputSingle(x), q.graph().clone().outputSingle(x), "and clone()");
    }

    /**
     * A QLoRA checkpoint resumes over a 4-bit base through the same config hook as loading:
     * training on continues exactly as an uninterrupted run (Adam state and counters restored).
     */
    @Test
    void aQloraCheckpointResumesExactlyOverAFourBitBase(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4);
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        PeftModel straight = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ));
        PeftModel interrupted = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ));
        for (int i = 0; i < 3; i++) {
            straight.graph().fit(ds);
            interrupted.graph().fit(ds);
        }
        interrupted.saveCheckpoint(dir);
        PeftModel resumed = PeftModel.resume(base, dir, c -> QLoraConfig.of((LoraConfig) c, NF4_DQ));
        assertInstanceOf(QLoraConfig.class, resumed.config());
        for (int i = 0; i < 2; i++) {
            straight.graph().fit(ds);
            resumed.graph().fit(ds);
        }
        assertEquals(straight.graph().params(), resumed.graph().params());
    }

    /**
     * A QLoRA checkpoint records its 4-bit spec, and resuming it without the hook (which would go
     * on training over a float base) is refused with the fix; the adapter itself still loads onto
     * the float base, as a PEFT adapter trained over bitsandbytes does.
     */
    @Test
    void aQloraCheckpointResumedWithoutItsHookIsRefused(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ));
        q.graph().fit(TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4));
        q.saveCheckpoint(dir);
        String json = java.nio.file.Files.readString(dir.resolve("peft4j.json"));
        assertTrue(json.contains("\n  \"config\": {\n    \"quantized_base\": {\n      \"blocksize\": 64,\n"
                + "      \"double_quant\": true,\n      \"frozen_layers_quantized\": false,\n      \"quant_type\": \"nf4\"\n"
                + "    }\n  },"), json);
        assertTrue(!java.nio.file.Files.readString(dir.resolve("adapter_config.json")).contains("quantized_base"),
                "adapter_config.json holds PEFT's keys only");
        org.peft4j.core.IncompatibleAdapterException e = org.junit.jupiter.api.Assertions.assertThrows(
                org.peft4j.core.IncompatibleAdapterException.class, () -> PeftModel.resume(base, dir));
        assertEquals(dir.resolve("peft4j.json") + " was saved by a model that held its frozen base as "
                + "{blocksize=64, double_quant=true, frozen_layers_quantized=false, quant_type=nf4}, but the config to "
                + "resume with holds it as floats: training would go on over another base. Resume with the config hook "
                + "the training used, e.g. PeftModel.resume(base, dir, c -> QLoraConfig.of((LoraConfig) c, spec)) for "
                + "a QLoRA checkpoint", e.getMessage());
        org.junit.jupiter.api.Assertions.assertThrows(org.peft4j.core.IncompatibleAdapterException.class,
                () -> PeftModel.resume(base, dir, c -> QLoraConfig.of((LoraConfig) c, NF4_DQ.withBlockSize(128))),
                "another 4-bit spec is another base too");
        assertInstanceOf(LoraConfig.class, Peft.load(base, dir).config());
    }

    /**
     * Switching to an adapter of another layout rebuilds the graph from the dequantized base; the
     * 4-bit weights must be carried over, not quantized again (re-quantizing moves the double-quantized
     * scales on every switch), so after several switches each layer holds the very tensor it began with.
     */
    @Test
    void switchingBetweenAdapterLayoutsKeepsTheFourBitBaseAsItWas() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 256, 4);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ).quantizeFrozenLayers(true));
        Map<String, QuantizedTensor> before = quantizedByLayer(q);
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        INDArray out = q.graph().outputSingle(x);
        LoraConfig other = LoraConfig.builder().rank(2).alpha(4).targetModules("dense1").build();
        q.addAdapter("other", QLoraConfig.of(other, NF4_DQ).quantizeFrozenLayers(true));
        for (int i = 0; i < 3; i++) {
            q.setAdapter("other");
            assertEquals(before.keySet(), quantizedByLayer(q).keySet());
            q.setAdapter(PeftModel.DEFAULT_ADAPTER);
        }
        Map<String, QuantizedTensor> after = quantizedByLayer(q);
        for (Map.Entry<String, QuantizedTensor> e : before.entrySet()) {
            assertEquals(e.getValue(), after.get(e.getKey()), e.getKey());
        }
        assertEquals(out, q.graph().outputSingle(x));
    }

    private static Map<String, QuantizedTensor> quantizedByLayer(PeftModel peft) {
        Map<String, QuantizedTensor> m = new java.util.TreeMap<>();
        for (Layer l : peft.graph().getLayers()) {
            QuantizedTensor t = QLora.quantizedWeight(l.conf().getLayer());
            if (t != null) {
                m.put(((FrozenDenseLayer) l.conf().getLayer()).baseLayerName(), t);
            }
        }
        return m;
    }

    /** Weighted combinations take float LoRA adapters; a QLoRA source is refused by what it is. */
    @Test
    void weightedCombinationsNameAQLoraSourceInTheirRefusal() {
        PeftModel q = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4), QLoraConfig.of(lora(), NF4_DQ));
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> org.peft4j.lora.LoraAdapters.addWeightedAdapter(q, java.util.List.of(PeftModel.DEFAULT_ADAPTER),
                        new double[] {1}, org.peft4j.lora.LoraAdapters.Combination.LINEAR, "sum", 0));
        assertEquals("adapter \"default\" is a QLoraConfig, not a plain LoraConfig; weighted combinations take float "
                + "LoRA adapters only", e.getMessage());
    }

    @Test
    void qloraTrainsAsWellAsFloatLora() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(5e-3), 6, 32, 64, 6);
        DataSet train = TinyGraphs.classification(DataType.FLOAT, 11, 512, 32, 6);
        LoraConfig cfg = LoraConfig.builder().rank(8).alpha(16).targetModulesRegex("dense\\d|output").build();
        PeftModel f = Peft.wrap(base, cfg);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(cfg, NF4_DQ));
        for (int i = 0; i < 25; i++) {
            f.graph().fit(train);
            q.graph().fit(train);
        }
        double lf = f.graph().score(train);
        double lq = q.graph().score(train);
        assertTrue(Math.abs(lq - lf) <= 0.05 * lf, "QLoRA loss " + lq + " vs LoRA " + lf);
        assertTrue(lf < 0.8 * base.score(train), "training reduced the loss: " + base.score(train) + " -> " + lf);
    }

    @Test
    void mergingIntoFourBitsIsExplicitAndReportsItsError() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 64, 4);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ));
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < 5; i++) {
            q.graph().fit(ds);
        }
        QLora.QuantizedMerge m = QLora.mergeIntoQuantized(q, NF4_DQ);
        assertEquals(java.util.Set.of("dense0", "dense1", "dense2"), m.weights().keySet());
        for (Map.Entry<String, Double> e : m.relativeError().entrySet()) {
            FrozenBaseLayer f = q.adaptedLayers().get(e.getKey());
            INDArray exact = f.mergedWeight(f.frozenWeight(), q.graph().getLayer(e.getKey()).paramTable());
            double err = m.weights().get(e.getKey()).toINDArray().sub(exact).norm2Number().doubleValue()
                    / exact.norm2Number().doubleValue();
            assertEquals(err, e.getValue(), 1e-6);
            assertTrue(e.getValue() > 0 && e.getValue() < 0.2, e.getKey() + " error " + e.getValue());
        }
    }

    @Test
    void savingTheQuantizedBaseOfAFloatModelIsRefusedAndWritesNothing(@TempDir Path dir) {
        PeftModel lora = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4), lora());
        Path file = dir.resolve("base-nf4.safetensors");
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> QLora.saveQuantizedBase(lora, file));
        assertEquals("the model holds no 4-bit weights (its config is " + lora.config() + "); wrap it with a QLoraConfig "
                + "to quantize its base. Nothing was written to " + file, e.getMessage());
        assertTrue(!java.nio.file.Files.exists(file));
    }

    @Test
    void theQuantizedBaseSavesAndReadsBackWithBitsandbytesKeys(@TempDir Path dir) throws Exception {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 64, 4);
        PeftModel q = Peft.wrap(base, QLoraConfig.of(lora(), NF4_DQ).quantizeFrozenLayers(true));
        Path file = dir.resolve("base-nf4.safetensors");
        QLora.saveQuantizedBase(q, file);
        org.peft4j.core.io.SafetensorsFile f = org.peft4j.core.io.Safetensors.read(file);
        assertTrue(f.tensors().containsKey("dense1.weight.quant_state.bitsandbytes__nf4"), f.tensors().keySet().toString());
        assertTrue(f.tensors().containsKey("dense1.weight.nested_absmax"));
        assertTrue(f.tensors().containsKey("output.bias"));
        Map<String, QuantizedTensor> back = QLora.readQuantizedBase(file);
        assertEquals(java.util.Set.of("dense0", "dense1", "dense2", "output"), back.keySet());
        for (Layer l : q.graph().getLayers()) {
            QuantizedTensor t = QLora.quantizedWeight(l.conf().getLayer());
            if (t != null) {
                assertEquals(t, back.get(((FrozenDenseLayer) l.conf().getLayer()).baseLayerName()));
            }
        }
    }
}
