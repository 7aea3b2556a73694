package org.peft4j.core.prompt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyDecoders;

/** Prompt tuning on the peft4j decoder: gradients, p = 0, masks, TEXT init, labels of length T. */
class PromptTuningTest {

    private static INDArray mask(DataType dt, int batch, int time) {
        INDArray m = Nd4j.ones(dt, batch, time);
        m.putScalar(0, time - 1, 0);
        m.putScalar(1, time - 1, 0);
        m.putScalar(1, time - 2, 0);
        return m;
    }

    @Test
    void promptMatchesFiniteDifferencesWithMasksAndATrainableLayerAbove() {
        GradientChecks.useDoublePrecision();
        ComputationGraph base = TinyDecoders.forGradientCheck(3);
        PeftModel peft = Peft.wrap(base, PromptTuningConfig.builder().numVirtualTokens(2).modulesToSave("block0.ln1").build());
        DataSet ds = TinyDecoders.domain(DataType.DOUBLE, 4, 2, 4, 5, 1, 0.2);
        assertTrue(TinyDecoders.gradientsPass(peft.graph(), ds.getFeatures(), ds.getLabels(), mask(DataType.DOUBLE, 2, 4)));
    }

    @Test
    void zeroVirtualTokensIsExactlyTheBaseModel() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 2, 16);
        PeftModel peft = Peft.wrap(base, PromptTuningConfig.builder().numVirtualTokens(0).build());
        DataSet ds = TinyDecoders.domain(DataType.FLOAT, 8, 3, 6, 11, 1, 0.1);
        assertEquals(base.outputSingle(ds.getFeatures()), peft.graph().outputSingle(ds.getFeatures()));
        assertEquals(0, peft.trainableParameters());
    }

    @Test
    void outputsKeepTheCallersLengthAndTrainingWorksWithMasksAndLabels() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 2, 16);
        PeftModel peft = Peft.wrap(base, PromptTuningConfig.builder().numVirtualTokens(4).build());
        assertEquals(Set.of("embed.tokens.prompt", "head.trim"), peft.tunerLayers().keySet());
        assertEquals(16 * 4, peft.trainableParameters());
        DataSet ds = TinyDecoders.domain(DataType.FLOAT, 8, 4, 6, 11, 3, 0.1);
        INDArray m = mask(DataType.FLOAT, 4, 6);
        ds.setFeaturesMaskArray(m);
        ds.setLabelsMaskArray(m);
        INDArray out = peft.graph().output(false, new INDArray[] {ds.getFeatures()}, new INDArray[] {m})[0];
        assertArrayEquals(new long[] {4, 11, 6}, out.shape());
        INDArray promptBefore = peft.graph().getLayer("embed.tokens.prompt").getParam(PromptEmbeddingLayer.PROMPT_KEY).dup();
        INDArray frozen = base.params().dup();
        double before = peft.graph().score(ds);
        for (int i = 0; i < 5; i++) {
            peft.graph().fit(ds);
        }
        assertTrue(peft.graph().score(ds) < before, "loss " + before + " -> " + peft.graph().score(ds));
        assertNotEquals(promptBefore, peft.graph().getLayer("embed.tokens.prompt").getParam(PromptEmbeddingLayer.PROMPT_KEY));
        assertEquals(frozen, base.params());
        var off = peft.disableAdapter();
        try (off) {
            assertEquals(base.outputSingle(ds.getFeatures()), peft.graph().outputSingle(ds.getFeatures()));
        }
    }

    @Test
    void textInitCopiesTheBaseEmbeddingRowsCyclically() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 1, 16);
        PeftModel peft = Peft.wrap(base, PromptTuningConfig.builder().numVirtualTokens(3).initFromTokens(5, 2).build());
        INDArray prompt = peft.graph().getLayer("embed.tokens.prompt").getParam(PromptEmbeddingLayer.PROMPT_KEY);
        INDArray table = base.getLayer("embed.tokens").getParam("W");
        assertEquals(table.getRow(5), prompt.getColumn(0));
        assertEquals(table.getRow(2), prompt.getColumn(1));
        assertEquals(table.getRow(5), prompt.getColumn(2));
    }

    @Test
    void configValidationAndMergeRefusal() {
        assertThrows(IllegalStateException.class, () -> PromptTuningConfig.builder().build());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PromptTuningConfig.builder().initFromTokens(1, -2))
                .getMessage().contains("token ids must not be negative; got [1, -2]"));
        PromptTuningConfig c = PromptTuningConfig.builder().numVirtualTokens(8).initFromTokens(1, 2).build();
        assertEquals("PromptTuningConfig(numVirtualTokens=8, init=TEXT, initTokens=[1, 2], embeddingLayer=embed.tokens, "
                + "outputLayer=head, modulesToSave=[])", c.toString());
        assertEquals(c, c.toBuilder().build());
        assertEquals(c.hashCode(), c.toBuilder().build().hashCode());
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 1, 16);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(base,
                PromptTuningConfig.builder().numVirtualTokens(2).initFromTokens(11).build()));
        assertTrue(e.getMessage().contains("init token id 11 is outside the vocabulary of \"embed.tokens\" (11 tokens)"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(base,
                PromptTuningConfig.builder().numVirtualTokens(2).embeddingLayer("wte").build()));
        assertTrue(e.getMessage().contains("no embedding layer named \"wte\"; layers are: embed.tokens (EmbeddingSequenceLayer)"),
                e.getMessage());
        PeftModel peft = Peft.wrap(base, PromptTuningConfig.builder().numVirtualTokens(2).build());
        assertTrue(assertThrows(IllegalStateException.class, peft::mergeAndUnload).getMessage().contains("PROMPT_TUNING"));
    }
}
