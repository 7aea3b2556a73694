package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.CNN2DFormat;
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
import org.peft4j.lora.internal.LoraTestHooks;

/**
 * The hand-written backward passes of LoRA on embeddings and convolutions and of DoRA on every
 * kind, against finite differences in double precision ({@code GradientCheckUtil}, every parameter).
 * Convolution and dense targets have a layer trained in full below them, so their input gradient
 * is checked through that layer's gradient; an embedding's input is token indices (no gradient).
 * The factors and magnitudes are first given random values (at init {@code B = 0}, or {@code A = 0}
 * for an embedding, and {@code m = ‖W‖}, which would hide terms).
 *
 * <p>DoRA's norm is a constant in its backward pass by design (the paper's §4.3), while finite
 * differences move it with {@code A} and {@code B}: the DoRA checks pin it at its current value
 * (a test hook), and {@link #unpinnedDoraNormIsDetachedSoFiniteDifferencesDisagree} shows that
 * without the pin finite differences see another derivative. Dropout checks pin the mask of the first training pass.
 */
class LoraKindsGradientCheckTest {
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

    /** Random factors, and magnitudes moved off the norms, in every adapted layer. */
    static void randomize(PeftModel peft, long seed) {
        Nd4j.getRandom().setSeed(seed);
        for (String name : peft.adaptedLayers().keySet()) {
            var layer = peft.graph().getLayer(name);
            for (String k : new String[] {LoraDenseLayer.LORA_A, LoraDenseLayer.LORA_B}) {
                INDArray p = layer.getParam(k);
                p.assign(Nd4j.randn(p.dataType(), p.shape()).muli(0.5));
            }
            INDArray m = layer.paramTable().get(LoraDenseLayer.LORA_M);
            if (m != null) {
                m.muli(Nd4j.rand(m.dataType(), m.shape()).muli(0.6).addi(0.7));
            }
        }
    }

    private static boolean passes(PeftModel peft, DataSet ds, boolean pinNorm, boolean pinMask) {
        LoraTestHooks.pinWeightNorms(peft.graph(), pinNorm);
        LoraTestHooks.pinDropoutMasks(peft.graph(), pinMask);
        return GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels());
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void doraOnDenseLayersWithTrainableBiasesAndRsLora(boolean dropout) {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(11);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(3).useRsLora(true).useDora(true)
                .dropout(dropout ? 0.3 : 0.0).bias(BiasMode.ALL).targetModules("dense1", "dense2", "output")
                .modulesToSave("dense0").build());
        randomize(peft, 3);
        assertTrue(passes(peft, TinyGraphs.classification(DataType.DOUBLE, 4, 4, 5, 3), true, dropout));
    }

    /** {@code (score(p + h) − score(p − h)) / 2h} for element {@code (r, c)} of the parameter {@code p}, restoring it. */
    private static double centralDifference(ComputationGraph g, DataSet ds, INDArray p, int r, int c) {
        double v = p.getDouble(r, c);
        double h = 1e-6;
        p.putScalar(r, c, v + h);
        double plus = g.score(ds, true);
        p.putScalar(r, c, v - h);
        double minus = g.score(ds, true);
        p.putScalar(r, c, v);
        return (plus - minus) / (2 * h);
    }

    @Test
    void unpinnedDoraNormIsDetachedSoFiniteDifferencesDisagree() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(12);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(3).useDora(true).targetModules("dense1")
                .build());
        randomize(peft, 4);
        ComputationGraph g = peft.graph();
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 5, 4, 5, 3);
        g.setInputs(ds.getFeatures());
        g.setLabels(ds.getLabels());
        g.computeGradientAndScore();
        // DL4J's backward pass gives the gradient of the summed loss (its updater divides by the minibatch
        // size); score() is the mean
        INDArray analytic = g.getGradient().getGradientFor("dense1_" + LoraDenseLayer.LORA_B).div(ds.numExamples());
        INDArray b = g.getLayer("dense1").getParam(LoraDenseLayer.LORA_B);
        int r = 0;
        int c = 0;
        for (int i = 0; i < analytic.rows(); i++) {
            for (int j = 0; j < analytic.columns(); j++) {
                if (Math.abs(analytic.getDouble(i, j)) > Math.abs(analytic.getDouble(r, c))) {
                    r = i;
                    c = j;
                }
            }
        }
        double a = analytic.getDouble(r, c);
        double full = centralDifference(g, ds, b, r, c);
        assertTrue(Math.abs(full - a) > 1e-3 * Math.abs(a), "the backward pass treats the norm as a constant, so the "
                + "full derivative differs: analytic " + a + ", finite difference " + full);
        LoraTestHooks.pinWeightNorms(g, true);
        double pinned = centralDifference(g, ds, b, r, c);
        assertEquals(a, pinned, 1e-6 * Math.abs(a), "with the norm held, finite differences agree");
    }

    @Test
    void loraDropoutOnDenseLayersWithAPinnedMask() {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(13);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(2).dropout(0.4)
                .targetModules("dense1", "output").modulesToSave("dense0").build());
        randomize(peft, 5);
        assertTrue(passes(peft, TinyGraphs.classification(DataType.DOUBLE, 6, 4, 5, 3), false, true));
    }

    @ParameterizedTest
    @ValueSource(strings = {"lora", "dora", "lora-dropout", "dora-dropout-nhwc"})
    void convolution2d(String variant) {
        CNN2DFormat format = variant.endsWith("nhwc") ? CNN2DFormat.NHWC : CNN2DFormat.NCHW;
        ComputationGraph base = KindGraphs.conv2d(DataType.DOUBLE, new NoOp(), 21, format);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(3).useDora(variant.startsWith("dora"))
                .dropout(variant.contains("dropout") ? 0.3 : 0.0).bias(BiasMode.LORA_ONLY).targetModules("conv")
                .modulesToSave("pre").build());
        randomize(peft, 6);
        assertTrue(passes(peft, KindGraphs.images(DataType.DOUBLE, 7, 2, format), true, true), variant);
    }

    @ParameterizedTest
    @ValueSource(strings = {"lora", "dora-dropout"})
    void convolution1d(String variant) {
        ComputationGraph base = KindGraphs.conv1d(DataType.DOUBLE, new NoOp(), 22);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(2).useDora(variant.startsWith("dora"))
                .dropout(variant.endsWith("dropout") ? 0.3 : 0.0).bias(BiasMode.LORA_ONLY).targetModules("conv")
                .modulesToSave("pre").build());
        randomize(peft, 8);
        assertTrue(passes(peft, KindGraphs.sequences(DataType.DOUBLE, 9, 2), true, true), variant);
    }

    @ParameterizedTest
    @ValueSource(strings = {"lora-sequence", "dora-single"})
    void embedding(String variant) {
        boolean sequence = variant.endsWith("sequence");
        ComputationGraph base = KindGraphs.embedding(DataType.DOUBLE, new NoOp(), 23, sequence);
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(4).useDora(variant.startsWith("dora"))
                .bias(BiasMode.LORA_ONLY).targetModules("embed", "head").build());
        randomize(peft, 10);
        assertTrue(passes(peft, KindGraphs.tokens(DataType.DOUBLE, 11, 3, sequence), true, false), variant);
    }
}
