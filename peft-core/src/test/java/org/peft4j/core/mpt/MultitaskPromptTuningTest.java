package org.peft4j.core.mpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.gradientcheck.GradientCheckUtil;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.testing.TinyDecoders;

/**
 * Multitask prompt tuning: {@code P_k = P* ⊙ (u_k·v_k)} per example's task, the task-id input,
 * gradients, and files in Hugging Face PEFT's layout.
 */
class MultitaskPromptTuningTest {

    static final String TASK_PROMPT = "embed.tokens.taskprompt";

    static INDArray taskIds(DataType dt, double... ids) {
        return Nd4j.createFromArray(ids).castTo(dt).reshape(ids.length, 1);
    }

    /** {@code P_k [p, d]} computed from PEFT's file tensors with plain loops. */
    static double[][] taskPrompt(float[] prompt, float[] cols, float[] rows, int k, int p, int r, int d) {
        double[][] out = new double[p][d];
        for (int i = 0; i < p; i++) {
            for (int c = 0; c < d; c++) {
                double w = 0;
                for (int j = 0; j < r; j++) {
                    w += (double) cols[(k * p + i) * r + j] * rows[(k * r + j) * d + c];
                }
                out[i][c] = prompt[i * d + c] * w;
            }
        }
        return out;
    }

    private static INDArray activation(ComputationGraph g, String vertex, INDArray tokens, INDArray tasks) {
        Map<String, INDArray> acts = g.feedForward(new INDArray[] {tokens, tasks}, false);
        return acts.get(vertex);
    }

    @Test
    void eachExampleGetsItsTasksPromptAndTheFileHoldsPeftsTensors(@TempDir Path dir) throws IOException {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 3, 7, 8, 1, 16);
        PeftModel m = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(3).numTasks(3).numRanks(2)
                .build());
        Nd4j.getRandom().setSeed(4);
        m.graph().getLayer(TASK_PROMPT).paramTable().values().forEach(a -> a.assign(Nd4j.randn(a.dataType(), a.shape())));
        assertEquals(List.of("tokens", "task_ids"), m.graph().getConfiguration().getNetworkInputs());

        INDArray tokens = Nd4j.createFromArray(new float[][] {{1, 2, 3, 4}, {0, 6, 5, 1}, {2, 2, 2, 2}, {3, 1, 4, 1}});
        INDArray tasks = taskIds(DataType.FLOAT, 2, 0, 1, 2);
        INDArray y = activation(m.graph(), TASK_PROMPT, tokens, tasks);
        assertArrayEquals(new long[] {4, 8, 3}, y.shape());

        m.saveAdapter(dir);
        SafetensorsFile f = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(Map.of("prompt_embeddings", List.of(3L, 8L), "prefix_task_cols", List.of(3L, 3L, 2L),
                "prefix_task_rows", List.of(3L, 2L, 8L)), shapes(f));
        float[] prompt = f.get("prompt_embeddings").toFloats();
        float[] cols = f.get("prefix_task_cols").toFloats();
        float[] rows = f.get("prefix_task_rows").toFloats();
        double[] ids = {2, 0, 1, 2};
        for (int b = 0; b < 4; b++) {
            double[][] pk = taskPrompt(prompt, cols, rows, (int) ids[b], 3, 2, 8);
            for (int i = 0; i < 3; i++) {
                for (int c = 0; c < 8; c++) {
                    assertEquals(pk[i][c], y.getDouble(b, c, i), 1e-5, "example " + b + " position " + i + " feature " + c);
                }
            }
        }
        String json = Files.readString(dir.resolve("adapter_config.json"));
        for (String key : new String[] {"\"peft_type\": \"MULTITASK_PROMPT_TUNING\"", "\"num_tasks\": 3", "\"num_ranks\": 2",
            "\"num_virtual_tokens\": 3", "\"token_dim\": 8", "\"prompt_tuning_init\": \"RANDOM\"",
            "\"prompt_tuning_init_task\": 0", "\"prompt_tuning_init_state_dict_path\": null"}) {
            assertTrue(json.contains(key), key + " in " + json);
        }

        INDArray out = m.graph().output(tokens, tasks)[0];
        assertArrayEquals(new long[] {4, 7, 4}, out.shape(), "outputs keep the caller's length");
        PeftModel back = Peft.load(base, dir);
        assertEquals(m.config(), back.config());
        assertEquals(out, back.graph().output(tokens, tasks)[0], "reloaded adapter, same outputs");
        var off = m.disableAdapter();
        try (off) {
            assertEquals(base.outputSingle(false, tokens), m.graph().output(tokens, tasks)[0], "disabled: the base model");
        }
    }

    private static Map<String, List<Long>> shapes(SafetensorsFile f) {
        Map<String, List<Long>> m = new java.util.TreeMap<>();
        f.tensors().forEach((k, v) -> m.put(k, java.util.Arrays.stream(v.shape()).boxed().toList()));
        return m;
    }

    private static Path fixture(String name) {
        try {
            return Path.of(MultitaskPromptTuningTest.class.getResource("/org/peft4j/core/mpt/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void anAdapterAsPeftWritesItLoadsGivesTheNumpyTaskPromptsAndSavesBackBitForBit(@TempDir Path dir)
            throws IOException {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 5, 7, 8, 1, 16);
        PeftModel m = Peft.load(base, fixture("peft-adapter"));
        MultitaskPromptTuningConfig c = (MultitaskPromptTuningConfig) m.config();
        assertEquals(3, c.numTasks());
        assertEquals(2, c.numRanks());
        SafetensorsFile ref;
        try (InputStream in = getClass().getResourceAsStream("/org/peft4j/core/mpt/reference.safetensors")) {
            ref = Safetensors.fromBytes(in.readAllBytes());
        }
        INDArray expected = ref.get("task_prompts").toINDArray(DataType.DOUBLE);
        INDArray y = activation(m.graph(), TASK_PROMPT, Nd4j.zeros(DataType.FLOAT, 3, 2), taskIds(DataType.FLOAT, 0, 1, 2));
        assertEquals(0.0, y.castTo(DataType.DOUBLE).permute(0, 2, 1).sub(expected).amaxNumber().doubleValue(), 1e-5);

        m.saveAdapter(dir);
        SafetensorsFile original = Safetensors.read(fixture("peft-adapter").resolve("adapter_model.safetensors"));
        SafetensorsFile saved = Safetensors.read(dir.resolve("adapter_model.safetensors"));
        assertEquals(original.tensors().keySet(), saved.tensors().keySet());
        for (Map.Entry<String, SafeTensor> e : original.tensors().entrySet()) {
            assertEquals(e.getValue(), saved.get(e.getKey()), e.getKey());
        }
    }

    @Test
    void wrappedDecoderMatchesFiniteDifferences() {
        Nd4j.setDefaultDataTypes(DataType.DOUBLE, DataType.DOUBLE);
        ComputationGraph base = TinyDecoders.decoder(DataType.DOUBLE, new NoOp(), 6, 5, 4, 1, 8);
        PeftModel m = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(2).numTasks(3).numRanks(2)
                .modulesToSave("embed.tokens").build());
        Nd4j.getRandom().setSeed(7);
        m.graph().getLayer(TASK_PROMPT).paramTable().values().forEach(a -> a.assign(Nd4j.randn(a.dataType(), a.shape())));
        INDArray tokens = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4}, {2, 2, 1, 0}, {4, 0, 1, 1}});
        INDArray labels = Nd4j.createFromArray(new double[][] {{3, 0, 4, 1}, {2, 1, 0, 3}, {0, 1, 1, 2}}).reshape(3, 1, 4);
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 1, 1}, {1, 1, 1, 0}, {1, 1, 1, 1}});
        boolean ok = GradientCheckUtil.checkGradients(new GradientCheckUtil.GraphConfig().net(m.graph())
                .inputs(new INDArray[] {tokens, taskIds(DataType.DOUBLE, 2, 0, 2)}).labels(new INDArray[] {labels})
                .inputMask(new INDArray[] {mask, null}).labelMask(new INDArray[] {mask})
                .epsilon(1e-6).maxRelError(1e-5).minAbsoluteError(1e-9)
                .print(GradientCheckUtil.PrintMode.FAILURES_ONLY).exitOnFirstError(false));
        assertTrue(ok, "task prompts, prepend, trim and the trainable embedding below");
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    @Test
    void trainsOnTwoTasksAndEachTaskPromptLearnsItsOwnTask() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(3e-2), 8, 7, 16, 1, 24);
        PeftModel m = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(4).numTasks(2).numRanks(1)
                .build());
        org.nd4j.linalg.dataset.DataSet one = TinyDecoders.domain(DataType.FLOAT, 1, 16, 12, 7, 1, 0.0);
        org.nd4j.linalg.dataset.DataSet three = TinyDecoders.domain(DataType.FLOAT, 2, 16, 12, 7, 3, 0.0);
        INDArray tokens = Nd4j.concat(0, one.getFeatures(), three.getFeatures());
        INDArray labels = Nd4j.concat(0, one.getLabels(), three.getLabels());
        INDArray tasks = Nd4j.concat(0, Nd4j.zeros(DataType.FLOAT, 16, 1), Nd4j.ones(DataType.FLOAT, 16, 1));
        MultiDataSet ds = new MultiDataSet(new INDArray[] {tokens, tasks}, new INDArray[] {labels});
        INDArray before = m.graph().getLayer(TASK_PROMPT).params().dup();
        for (int i = 0; i < 40; i++) {
            m.graph().fit(ds);
        }
        assertNotEquals(before, m.graph().getLayer(TASK_PROMPT).params());
        m.graph().setInputs(tokens, tasks);
        double right = loss(m.graph(), tokens, tasks, labels);
        double swapped = loss(m.graph(), tokens, Nd4j.ones(DataType.FLOAT, 32, 1).sub(tasks), labels);
        assertTrue(right < swapped, "each task's prompt fits its own task: " + right + " vs swapped ids " + swapped);
    }

    private static double loss(ComputationGraph g, INDArray tokens, INDArray tasks, INDArray labels) {
        return g.score(new MultiDataSet(new INDArray[] {tokens, tasks}, new INDArray[] {labels}));
    }

    @Test
    void taskIdsOutsideTheTasksAreRefusedWithTheRange() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 3, 7, 8, 1, 16);
        PeftModel m = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(2).numTasks(2).build());
        Exception e = assertThrows(Exception.class, () -> m.graph().output(Nd4j.zeros(DataType.FLOAT, 1, 3),
                taskIds(DataType.FLOAT, 2)));
        assertTrue(String.valueOf(e.getMessage()).contains("task id 2.0 of example 0 is not one of the 2 tasks 0 … 1"),
                e.getMessage());
        IllegalArgumentException clash = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(base,
                MultitaskPromptTuningConfig.builder().numVirtualTokens(2).taskInput("tokens").build()));
        assertTrue(clash.getMessage().contains("a vertex or input named \"tokens\" already exists"), clash.getMessage());
    }

    @Test
    void mergingIsRefusedNamingThePromptLayers() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 3, 7, 8, 1, 16);
        PeftModel m = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(2).numTasks(2).build());
        IllegalStateException e = assertThrows(IllegalStateException.class, m::mergeAndUnload);
        assertTrue(e.getMessage().startsWith("mergeAndUnload(): MULTITASK_PROMPT_TUNING adds layers that no stock DL4J "
                + "layer can absorb"), e.getMessage());
        assertTrue(e.getMessage().contains("embed.tokens.taskprompt"), e.getMessage());
    }
}
