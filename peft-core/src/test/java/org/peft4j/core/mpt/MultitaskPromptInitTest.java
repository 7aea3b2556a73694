package org.peft4j.core.mpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.testing.TinyDecoders;

/** Each {@link MultitaskPromptInit} starts the prompt and the task factors as documented. */
class MultitaskPromptInitTest {

    private static final int P = 4;
    private static final int D = 16;
    private static final int R = 2;
    private static final int S = 3;
    private static ComputationGraph base;
    private static Path source;
    private static SafetensorsFile sourceFile;

    @BeforeAll
    static void sourceAdapter(@TempDir Path dir) throws IOException {
        base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 11, 9, D, 1, 16);
        PeftModel m = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numTasks(S).numRanks(R)
                .build());
        Nd4j.getRandom().setSeed(12);
        m.graph().getLayer(MultitaskPromptTuningTest.TASK_PROMPT).paramTable().values()
                .forEach(a -> a.assign(Nd4j.randn(a.dataType(), a.shape())));
        m.saveAdapter(dir);
        source = dir.resolve("adapter_model.safetensors");
        sourceFile = Safetensors.read(source);
    }

    private static Map<String, INDArray> start(MultitaskPromptTuningConfig c) {
        Nd4j.getRandom().setSeed(13);
        return Peft.wrap(base, c).graph().getLayer(MultitaskPromptTuningTest.TASK_PROMPT).paramTable();
    }

    /** E [d, p] = P*ᵀ of the source file. */
    private static INDArray sourcePrompt() {
        return sourceFile.get("prompt_embeddings").toINDArray(DataType.FLOAT).transpose();
    }

    /** The source's u_k ([p, r]) or v_k ([r, d]) of task k, from the file with plain indexing. */
    private static double sourceU(int k, int i, int j) {
        return sourceFile.get("prefix_task_cols").toFloats()[(k * P + i) * R + j];
    }

    private static double sourceV(int k, int j, int c) {
        return sourceFile.get("prefix_task_rows").toFloats()[(k * R + j) * D + c];
    }

    @Test
    void randomStartsThePromptAtTheEmbeddingScaleAndTheFactorsAtPeftsScale() {
        Map<String, INDArray> p = start(MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numTasks(2).numRanks(R)
                .build());
        double tableStd = base.getLayer("embed.tokens").getParam("W").stdNumber().doubleValue();
        assertEquals(tableStd, p.get("prompt").stdNumber().doubleValue(), 0.35 * tableStd);
        assertEquals(0.02, p.get("taskRows").stdNumber().doubleValue(), 0.35 * 0.02);
        assertEquals(0.02, p.get("taskCols").stdNumber().doubleValue(), 0.5 * 0.02);
    }

    @Test
    void textCopiesTheEmbeddingRowsOfTheTokensRepeated() {
        Map<String, INDArray> p = start(MultitaskPromptTuningConfig.builder().numVirtualTokens(P).initFromTokens(5, 2, 7)
                .build());
        INDArray table = base.getLayer("embed.tokens").getParam("W");
        int[] ids = {5, 2, 7, 5};
        for (int j = 0; j < P; j++) {
            assertEquals(table.getRow(ids[j]), p.get("prompt").getColumn(j), "virtual token " + j);
        }
    }

    @Test
    void averageOfSourceTasksCopiesThePromptAndAveragesTheFactors() {
        Map<String, INDArray> p = start(MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numRanks(R)
                .initFromAverageOfSourceTasks(source).build());
        assertEquals(sourcePrompt(), p.get("prompt"));
        for (int i = 0; i < P; i++) {
            for (int j = 0; j < R; j++) {
                double mean = (sourceU(0, i, j) + sourceU(1, i, j) + sourceU(2, i, j)) / 3;
                assertEquals(mean, p.get("taskCols").getDouble(j, i), 1e-6);
            }
        }
        for (int j = 0; j < R; j++) {
            for (int c = 0; c < D; c++) {
                double mean = (sourceV(0, j, c) + sourceV(1, j, c) + sourceV(2, j, c)) / 3;
                assertEquals(mean, p.get("taskRows").getDouble(c, j), 1e-6);
            }
        }
    }

    @Test
    void exactSourceTaskCopiesThatTasksFactors() {
        Map<String, INDArray> p = start(MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numRanks(R)
                .initFromSourceTask(source, 1).build());
        assertEquals(sourcePrompt(), p.get("prompt"));
        for (int i = 0; i < P; i++) {
            for (int j = 0; j < R; j++) {
                assertEquals(sourceU(1, i, j), p.get("taskCols").getDouble(j, i), 0.0);
            }
        }
        for (int j = 0; j < R; j++) {
            for (int c = 0; c < D; c++) {
                assertEquals(sourceV(1, j, c), p.get("taskRows").getDouble(c, j), 0.0);
            }
        }
    }

    @Test
    void onlySourceSharedCopiesThePromptAndStartsFreshFactors() {
        Map<String, INDArray> p = start(MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numTasks(2).numRanks(3)
                .initFromSourceShared(source).build());
        assertEquals(sourcePrompt(), p.get("prompt"));
        assertEquals(0.02, p.get("taskRows").stdNumber().doubleValue(), 0.35 * 0.02);
        assertEquals(3L, p.get("taskCols").size(0), "any rank: the factors are new");
    }

    @Test
    void sourceInitsThatCannotBeHonouredAreRefusedWithTheFix(@TempDir Path empty) {
        IllegalStateException s = assertThrows(IllegalStateException.class, () -> MultitaskPromptTuningConfig.builder()
                .numVirtualTokens(P).numTasks(2).initFromAverageOfSourceTasks(source).build());
        assertTrue(s.getMessage().contains("use numTasks(1), or initFromSourceShared"), s.getMessage());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> start(
                MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numRanks(1).initFromAverageOfSourceTasks(source)
                        .build()));
        assertTrue(e.getMessage().contains("of rank 2") && e.getMessage().contains("set numRanks(2)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> start(MultitaskPromptTuningConfig.builder()
                .numVirtualTokens(P).numRanks(R).initFromSourceTask(source, 3).build()));
        assertTrue(e.getMessage().contains("source task 3 does not exist") && e.getMessage().contains("3 tasks (0 … 2)"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> start(MultitaskPromptTuningConfig.builder()
                .numVirtualTokens(P + 1).initFromSourceShared(source).build()));
        assertTrue(e.getMessage().contains("prompt_embeddings in") && e.getMessage().contains("expected [5, 16]"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> start(MultitaskPromptTuningConfig.builder()
                .numVirtualTokens(P).initFromSourceShared(empty.resolve("none.safetensors")).build()));
        assertTrue(e.getMessage().contains("does not exist; give the adapter_model.safetensors"), e.getMessage());
    }

    @Test
    void aSavedSourceInitReloadsWithoutItsSourceFile(@TempDir Path dir) throws IOException {
        PeftModel target = Peft.wrap(base, MultitaskPromptTuningConfig.builder().numVirtualTokens(P).numRanks(R)
                .initFromAverageOfSourceTasks(source).build());
        target.saveAdapter(dir);
        assertTrue(java.nio.file.Files.readString(dir.resolve("adapter_config.json"))
                .contains("\"prompt_tuning_init\": \"AVERAGE_SOURCE_TASKS\""));
        PeftModel back = Peft.load(base, dir);
        assertEquals(MultitaskPromptInit.RANDOM, ((MultitaskPromptTuningConfig) back.config()).init(),
                "the start is replaced by the saved tensors");
        assertEquals(target.graph().getLayer(MultitaskPromptTuningTest.TASK_PROMPT).params(),
                back.graph().getLayer(MultitaskPromptTuningTest.TASK_PROMPT).params());
        assertNotEquals(null, back);
        AdapterFormatException bad = assertThrows(AdapterFormatException.class, () -> new MultitaskPromptTuningConfigFactory()
                .fromAdapterConfig(Map.of("num_virtual_tokens", 2, "prompt_tuning_init", "SAMPLE_VOCAB")));
        assertTrue(bad.getMessage().contains("\"prompt_tuning_init\" must be one of"), bad.getMessage());
    }
}
