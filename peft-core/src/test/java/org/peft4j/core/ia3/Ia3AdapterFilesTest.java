package org.peft4j.core.ia3;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.testing.AdapterDirs;
import org.peft4j.core.testing.TinyGraphs;

/** IA3 adapters saved in Hugging Face PEFT's layout and loaded back. */
class Ia3AdapterFilesTest {

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(2e-2), 42, 8, 16, 4);
    }

    @Test
    void savedIa3ReloadsToTheSameOutputsWithPeftTensorNames(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(base(), Ia3Config.builder().targetModules("dense1", "dense2")
                .feedforwardModules("dense2").build());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < 3; i++) {
            peft.graph().fit(ds);
        }
        peft.saveAdapter(dir);
        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertArrayEquals(new long[] {16, 1}, f.get("base_model.model.dense1.ia3_l").shape(), "output scaling [out, 1]");
        assertArrayEquals(new long[] {1, 16}, f.get("base_model.model.dense2.ia3_l").shape(), "input scaling [1, in]");
        String json = Files.readString(dir.resolve("adapter_config.json"), StandardCharsets.UTF_8);
        assertTrue(json.contains("\"peft_type\": \"IA3\""), json);
        assertTrue(json.contains("\"feedforward_modules\": [\n    \"dense2\"\n  ]"), json);

        PeftModel back = Peft.load(base(), dir);
        assertInstanceOf(Ia3Config.class, back.config());
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        assertEquals(peft.graph().outputSingle(x), back.graph().outputSingle(x));
        Path again = dir.resolve("again");
        back.saveAdapter(again);
        assertArrayEquals(Files.readAllBytes(dir.resolve("adapter_model.safetensors")),
                Files.readAllBytes(again.resolve("adapter_model.safetensors")));
        assertArrayEquals(Files.readAllBytes(dir.resolve("adapter_config.json")),
                Files.readAllBytes(again.resolve("adapter_config.json")));
    }

    @Test
    void aConfigWithWrongTypesIsRefused(@TempDir Path dir) throws Exception {
        Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"target_modules\": [\n    \"dense1\"\n  ]",
                "\"target_modules\": 7"));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertTrue(e.getMessage().contains("\"target_modules\" must be a list of layer names or a regex string (or \"all-linear\"); got 7"),
                e.getMessage());
    }

    /**
     * A number of 200,000 digits is refused before Jackson converts it (a conversion that takes
     * time quadratic in the length: 15 s for 10^6 digits), naming where it is.
     */
    @Test
    void aConfigWithAnOverlongNumberIsRefused(@TempDir Path dir) throws Exception {
        Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config);
        assertTrue(json.startsWith("{\n  \""), json);
        Files.writeString(config, "{\n  \"x\": " + "7".repeat(200_000) + ",\n  \"" + json.substring(5));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals(config + ": the number at line 2, column 8 has 200000 characters; numbers here have at most 100",
                e.getMessage());
    }

    /** A NaN in the weights would turn every output into NaN: refused, naming the tensor and element. */
    @Test
    void nonFiniteWeightsAreRefused(@TempDir Path dir) throws Exception {
        Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Path weights = dir.resolve("adapter_model.safetensors");
        SafetensorsFile f = Safetensors.read(weights);
        java.util.Map<String, org.peft4j.core.io.SafeTensor> tensors = new java.util.LinkedHashMap<>(f.tensors());
        String key = "base_model.model.dense1.ia3_l";
        float[] v = tensors.get(key).toFloats();
        v[5] = Float.NaN;
        tensors.put(key, org.peft4j.core.io.SafeTensor.ofFloats(tensors.get(key).shape(), v));
        AdapterDirs.replaceWeights(dir, tensors, f.metadata());
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals(key + " in " + dir + " holds NaN at element 5; adapter weights must be finite", e.getMessage());
    }

    /** Hugging Face hub snapshots hold their files as symbolic links into a blob store: they load. */
    @Test
    void filesBehindSymbolicLinksLoad(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build());
        peft.graph().fit(TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4));
        Path blobs = dir.resolve("blobs");
        peft.saveAdapter(blobs);
        Path snapshot = Files.createDirectories(dir.resolve("snapshot"));
        for (String name : new String[] {"adapter_config.json", "adapter_model.safetensors"}) {
            Files.createSymbolicLink(snapshot.resolve(name), blobs.resolve(name));
        }
        INDArray x = TinyGraphs.classification(DataType.FLOAT, 9, 16, 8, 4).getFeatures();
        assertEquals(peft.graph().outputSingle(x), Peft.load(base(), snapshot).graph().outputSingle(x));
    }

    /**
     * A sub-directory whose name cannot be an adapter name: ignored when the default adapter lists
     * the adapters saved with it (it is not one of them); reported, naming it, for a directory
     * whose config lists none (another writer's), where every sub-directory holding an adapter is loaded.
     */
    @Test
    void aSubDirectoryWithAnInvalidAdapterNameIsIgnoredOrAFormatError(@TempDir Path dir) throws Exception {
        Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Path stray = Files.createDirectories(dir.resolve("my adapter"));
        for (String name : new String[] {"adapter_config.json", "adapter_model.safetensors"}) {
            Files.copy(dir.resolve(name), stray.resolve(name));
        }
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), Peft.load(base(), dir).adapterNames());

        Path side = dir.resolve("peft4j.json");
        String json = Files.readString(side);
        assertTrue(json.contains(",\n  \"saved_adapters\": {}"), json);
        Files.writeString(side, json.replace(",\n  \"saved_adapters\": {}", ""));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals("sub-directory " + stray + " holds an adapter that cannot be loaded: adapter name \"my adapter\" "
                + "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it names a directory "
                + "when saved); rename it or move it out of " + dir, e.getMessage());
    }

    /** An adapter deleted since an earlier save into the same directory does not come back on load. */
    @Test
    void aDeletedAdapterDoesNotComeBack(@TempDir Path dir) throws Exception {
        PeftModel peft = Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build());
        peft.addAdapter("second", Ia3Config.builder().targetModules("dense1", "dense2").build());
        peft.saveAdapter(dir);
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER, "second"), Peft.load(base(), dir).adapterNames());

        peft.deleteAdapter("second");
        peft.saveAdapter(dir);
        assertTrue(Files.isRegularFile(dir.resolve("second").resolve("adapter_config.json")), "left on disk");
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER), Peft.load(base(), dir).adapterNames());
    }

    /**
     * Files of two saves mixed in one directory (copied together by hand, or left by a save of a
     * version that wrote the files one by one) are refused, naming the file, whether the weights disagree with their own config or a
     * sub-directory's adapter with what the default adapter recorded for it.
     */
    @Test
    void filesOfDifferentSavesAreRefused(@TempDir Path dir) throws Exception {
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        PeftModel peft = Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build());
        peft.addAdapter("second", Ia3Config.builder().targetModules("dense1").build());
        Path before = dir.resolve("before");
        Path after = dir.resolve("after");
        peft.saveAdapter(before);
        peft.graph().fit(ds);
        peft.setAdapter("second");
        peft.graph().fit(ds);
        peft.saveAdapter(after);

        Path mixed = dir.resolve("mixed");
        copyAdapter(before, mixed);
        copyAdapter(before.resolve("second"), mixed.resolve("second"));
        Files.copy(after.resolve("second").resolve("adapter_model.safetensors"),
                mixed.resolve("second").resolve("adapter_model.safetensors"), StandardCopyOption.REPLACE_EXISTING);
        AdapterFormatException own = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), mixed));
        assertTrue(own.getMessage().endsWith(mixed.resolve("second").resolve("adapter_model.safetensors")
                + " is not the weights file adapter_config.json was saved with (SHA-256 "
                + AdapterDirs.sha256(Files.readAllBytes(after.resolve("second").resolve("adapter_model.safetensors")))
                + ", " + mixed.resolve("second").resolve("peft4j.json") + ": \"adapter_model_sha256\" is "
                + recordedDigest(before.resolve("second")) + "): the two files come from different saves, for example "
                + "copied together by hand; save the adapter again"), own.getMessage());
        assertTrue(own.getMessage().startsWith(mixed.resolve("peft4j.json") + " lists adapter \"second\" as saved "
                + "with it, which cannot be loaded: "), own.getMessage());

        copyAdapter(after.resolve("second"), mixed.resolve("second"));
        AdapterFormatException pair = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), mixed));
        assertTrue(pair.getMessage().endsWith(mixed.resolve("second").resolve("peft4j.json")
                + " records SHA-256 " + recordedDigest(after.resolve("second")) + " for its weights, but "
                + recordedDigest(before.resolve("second")) + " was recorded for them: the directory mixes files of "
                + "different saves, for example copied together by hand; save the adapters again"),
                pair.getMessage());

        copyAdapter(after, mixed);
        assertEquals(List.of(PeftModel.DEFAULT_ADAPTER, "second"), Peft.load(base(), mixed).adapterNames());
    }

    /** Trains the active adapter for {@code steps} steps on a fixed batch. */
    private static void fit(PeftModel peft, int steps) {
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        for (int i = 0; i < steps; i++) {
            peft.graph().fit(ds);
        }
    }

    /** Two adapters of one layout, each trained with Adam; the default adapter active again. */
    private static PeftModel twoTrainedAdapters() {
        PeftModel peft = Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build());
        peft.addAdapter("second", Ia3Config.builder().targetModules("dense1").build());
        fit(peft, 3);
        peft.setAdapter("second");
        fit(peft, 3);
        peft.setAdapter(PeftModel.DEFAULT_ADAPTER);
        return peft;
    }

    /**
     * A checkpoint keeps the Adam state of the inactive adapter too: after resuming, training
     * either adapter gives exactly the parameters of an uninterrupted run.
     */
    @Test
    void resumeContinuesEveryAdapterExactly(@TempDir Path dir) throws Exception {
        PeftModel straight = twoTrainedAdapters();
        PeftModel interrupted = twoTrainedAdapters();
        interrupted.saveCheckpoint(dir);
        PeftModel resumed = PeftModel.resume(base(), dir);
        for (PeftModel p : new PeftModel[] {straight, resumed}) {
            fit(p, 2);
            p.setAdapter("second");
            fit(p, 2);
        }
        for (String name : List.of(PeftModel.DEFAULT_ADAPTER, "second")) {
            assertEquals(straight.adapterParameters(name), resumed.adapterParameters(name), name);
        }
    }

    /** A training state naming an adapter the model does not have is refused, naming the tensor. */
    @Test
    void aTrainingStateForAnUnknownAdapterIsRefused(@TempDir Path dir) throws Exception {
        twoTrainedAdapters().saveCheckpoint(dir);
        Path state = dir.resolve("training_state.safetensors");
        SafetensorsFile f = Safetensors.read(state);
        java.util.Map<String, org.peft4j.core.io.SafeTensor> tensors = new java.util.LinkedHashMap<>();
        f.tensors().forEach((k, v) -> tensors.put(k.equals("updater_state.second") ? "updater_state.third" : k, v));
        Safetensors.write(state, tensors, f.metadata());
        AdapterDirs.recordTrainingState(dir);
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> PeftModel.resume(base(), dir));
        assertEquals(state + ": tensor \"updater_state.third\" is not the optimizer state of an inactive adapter of "
                + "this model; expected \"updater_state\" and \"updater_state.<name>\" for <name> among [default, second] "
                + "other than the active \"default\"", e.getMessage());
    }

    /**
     * The training state must be the one saved with the adapters: adapters saved over a
     * checkpoint by saveAdapter, or a state file from another checkpoint, are refused by resume.
     */
    @Test
    void resumeRefusesATrainingStateOfAnotherSave(@TempDir Path dir) throws Exception {
        PeftModel peft = twoTrainedAdapters();
        Path first = dir.resolve("first");
        peft.saveCheckpoint(first);
        fit(peft, 1);
        Path second = dir.resolve("second");
        peft.saveCheckpoint(second);

        Path state = first.resolve("training_state.safetensors");
        Files.copy(second.resolve("training_state.safetensors"), state, StandardCopyOption.REPLACE_EXISTING);
        AdapterFormatException mixed = assertThrows(AdapterFormatException.class, () -> PeftModel.resume(base(), first));
        assertEquals(state + " has SHA-256 " + AdapterDirs.sha256(Files.readAllBytes(state)) + ", but "
                + first.resolve("peft4j.json") + " records " + recordedKey(first, "training_state_sha256")
                + ": the optimizer state and the adapters come from different saves, for example files copied together "
                + "by hand; resume needs the files of one saveCheckpoint", mixed.getMessage());

        fit(peft, 1);
        peft.saveAdapter(second);
        AdapterFormatException over = assertThrows(AdapterFormatException.class, () -> PeftModel.resume(base(), second));
        assertEquals(second.resolve("training_state.safetensors") + " does not belong to the adapters in " + second
                + ": their records (" + second.resolve("peft4j.json") + ") hold no training state, so they were written "
                + "by saveAdapter, not saveCheckpoint (after the checkpoint or without one); resume needs the files of "
                + "one saveCheckpoint", over.getMessage());
    }

    private static void copyAdapter(Path from, Path to) throws java.io.IOException {
        Files.createDirectories(to);
        for (String name : new String[] {"adapter_config.json", "adapter_model.safetensors", "peft4j.json"}) {
            Files.copy(from.resolve(name), to.resolve(name), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static String recordedDigest(Path adapterDir) throws java.io.IOException {
        return recordedKey(adapterDir, "adapter_model_sha256");
    }

    private static String recordedKey(Path adapterDir, String key) throws java.io.IOException {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"" + key + "\": \"([0-9a-f]{64})\"")
                .matcher(Files.readString(adapterDir.resolve("peft4j.json")));
        assertTrue(m.find(), "no " + key + " in " + adapterDir);
        return m.group(1);
    }
}
