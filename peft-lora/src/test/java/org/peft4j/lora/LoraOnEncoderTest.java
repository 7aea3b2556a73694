package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.testing.GradientChecks;

/**
 * LoRA on the query and value projections of peft4j's BERT-style encoder: the decoder's target regex
 * finds them, the wrapped encoder is the identity at init on the masked pooled output and on the
 * classifier, and it passes the gradient check with a padding mask.
 */
class LoraOnEncoderTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    @Test
    void loraOnQueryAndValueProjectionsOfTheEncoder() {
        ComputationGraph base = Transformers.encoder().vocabSize(5).maxLength(6).dModel(4).heads(2).layers(1)
                .mlpRatio(2).classes(2).dataType(DataType.DOUBLE).updater(new NoOp()).seed(3).build();
        INDArray tokens = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4}, {2, 2, 1, 0}});
        INDArray labels = Nd4j.createFromArray(new double[][] {{1, 0}, {0, 1}});
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 1, 1}, {1, 1, 1, 0}});
        INDArray before = base.output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0];

        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(4)
                .targetModulesRegex("block\\d+\\.attn\\.(q|v)").modulesToSave("classifier").build());
        assertEquals(Set.of("block0.attn.q", "block0.attn.v"), peft.adaptedLayers().keySet());
        INDArray after = peft.graph().output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0];
        assertTrue(before.equalsWithEps(after, 1e-12), "identity at init");

        Nd4j.getRandom().setSeed(7);
        peft.adaptedLayers().keySet().forEach(name -> {
            INDArray b = peft.graph().getLayer(name).getParam(LoraDenseLayer.LORA_B);
            b.assign(Nd4j.randn(DataType.DOUBLE, b.shape()).muli(0.5));
        });
        assertTrue(GradientChecks.passes(peft.graph(), tokens, labels, mask, null));
    }
}
