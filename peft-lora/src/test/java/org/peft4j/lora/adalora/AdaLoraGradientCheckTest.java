package org.peft4j.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.BiasMode;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.adalora.internal.AdaLoraTestHooks;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FamilyGraphs;

/**
 * The hand-written backward passes of AdaLoRA on dense layers and 2D convolutions against finite
 * differences in double precision ({@code GradientCheckUtil}, every parameter), with the
 * orthogonal regularizer on (an allocator bound to the model switches it on; DL4J's updater
 * applies it as a regularization of {@code A} and {@code B}, and the score includes it, so the
 * check covers its gradient too). Each target has a layer trained in full below it, so its input
 * gradient is checked through that layer's gradient. Factors and singular values are random first
 * ({@code E = 0} at init would hide terms); dropout checks pin the mask of the first training pass.
 */
class AdaLoraGradientCheckTest {
    private static DataType before;

    @BeforeAll
    static void doublePrecision() {
        before = Nd4j.dataType();
        GradientChecks.useDoublePrecision();
    }

    @AfterAll
    static void restore() {
        Nd4j.setDefaultDataTypes(before, before);
    }

    private static boolean passes(PeftModel peft, DataSet ds) {
        AdaLoraTestHooks.pinDropoutMasks(peft.graph(), true);
        try {
            return GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels());
        } finally {
            AdaLoraTestHooks.pinDropoutMasks(peft.graph(), false);
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void denseLayersWithTrainableBiasesAndTheRegularizer(boolean dropout) {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(31);
        PeftModel peft = Peft.wrap(base, AdaLoraConfig.builder().initR(3).targetR(2).alpha(5).totalStep(10)
                .orthRegWeight(0.7).dropout(dropout ? 0.3 : 0.0).bias(BiasMode.LORA_ONLY)
                .targetModules("dense1", "dense2", "output").modulesToSave("dense0").build());
        AdaLoraGraphs.randomize(peft, 3);
        new AdaLoraAllocator(peft);
        assertTrue(passes(peft, TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3)));
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void convolution2dWithTheRegularizer(boolean dropout) {
        ComputationGraph base = FamilyGraphs.cnn2d(DataType.DOUBLE, new NoOp(), 32);
        PeftModel peft = Peft.wrap(base, AdaLoraConfig.builder().initR(2).targetR(1).alpha(3).totalStep(10)
                .dropout(dropout ? 0.3 : 0.0).bias(BiasMode.LORA_ONLY).targetModules("conv", "conv1x1")
                .modulesToSave("pre").build());
        AdaLoraGraphs.randomize(peft, 4);
        new AdaLoraAllocator(peft);
        assertTrue(passes(peft, FamilyGraphs.data(base, false, DataType.DOUBLE, 5, 2)));
    }

    /**
     * The regularizer enters the score as PEFT adds it to the loss, {@code w · R} with {@code R} the
     * mean of {@code ‖A·Aᵀ − I‖} and {@code ‖Bᵀ·B − I‖} over the model's factors: with the
     * fixture's parameters, the score rises by its {@code orth_reg_loss_term}.
     */
    @Test
    void theRegularizerAddsPeftsLossTermToTheScore() {
        FamilyCase c = FamilyCase.of("adalora/allocator");
        PeftModel peft = Peft.wrap(AdaLoraGraphs.qv(DataType.DOUBLE, new NoOp(), 6), AdaLoraConfig.builder().initR(3)
                .targetR(1).totalStep(8).orthRegWeight(c.info().get("orth_reg_weight").asDouble())
                .targetModules("q", "v").build());
        ComputationGraph g = peft.graph();
        for (String layer : List.of("q", "v")) {
            for (String[] f : new String[][] {{AdaLoraLayer.LORA_A, "lora_A"}, {AdaLoraLayer.LORA_E, "lora_E"},
                {AdaLoraLayer.LORA_B, "lora_B"}}) {
                INDArray p = g.getLayer(layer).getParam(f[0]);
                p.assign(c.ref("step2.param." + layer + "." + f[1]).reshape(p.shape()));
            }
        }
        DataSet ds = new DataSet(Nd4j.rand(DataType.DOUBLE, 3, 4), Nd4j.rand(DataType.DOUBLE, 3, 2));
        double without = g.score(ds, true);
        new AdaLoraAllocator(peft);
        double with = g.score(ds, true);
        assertEquals(c.info().get("orth_reg_loss_term").asDouble(), with - without, 1e-9);
    }
}
