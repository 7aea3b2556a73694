package org.peft4j.core.mpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.peft4j.core.spi.PeftJson;

/** The config: validating setters, every field in equality and text, and the adapter_config.json round trip. */
class MultitaskPromptTuningConfigTest {

    private static void refused(Executable call, String message) {
        Exception e = assertThrows(RuntimeException.class, call);
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void settersRefuseBadValuesAtOnceWithTheValue() {
        refused(() -> MultitaskPromptTuningConfig.builder().numVirtualTokens(0), "numVirtualTokens must be positive; got 0");
        refused(() -> MultitaskPromptTuningConfig.builder().numTasks(0), "numTasks must be positive; got 0");
        refused(() -> MultitaskPromptTuningConfig.builder().numRanks(-1), "numRanks must be positive; got -1");
        refused(() -> MultitaskPromptTuningConfig.builder().initFromTokens(), "give at least one token id");
        refused(() -> MultitaskPromptTuningConfig.builder().initFromTokens(3, -1), "must not be negative; got [3, -1]");
        refused(() -> MultitaskPromptTuningConfig.builder().initFromSourceTask(Path.of("a"), -2),
                "the source task must not be negative; got -2");
        refused(() -> MultitaskPromptTuningConfig.builder().initFromSourceShared(null), "needs the source adapter's weights");
        refused(() -> MultitaskPromptTuningConfig.builder().taskInput(" "), "taskInput must not be null or blank");
        refused(() -> MultitaskPromptTuningConfig.builder().build(), "numVirtualTokens must be set");
    }

    @Test
    void adapterConfigReadsBackToAnEqualConfig() {
        MultitaskPromptTuningConfig text = MultitaskPromptTuningConfig.builder().numVirtualTokens(5).numTasks(3).numRanks(2)
                .initFromTokens(4, 1).embeddingLayer("emb").outputLayer("out").taskInput("task").modulesToSave("head2")
                .build();
        MultitaskPromptTuningConfig random = MultitaskPromptTuningConfig.builder().numVirtualTokens(5).numTasks(3)
                .numRanks(2).build();
        for (MultitaskPromptTuningConfig c : new MultitaskPromptTuningConfig[] {text, random}) {
            Map<String, Object> json = PeftJson.parseObject(PeftJson.write(c.toAdapterConfig()).getBytes(
                    java.nio.charset.StandardCharsets.UTF_8), "test");
            assertEquals(c, new MultitaskPromptTuningConfigFactory().fromAdapterConfig(json));
        }
        assertNotEquals(text, random);
        assertNotEquals(text.hashCode(), random.hashCode());
        assertEquals("MultitaskPromptTuningConfig(numVirtualTokens=5, numTasks=3, numRanks=2, init=TEXT, initTokens=[4, 1], "
                + "initStatePath=null, initTask=0, embeddingLayer=emb, outputLayer=out, taskInput=task, "
                + "modulesToSave=[head2])", text.toString());
    }
}
