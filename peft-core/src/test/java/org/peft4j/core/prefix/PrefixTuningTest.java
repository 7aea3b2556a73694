package org.peft4j.core.prefix;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
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
import org.peft4j.core.testing.TinyGraphs;

/** Prefix tuning on the peft4j decoder: gradients, p = 0, masks, folding, validation. */
class PrefixTuningTest {

    private static INDArray mask(int batch, int time) {
        INDArray m = Nd4j.ones(DataType.DOUBLE, batch, time);
        m.putScalar(0, time - 1, 0);
        m.putScalar(1, time - 1, 0);
        m.putScalar(1, time - 2, 0);
        return m;
    }

    @Test
    void plainPrefixesMatchFiniteDifferencesWithMasksAndATrainableLayerBelow() {
        GradientChecks.useDoublePrecision();
        ComputationGraph base = TinyDecoders.forGradientCheck(3);
        PeftModel peft = Peft.wrap(base, PrefixConfig.builder().numVirtualTokens(2).modulesToSave("block0.ln1").build());
        DataSet ds = TinyDecoders.domain(DataType.DOUBLE, 4, 2, 4, 5, 1, 0.2);
        assertTrue(TinyDecoders.gradientsPass(peft.graph(), ds.getFeatures(), ds.getLabels(), mask(2, 4)));
    }

    @Test
    void reparameterisedPrefixesMatchFiniteDifferences() {
        GradientChecks.useDoublePrecision();
        ComputationGraph base = TinyDecoders.forGradientCheck(5);
        PeftModel peft = Peft.wrap(base, PrefixConfig.builder().numVirtualTokens(2).encoderHiddenSize(2).build());
        DataSet ds = TinyDecoders.domain(DataType.DOUBLE, 6, 2, 3, 5, 2, 0.2);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @Test
    void zeroVirtualTokensIsExactlyTheBaseModel() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 2, 16);
        PeftModel peft = Peft.wrap(base, PrefixConfig.builder().numVirtualTokens(0).build());
        DataSet ds = TinyDecoders.domain(DataType.FLOAT, 8, 3, 6, 11, 1, 0.1);
        assertEquals(base.outputSingle(ds.getFeatures()), peft.graph().outputSingle(ds.getFeatures()));
        assertEquals(0, peft.trainableParameters());
        // with a padding mask: equal at every real (unmasked) position
        INDArray m = mask(3, 6).castTo(DataType.FLOAT);
        INDArray keep = m.reshape(3, 1, 6);
        INDArray expected = base.output(false, new INDArray[] {ds.getFeatures()}, new INDArray[] {m})[0];
        INDArray actual = peft.graph().output(false, new INDArray[] {ds.getFeatures()}, new INDArray[] {m})[0];
        assertEquals(expected.mul(keep.broadcast(expected.shape())), actual.mul(keep.broadcast(actual.shape())));
    }

    @Test
    void prefixIsVisibleToTheFirstQueryDespiteTheCausalMask() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 1, 16);
        PeftModel peft = Peft.wrap(base, PrefixConfig.builder().numVirtualTokens(3).build());
        DataSet ds = TinyDecoders.domain(DataType.FLOAT, 8, 2, 5, 11, 1, 0.1);
        INDArray b = base.outputSingle(ds.getFeatures());
        INDArray p = peft.graph().outputSingle(ds.getFeatures());
        for (int t = 0; t < 5; t++) {
            double diff = b.get(org.nd4j.linalg.indexing.NDArrayIndex.all(), org.nd4j.linalg.indexing.NDArrayIndex.all(),
                    org.nd4j.linalg.indexing.NDArrayIndex.point(t)).sub(p.get(org.nd4j.linalg.indexing.NDArrayIndex.all(),
                    org.nd4j.linalg.indexing.NDArrayIndex.all(), org.nd4j.linalg.indexing.NDArrayIndex.point(t)))
                    .amaxNumber().doubleValue();
            assertTrue(diff > 1e-6, "position " + t + " sees the prefix");
        }
        var off = peft.disableAdapter();
        try (off) {
            assertEquals(b, peft.graph().outputSingle(ds.getFeatures()));
        }
    }

    @Test
    void foldingTheMlpKeepsOutputsSurvivesJsonAndRefusesTraining() {
        ComputationGraph base = TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 2, 16);
        PeftModel peft = Peft.wrap(base, PrefixConfig.builder().numVirtualTokens(4).encoderHiddenSize(8).build());
        assertEquals(Set.of("block0.attn.prefix", "block0.attn.core", "block1.attn.prefix", "block1.attn.core"),
                peft.tunerLayers().keySet());
        assertEquals(2 * (16 * 4 + 16 * 8 + 8 + 8 * 32 + 32), peft.trainableParameters());
        DataSet train = TinyDecoders.domain(DataType.FLOAT, 9, 8, 8, 11, 3, 0.1);
        for (int i = 0; i < 3; i++) {
            peft.graph().fit(train);
        }
        // same batch size as training: the decoder's reshape vertices read the graph's last input batch size
        INDArray x = TinyDecoders.domain(DataType.FLOAT, 10, 8, 6, 11, 3, 0.1).getFeatures();
        INDArray before = peft.graph().outputSingle(x);
        assertEquals(2, PrefixConfig.foldReparameterization(peft));
        INDArray folded = peft.graph().outputSingle(x);
        assertTrue(before.sub(folded).amaxNumber().doubleValue() <= 1e-5);
        ComputationGraph fromJson = new ComputationGraph(ComputationGraphConfiguration.fromJson(
                peft.graph().getConfiguration().toJson()));
        fromJson.init(peft.graph().params().dup(), false);
        assertEquals(folded, fromJson.outputSingle(x), "folded prefixes travel with the configuration");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> peft.graph().fit(train));
        assertTrue(e.getMessage().contains("unfoldReparameterization"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> PrefixConfig.foldReparameterization(peft));
        assertEquals(2, PrefixConfig.unfoldReparameterization(peft));
        peft.graph().fit(train);
        assertNotEquals(before, peft.graph().outputSingle(x));
    }

    @Test
    void configValidationAndMergeRefusal() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PrefixConfig.builder().numVirtualTokens(-1))
                .getMessage().contains("numVirtualTokens must not be negative; got -1"));
        assertThrows(IllegalStateException.class, () -> PrefixConfig.builder().build());
        assertThrows(IllegalArgumentException.class, () -> PrefixConfig.builder().encoderHiddenSize(0));
        PrefixConfig c = PrefixConfig.builder().numVirtualTokens(8).encoderHiddenSize(32).modulesToSave("head").build();
        assertEquals("PrefixConfig(numVirtualTokens=8, encoderHiddenSize=32, modulesToSave=[head])", c.toString());
        assertEquals(c, c.toBuilder().build());
        assertEquals(c.hashCode(), c.toBuilder().build().hashCode());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Peft.wrap(
                TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 1, 4, 4, 2), PrefixConfig.builder().numVirtualTokens(2).build()));
        assertTrue(e.getMessage().contains("the graph has no attention core"), e.getMessage());
        PeftModel peft = Peft.wrap(TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 7, 11, 16, 1, 16),
                PrefixConfig.builder().numVirtualTokens(2).build());
        String msg = assertThrows(IllegalStateException.class, peft::mergeAndUnload).getMessage();
        assertTrue(msg.contains("PREFIX_TUNING adds layers that no stock DL4J layer can absorb [")
                && msg.contains("block0.attn.prefix") && msg.contains("block0.attn.core"), msg);
    }
}
