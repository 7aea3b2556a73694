package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;

/**
 * A QLoRA checkpoint saved before issue 26 (format 1: the 4-bit spec and the digests in a
 * {@code "peft4j"} object inside {@code adapter_config.json}; {@code legacy-format-1/README.md} says how
 * it was made) resumes through the QLoRA hook exactly as an uninterrupted run goes on, and resuming it
 * without the hook is still refused, reading the spec from that object.
 */
class LegacyQloraCheckpointTest {

    private static final QuantSpec SPEC = QuantSpec.nf4().withDoubleQuant(true).withBlockSize(64);

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4);
    }

    private static LoraConfig lora() {
        return LoraConfig.builder().rank(4).alpha(8).targetModules(TargetModules.ALL_LINEAR).build();
    }

    private static Path fixture() throws Exception {
        return Path.of(LegacyQloraCheckpointTest.class.getResource("/legacy-format-1/qlora-checkpoint").toURI());
    }

    @Test
    void aFormatOneQloraCheckpointResumesExactly() throws Exception {
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        PeftModel straight = Peft.wrap(base(), QLoraConfig.of(lora(), SPEC));
        for (int i = 0; i < 5; i++) {
            straight.graph().fit(ds);
        }
        PeftModel resumed = PeftModel.resume(base(), fixture(), c -> QLoraConfig.of((LoraConfig) c, SPEC));
        assertInstanceOf(QLoraConfig.class, resumed.config());
        for (int i = 0; i < 2; i++) {
            resumed.graph().fit(ds);
        }
        assertEquals(straight.graph().params(), resumed.graph().params(), "3 steps saved + 2 resumed = 5 straight");
    }

    @Test
    void resumingItWithoutTheHookIsRefused() throws Exception {
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class,
                () -> PeftModel.resume(base(), fixture()));
        assertTrue(e.getMessage().startsWith(fixture().resolve("adapter_config.json") + " was saved by a model that held "
                + "its frozen base as {blocksize=64, double_quant=true, frozen_layers_quantized=false, quant_type=nf4}"),
                e.getMessage());
    }
}
