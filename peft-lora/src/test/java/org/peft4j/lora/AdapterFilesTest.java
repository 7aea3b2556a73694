package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
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
import org.peft4j.core.testing.AdapterDirs;
import org.peft4j.core.testing.TinyGraphs;

/** Adapter files in Hugging Face PEFT's layout, and loading them safely (issue #7). */
class AdapterFilesTest {

    private static ComputationGraph base(long seed) {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), seed, 8, 16, 4);
    }

    private static PeftModel trained(ComputationGraph base) {
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(4).alpha(8).targetModules("dense1", "dense2")
                .modulesToSave("output").build());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < 3; i++) {
            peft.graph().fit(ds);
        }
        return peft;
    }

    private static INDArray x() {
        return TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
    }

    @Test
    void saveThenLoadReproducesOutputsAndTheSameBytes(@TempDir Path dir) throws Exception {
        ComputationGraph base = base(42);
        PeftModel peft = trained(base);
        peft.saveAdapter(dir);
        PeftModel loaded = Peft.load(base(42), dir);
        assertEquals(peft.graph().outputSingle(x()), loaded.graph().outputSingle(x()));

        Path again = dir.resolve("again");
        loaded.saveAdapter(again);
        for (String f : List.of("adapter_config.json", "adapter_model.safetensors")) {
            assertArrayEquals(Files.readAllBytes(dir.resolve(f)), Files.readAllBytes(again.resolve(f)), f);
        }
    }

    @Test
    void tensorsUsePeftNamesAndPyTorchOrientation(@TempDir Path dir) throws Exception {
        PeftModel peft = trained(base(42));
        peft.saveAdapter(dir);
        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(List.of("base_model.model.dense1.lora_A.weight", "base_model.model.dense1.lora_B.weight",
                        "base_model.model.dense2.lora_A.weight", "base_model.model.dense2.lora_B.weight",
                        "base_model.model.output.bias", "base_model.model.output.weight"),
                f.tensors().keySet().stream().sorted().toList());
        SafeTensor a = f.get("base_model.model.dense1.lora_A.weight");
        assertArrayEquals(new long[] {4, 16}, a.shape());
        INDArray loraA = peft.graph().getLayer("dense1").getParam(LoraDenseLayer.LORA_A);
        assertEquals(loraA.transpose().castTo(DataType.FLOAT).dup('c'),
                org.nd4j.linalg.factory.Nd4j.create(a.toFloats(), a.shape(), 'c'));
        assertArrayEquals(new long[] {16, 4}, f.get("base_model.model.dense2.lora_B.weight").shape());
        assertArrayEquals(new long[] {4, 16}, f.get("base_model.model.output.weight").shape());
        assertEquals("pt", f.metadata().get("format"));
    }

    @Test
    void configIsWrittenLikePeftWithSortedKeysAndTwoSpaceIndent(@TempDir Path dir) throws Exception {
        trained(base(42)).saveAdapter(dir);
        String json = Files.readString(dir.resolve("adapter_config.json"), StandardCharsets.UTF_8);
        String head = "{\n"
                + "  \"base_model_name_or_path\": null,\n"
                + "  \"bias\": \"none\",\n"
                + "  \"fan_in_fan_out\": false,\n"
                + "  \"inference_mode\": true,\n"
                + "  \"init_lora_weights\": true,\n"
                + "  \"lora_alpha\": 8.0,\n"
                + "  \"lora_dropout\": 0.0,\n"
                + "  \"modules_to_save\": [\n"
                + "    \"output\"\n"
                + "  ],\n"
                + "  \"peft4j\": {\n"
                + "    \"adapter_model_sha256\": \""
                + AdapterDirs.sha256(Files.readAllBytes(dir.resolve("adapter_model.safetensors"))) + "\",\n"
                + "    \"base_model_fingerprint\": {\n";
        assertTrue(json.startsWith(head), json);
        assertTrue(json.contains("\n    \"saved_adapters\": {}\n  },\n  \"peft_type\""), json);
        assertTrue(json.contains("\n  \"peft_type\": \"LORA\",\n  \"r\": 4,\n  \"target_modules\": [\n    \"dense1\",\n"
                + "    \"dense2\"\n  ],\n  \"task_type\": null,\n  \"use_dora\": false,\n  \"use_rslora\": false\n}"), json);
    }

    @Test
    void anotherBaseModelIsRefusedWithTheDifferenceUnlessOverridden(@TempDir Path dir) throws Exception {
        trained(base(42)).saveAdapter(dir);
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base(43), dir));
        assertTrue(e.getMessage().contains("same layers and shapes, but the weights differ"), e.getMessage());
        assertTrue(e.getMessage().contains("ignoreFingerprint=true"), e.getMessage());
        PeftModel forced = Peft.load(base(43), dir, true);
        assertEquals(List.of("default"), forced.adapterNames());

        ComputationGraph wider = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 12, 4);
        IncompatibleAdapterException shapes = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(wider, dir));
        assertTrue(shapes.getMessage().contains("layer dense1 has parameters {W=[12, 12], b=[12]}, the adapter expects "
                + "{W=[16, 16], b=[16]}"), shapes.getMessage());
    }

    @Test
    void damagedFilesGetSpecificErrorsAndChangeNothing(@TempDir Path dir) throws Exception {
        ComputationGraph base = base(42);
        INDArray before = base.params().dup();
        PeftModel peft = trained(base);
        peft.saveAdapter(dir);
        Path weights = dir.resolve("adapter_model.safetensors");
        Path config = dir.resolve("adapter_config.json");
        byte[] goodWeights = Files.readAllBytes(weights);
        byte[] goodConfig = Files.readAllBytes(config);

        Files.write(weights, java.util.Arrays.copyOf(goodWeights, goodWeights.length - 7));
        assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        Files.write(weights, goodWeights);

        Files.writeString(config, new String(goodConfig, StandardCharsets.UTF_8).replace("\"r\": 4", "\"r\": \"4\""));
        AdapterFormatException types = assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        assertTrue(types.getMessage().contains("\"r\" must be an integer; got 4 (String)"), types.getMessage());

        Files.writeString(config, new String(goodConfig, StandardCharsets.UTF_8).replace("\"r\": 4", "\"r\": 5"));
        IncompatibleAdapterException shape = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base, dir));
        assertTrue(shape.getMessage().contains("base_model.model.dense1.lora_A.weight has shape [4, 16], expected [5, 16]"),
                shape.getMessage());

        Files.writeString(config, new String(goodConfig, StandardCharsets.UTF_8).replace(
                "\"target_modules\": [\n    \"dense1\",\n    \"dense2\"", "\"target_modules\": [\n    \"dense1\",\n    \"dense0\""));
        IncompatibleAdapterException names = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base, dir));
        assertTrue(names.getMessage().contains("unknown tensors [base_model.model.dense2.lora_A.weight"), names.getMessage());
        assertTrue(names.getMessage().contains("missing tensors [base_model.model.dense0.lora_A.weight"), names.getMessage());

        String good = new String(goodConfig, StandardCharsets.UTF_8);
        assertTrue(good.contains("\"use_rslora\": false"), good);
        Files.writeString(config, good.replace("\"use_rslora\": false",
                "\"use_rslora\": false,\n  \"rank_pattern\": {\"dense1\": 5}"));
        IncompatibleAdapterException pattern = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base, dir));
        assertTrue(pattern.getMessage().contains("base_model.model.dense1.lora_A.weight has shape [4, 16], expected [5, 16]"),
                pattern.getMessage());
        Files.writeString(config, good.replace("\"use_rslora\": false",
                "\"use_rslora\": false,\n  \"alpha_pattern\": {},\n  \"rank_pattern\": {},\n  \"layers_to_transform\": null"));
        Peft.load(base, dir);

        Files.delete(config);
        AdapterFormatException none = assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir));
        assertTrue(none.getMessage().contains("adapter_config.json is missing"), none.getMessage());
        assertEquals(before, base.params());
    }

    @Test
    void checkpointResumesExactlyAsAnUninterruptedRun(@TempDir Path dir) throws Exception {
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        PeftModel straight = Peft.wrap(base(42), LoraConfig.builder().rank(4).alpha(8).targetModules("dense1").build());
        for (int i = 0; i < 6; i++) {
            straight.graph().fit(ds);
        }
        PeftModel first = Peft.wrap(base(42), LoraConfig.builder().rank(4).alpha(8).targetModules("dense1").build());
        for (int i = 0; i < 3; i++) {
            first.graph().fit(ds);
        }
        first.saveCheckpoint(dir);
        PeftModel resumed = PeftModel.resume(base(42), dir);
        assertEquals(3, resumed.graph().getIterationCount());
        for (int i = 0; i < 3; i++) {
            resumed.graph().fit(ds);
        }
        assertEquals(straight.graph().params(), resumed.graph().params());
    }

    @Test
    void namedAdaptersLiveInSubdirectoriesAndSwitchWithoutRebuilding(@TempDir Path dir) throws Exception {
        ComputationGraph base = base(42);
        LoraConfig cfg = LoraConfig.builder().rank(4).alpha(8).targetModules("dense1", "dense2").build();
        PeftModel peft = Peft.wrap(base, cfg);
        ComputationGraph graph = peft.graph();
        DataSet a = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        DataSet b = TinyGraphs.classification(DataType.FLOAT, 6, 32, 8, 4);
        for (int i = 0; i < 3; i++) {
            graph.fit(a);
        }
        INDArray outA = peft.graph().outputSingle(x());
        peft.addAdapter("second", cfg.toBuilder().alpha(4).build());
        peft.setAdapter("second");
        assertTrue(graph == peft.graph(), "same layout: no rebuild");
        assertEquals(base.outputSingle(x()), peft.graph().outputSingle(x()), "a fresh adapter is the identity");
        for (int i = 0; i < 3; i++) {
            graph.fit(b);
        }
        INDArray outB = peft.graph().outputSingle(x());
        peft.setAdapter("default");
        assertEquals(outA, peft.graph().outputSingle(x()));
        assertEquals(List.of("default", "second"), peft.adapterNames());

        peft.saveAdapter(dir);
        assertTrue(Files.isRegularFile(dir.resolve("second").resolve("adapter_model.safetensors")));
        PeftModel loaded = Peft.load(base(42), dir);
        assertEquals(List.of("default", "second"), loaded.adapterNames());
        assertEquals(outA, loaded.graph().outputSingle(x()));
        loaded.setAdapter("second");
        assertEquals(outB, loaded.graph().outputSingle(x()));

        assertThrows(IllegalStateException.class, () -> loaded.deleteAdapter("second"));
        loaded.setAdapter("default");
        loaded.deleteAdapter("second");
        assertEquals(List.of("default"), loaded.adapterNames());
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> loaded.addAdapter("../x", cfg));
        assertTrue(bad.getMessage().contains("must be 1-100 letters"), bad.getMessage());
    }

    @Test
    void adapterOfAnotherRankRebuildsTheGraphOnSwitch() {
        ComputationGraph base = base(42);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(4).alpha(8).targetModules("dense1").build());
        peft.addAdapter("wide", LoraConfig.builder().rank(8).alpha(8).targetModules("dense1", "dense2").build());
        long before = peft.trainableParameters();
        peft.setAdapter("wide");
        assertEquals(2 * (16 * 8 + 8 * 16), peft.trainableParameters());
        assertEquals(base.outputSingle(x()), peft.graph().outputSingle(x()));
        peft.setAdapter("default");
        assertEquals(before, peft.trainableParameters());
    }

    @Test
    void concurrentInferenceSeesWholeAdaptersWhileAnotherThreadSwitches() throws Exception {
        ComputationGraph base = base(42);
        LoraConfig cfg = LoraConfig.builder().rank(4).alpha(8).targetModules("dense1", "dense2").build();
        PeftModel peft = Peft.wrap(base, cfg);
        for (int i = 0; i < 3; i++) {
            peft.graph().fit(TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4));
        }
        peft.addAdapter("zero", cfg);
        INDArray x = x();
        INDArray expectDefault = peft.output(x)[0];
        peft.setAdapter("zero");
        INDArray expectZero = peft.output(x)[0];
        peft.setAdapter("default");

        int readers = 3;
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(readers + 1);
        java.util.concurrent.atomic.AtomicInteger mixed = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(readers + 1);
        List<java.util.concurrent.Future<?>> fs = new java.util.ArrayList<>();
        for (int r = 0; r < readers; r++) {
            fs.add(pool.submit(() -> {
                start.await();
                for (int i = 0; i < 60; i++) {
                    INDArray out = peft.output(x)[0];
                    if (!out.equals(expectZero) && !out.equals(expectDefault)) {
                        mixed.incrementAndGet();
                    }
                }
                return null;
            }));
        }
        fs.add(pool.submit(() -> {
            start.await();
            for (int i = 0; i < 60; i++) {
                peft.setAdapter(i % 2 == 0 ? "zero" : "default");
            }
            return null;
        }));
        for (java.util.concurrent.Future<?> f : fs) {
            f.get(60, java.util.concurrent.TimeUnit.SECONDS);
        }
        pool.shutdown();
        assertEquals(0, mixed.get(), "every output belongs to one adapter");
    }
}
