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
 * LoRA on the decomposed attention projections of peft4j's decoder: the dense projections
 * {@code block{i}.attn.q/v} are ordinary dense targets, identity holds at init, and the wrapped
 * decoder (masks included) passes the gradient check.
 */
class LoraOnDecoderTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    @Test
    void loraOnQueryAndValueProjectionsOfTheDecoder() {
        ComputationGraph base = Transformers.decoder().vocabSize(5).maxLength(6).dModel(4).heads(2).layers(1)
                .mlpRatio(2).dataType(DataType.DOUBLE).updater(new NoOp()).seed(3).build();
        INDArray tokens = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4}, {2, 2, 1, 0}});
        INDArray labels = Nd4j.createFromArray(new double[][] {{3, 0, 4, 1}, {2, 1, 0, 3}}).reshape(2, 1, 4);
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 1, 1}, {1, 1, 1, 0}});
        INDArray before = base.output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0];

        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(4)
                .targetModulesRegex("block\\d+\\.attn\\.(q|v)").modulesToSave("embed.tokens").build());
        assertEquals(Set.of("block0.attn.q", "block0.attn.v"), peft.adaptedLayers().keySet());
        INDArray after = peft.graph().output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0];
        // compared at real steps only: at a masked step the split head (RnnLossLayer) returns softmax(0),
        // uniform, where the stock RnnOutputLayer returns the real softmax (loss-neutral, seen in M2.1)
        INDArray keep = mask.reshape(2, 1, 4);
        assertTrue(before.mul(keep).equalsWithEps(after.mul(keep), 1e-12), "identity at init");

        Nd4j.getRandom().setSeed(7);
        peft.adaptedLayers().keySet().forEach(name -> {
            INDArray b = peft.graph().getLayer(name).getParam(LoraDenseLayer.LORA_B);
            b.assign(Nd4j.randn(DataType.DOUBLE, b.shape()).muli(0.5));
        });
        assertTrue(GradientChecks.passes(peft.graph(), tokens, labels, mask, mask));
    }
}
