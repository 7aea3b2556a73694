package org.peft4j.core;

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
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.GradientChecks;

/**
 * The decoder's tuner configurations apply unchanged to the encoder (same layer names): IA3 on
 * {@code attn.k|v} and {@code mlp.down}, Houlsby and Pfeiffer adapters find their targets, each is
 * the identity at init on the masked pooled output, and the wrapped encoder passes the gradient check.
 */
class TunersOnEncoderTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    private static ComputationGraph encoder() {
        return Transformers.encoder().vocabSize(7).maxLength(6).dModel(8).heads(2).layers(2).mlpRatio(2).classes(3)
                .dataType(DataType.DOUBLE).updater(new NoOp()).seed(11).build();
    }

    private static final INDArray TOKENS = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4}, {2, 6, 1, 0}});
    private static final INDArray MASK = Nd4j.createFromArray(new double[][] {{1, 1, 1, 1}, {1, 1, 0, 0}});
    private static final INDArray LABELS = Nd4j.createFromArray(new double[][] {{0, 1, 0}, {0, 0, 1}});

    private static INDArray out(ComputationGraph g) {
        return g.output(false, new INDArray[] {TOKENS}, new INDArray[] {MASK})[0];
    }

    @Test
    void ia3TargetsKeyValueAndMlpDownAndIsTheIdentityAtInit() {
        ComputationGraph base = encoder();
        PeftModel peft = Peft.wrap(base, Ia3Config.builder()
                .targetModulesRegex("block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down")
                .feedforwardModulesRegex("block\\d+\\.mlp\\.down").build());
        assertEquals(Set.of("block0.attn.k", "block0.attn.v", "block0.mlp.down", "block1.attn.k", "block1.attn.v",
                "block1.mlp.down"), peft.adaptedLayers().keySet());
        assertTrue(out(base).equalsWithEps(out(peft.graph()), 1e-12));
        assertTrue(GradientChecks.passes(peft.graph(), TOKENS, LABELS, MASK, null));
    }

    @Test
    void houlsbyAndPfeifferAdaptersFindTheirTargetsAndAreTheIdentityAtInit() {
        ComputationGraph base = encoder();
        PeftModel houlsby = Peft.wrap(base, AdapterConfig.builder().houlsby().reductionFactor(2).build());
        assertEquals(Set.of("block0.attn.o.adapter", "block0.mlp.down.adapter", "block1.attn.o.adapter",
                "block1.mlp.down.adapter"), houlsby.tunerLayers().keySet());
        assertTrue(out(base).equalsWithEps(out(houlsby.graph()), 1e-12));
        PeftModel pfeiffer = Peft.wrap(base, AdapterConfig.builder().pfeiffer().reductionFactor(2).build());
        assertEquals(Set.of("block0.mlp.down.adapter", "block1.mlp.down.adapter"), pfeiffer.tunerLayers().keySet());
        assertTrue(out(base).equalsWithEps(out(pfeiffer.graph()), 1e-12));
        assertTrue(GradientChecks.passes(houlsby.graph(), TOKENS, LABELS, MASK, null));
    }
}
