package org.peft4j.lora.lycoris;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.stream.Stream;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.loha.LoHaConfig;
import org.peft4j.lora.lokr.LoKrConfig;
import org.peft4j.lora.testing.FamilyGraphs;

/**
 * LoHa's and LoKr's hand-written backprop against finite differences (double precision), for
 * every form of their factors, on dense layers (hidden and output) and on 2D and 1D convolutions
 * (a 3×3 / 3-tap kernel, and a 1×1 one where the effective form does not apply). Their inits zero one factor, which would make most
 * gradients trivially zero, so every check first gives all factors random values. A layer trained
 * in full sits below the targets in every graph, so the epsilon the targets pass down is checked
 * through its gradient.
 */
class LycorisGradientCheckTest {

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

    /** Dense graph: every form of the factors that a dense layer can have. */
    static Stream<Arguments> denseConfigs() {
        return Stream.of(
                Arguments.of("LoHa", LoHaConfig.builder().rank(2).alpha(3)),
                Arguments.of("LoKr full factors", LoKrConfig.builder().rank(4).alpha(2)),
                Arguments.of("LoKr low-rank w2", LoKrConfig.builder().rank(1).alpha(2)),
                Arguments.of("LoKr both low-rank", LoKrConfig.builder().rank(1).alpha(3).decomposeBoth(true)
                        .decomposeFactor(2)));
    }

    /** Convolutions: flat and effective (CP) forms, and LoKr's full 4-d / 3-d {@code w2}. */
    static Stream<Arguments> convConfigs() {
        return Stream.of(
                Arguments.of("LoHa", LoHaConfig.builder().rank(2).alpha(3)),
                Arguments.of("LoHa effective conv", LoHaConfig.builder().rank(2).alpha(2).useEffectiveConv2d(true)),
                Arguments.of("LoKr full w2", LoKrConfig.builder().rank(2).alpha(2)),
                Arguments.of("LoKr effective conv", LoKrConfig.builder().rank(1).alpha(2).useEffectiveConv2d(true)));
    }

    /**
     * 1D: the forms whose 1D layout differs from 2D (LoHa's 4-d core {@code [r, r, k, 1]}, LoKr's
     * 3-d {@code w2} in PEFT's other element order); the flat forms share the 2D row form.
     */
    static Stream<Arguments> conv1dConfigs() {
        return Stream.of(
                Arguments.of("LoHa effective conv", LoHaConfig.builder().rank(2).alpha(2).useEffectiveConv2d(true)),
                Arguments.of("LoKr full w2", LoKrConfig.builder().rank(2).alpha(2)));
    }

    private static PeftConfig build(Object builder, String save, String... targets) {
        if (builder instanceof LoHaConfig.Builder b) {
            return b.targetModules(targets).modulesToSave(save).build();
        }
        return ((LoKrConfig.Builder) builder).targetModules(targets).modulesToSave(save).build();
    }

    /** Gives every factor of every adapted layer random values, and returns how many factors there are. */
    private static int randomizeFactors(PeftModel peft) {
        Nd4j.getRandom().setSeed(7);
        int n = 0;
        for (String name : peft.adaptedLayers().keySet()) {
            org.deeplearning4j.nn.api.Layer l = peft.graph().getLayer(name);
            for (String key : ((LycorisLayer) l.conf().getLayer()).adapter().paramShapes().keySet()) {
                INDArray p = l.getParam(key);
                p.assign(Nd4j.randn(DataType.DOUBLE, p.shape()).muli(0.5));
                n++;
            }
        }
        return n;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("denseConfigs")
    void denseHiddenAndOutputLayersMatchFiniteDifferences(String name, Object builder) {
        ComputationGraph base = TinyGraphs.mlpForGradientCheck(3);
        PeftModel peft = Peft.wrap(base, build(builder, "dense0", "dense2", "output"));
        assertTrue(randomizeFactors(peft) >= 4);
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 4, 3, 5, 3);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("convConfigs")
    void conv2dTargetMatchesFiniteDifferences(String name, Object builder) {
        ComputationGraph base = FamilyGraphs.cnn2d(DataType.DOUBLE, new NoOp(), 5);
        PeftModel peft = Peft.wrap(base, build(builder, "pre", "conv"));
        randomizeFactors(peft);
        DataSet ds = FamilyGraphs.data(base, false, DataType.DOUBLE, 6, 2);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("conv1dConfigs")
    void conv1dTargetMatchesFiniteDifferences(String name, Object builder) {
        ComputationGraph base = FamilyGraphs.cnn1d(DataType.DOUBLE, new NoOp(), 8);
        PeftModel peft = Peft.wrap(base, build(builder, "pre", "conv"));
        randomizeFactors(peft);
        DataSet ds = FamilyGraphs.data(base, true, DataType.DOUBLE, 9, 2);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }

    @org.junit.jupiter.api.Test
    void oneByOneConvolutionMatchesFiniteDifferences() {
        ComputationGraph base = FamilyGraphs.cnn2d(DataType.DOUBLE, new NoOp(), 10);
        PeftModel peft = Peft.wrap(base, LoHaConfig.builder().rank(2).alpha(2).useEffectiveConv2d(true)
                .targetModules("conv1x1").modulesToSave("conv").build());
        randomizeFactors(peft);
        DataSet ds = FamilyGraphs.data(base, false, DataType.DOUBLE, 11, 2);
        assertTrue(GradientChecks.passes(peft.graph(), ds.getFeatures(), ds.getLabels()));
    }
}
