package org.peft4j.core.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyDecoders;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;

/**
 * DPO over a 4-bit base: the reference is the QLoRA model with its adapters disabled (the NF4
 * base, the model QLoRA fine-tunes), so the first loss is {@code log 2}, training lowers it, and
 * the reference does not move.
 */
class QLoraPreferenceTest {

    @Test
    void dpoOnAFourBitBaseStartsAtLogTwoAndKeepsItsReference() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(2e-2), 8, 6, 64, 1, 12);
        LoraConfig lora = LoraConfig.builder().rank(4).alpha(8).targetModulesRegex("block\\d+\\.attn\\.(q|v)").build();
        PeftModel peft = Peft.wrap(base, QLoraConfig.of(lora, QuantSpec.nf4().withBlockSize(64))
                .quantizeFrozenLayers(true));
        List<PreferencePair> train = List.of(new PreferencePair(new int[] {1, 2}, new int[] {2, 2}, new int[] {3, 4}),
                new PreferencePair(new int[] {5}, new int[] {5, 5, 5}, new int[] {0, 1, 2}));
        List<int[]> prompts = train.stream().map(PreferencePair::prompt).toList();
        List<int[]> chosen = train.stream().map(PreferencePair::chosen).toList();
        double[] ref;
        try (PeftModel.AdapterScope off = peft.disableAdapter()) {
            ref = Sequences.logProbs(peft.graph(), prompts, chosen);
        }
        DpoTrainer dpo = new DpoTrainer(peft, DpoConfig.builder().build());
        assertEquals(Math.log(2), dpo.step(train).loss(), 0.0);
        for (int s = 0; s < 10; s++) {
            dpo.step(train);
        }
        try (PeftModel.AdapterScope off = peft.disableAdapter()) {
            assertArrayEquals(ref, Sequences.logProbs(peft.graph(), prompts, chosen), 0.0);
        }
        assertTrue(dpo.evaluate(train).loss() < Math.log(2) - 0.1, "DPO should learn the pairs");
    }
}
