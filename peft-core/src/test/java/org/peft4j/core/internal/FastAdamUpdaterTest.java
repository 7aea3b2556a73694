package org.peft4j.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.updater.UpdaterBlock;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.AdamUpdater;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.AdaMax;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.schedule.ScheduleType;
import org.nd4j.linalg.schedule.StepSchedule;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.TinyGraphs;

/**
 * {@link FastAdamUpdater} computes what DL4J's Adam computes, over DL4J's own state, and is
 * installed only where it applies.
 *
 * <p>Tolerances: the moments are the same float32 operations in the same order as libnd4j's loop
 * (which its generic x86-64 build runs without fused multiply-adds), so they must match exactly;
 * the update divides by the same square root and multiplies by a step size whose two powers are
 * {@code powf} in libnd4j and {@code Math.pow} rounded to float here, which can differ by one ulp,
 * so an update may be two ulps off. Trained parameters are compared to 1e-6 (a few float ulps of
 * weights near 1 after a handful of steps).
 */
class FastAdamUpdaterTest {
    private static final int N = 2 * FastAdamUpdater.TILE + 77;

    private static boolean cpu() {
        return FastAdamUpdater.enabled();
    }

    @Test
    void stepsMatchDl4jsAdamIncludingAScheduleAndALearningRateChange() {
        assumeTrue(cpu());
        Adam config = Adam.builder().beta1(0.85).beta2(0.995).epsilon(1e-7)
                .learningRateSchedule(new StepSchedule(ScheduleType.ITERATION, 3e-2, 0.5, 2)).build();
        INDArray dl4jState = Nd4j.create(DataType.FLOAT, 1, 2L * N);
        INDArray fastState = Nd4j.create(DataType.FLOAT, 1, 2L * N);
        AdamUpdater dl4j = (AdamUpdater) config.instantiate(dl4jState, true);
        AdamUpdater viewsOnly = (AdamUpdater) config.instantiate(fastState, true);
        dl4j.setStateViewArray(dl4jState, new long[] {1, N}, 'c', true);
        viewsOnly.setStateViewArray(fastState, new long[] {1, N}, 'c', true);
        FastAdamUpdater fast = new FastAdamUpdater(config, viewsOnly);
        Nd4j.getRandom().setSeed(7);
        for (int it = 0; it < 8; it++) {
            if (it == 5) {
                config.setLrAndSchedule(4e-3, null);
            }
            INDArray g = Nd4j.randn(DataType.FLOAT, 1, N).muli(it % 2 == 0 ? 1e-3 : 3.0);
            g.putScalar(0, 0, 0f);
            INDArray expected = g.dup();
            INDArray actual = g.dup();
            assertTrue(fast.applies(actual), "the loop runs, not DL4J's op");
            dl4j.applyUpdater(expected, it, 0);
            fast.applyUpdater(actual, it, 0);
            assertUlps(dl4jState, fastState, 0, "moments after step " + it);
            assertUlps(expected, actual, 2, "update of step " + it);
        }
        assertSame(config, fast.getConfig());
    }

    @Test
    void stepSizeFallsBackToEpsilonWhereDl4jDoes() {
        assertEquals(1e-8f, FastAdamUpdater.stepSize(0f, 0.9f, 0.999f, 1e-8f, 3));
        assertEquals(1e-8f, FastAdamUpdater.stepSize(1e-3f, 1f, 0.999f, 1e-8f, 3), "1 − β₁ᵗ = 0: infinite");
        float t1 = (float) (1e-3f * (float) Math.sqrt((float) (1.0 - 0.999f)) / (1.0 - 0.9f));
        assertEquals(t1, FastAdamUpdater.stepSize(1e-3f, 0.9f, 0.999f, 1e-8f, 0));
    }

    @Test
    void wrappedGraphTrainsAsWithDl4jsAdamAndContinuesInPlainDl4jAfterACheckpoint(@TempDir Path dir) throws Exception {
        assumeTrue(cpu());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 3, 32, 8, 4);
        PeftModel fast = Peft.wrap(mlp(DataType.FLOAT, new Adam(1e-2)), FineTuningConfig.full());
        PeftModel plain = Peft.wrap(mlp(DataType.FLOAT, new Adam(1e-2)), FineTuningConfig.full());
        plain.graph().setUpdater(null);
        assertTrue(updaters(fast.graph()).stream().allMatch(u -> u instanceof FastAdamUpdater));
        for (int i = 0; i < 4; i++) {
            fast.graph().fit(ds);
            plain.graph().fit(ds);
        }
        assertTrue(updaters(plain.graph()).stream().allMatch(u -> u.getClass() == AdamUpdater.class));
        assertClose(plain.graph().params(), fast.graph().params(), "parameters after 4 steps");
        assertClose(plain.graph().getUpdater().getStateViewArray(), fast.graph().getUpdater().getStateViewArray(),
                "optimizer state after 4 steps");

        File file = dir.resolve("graph.zip").toFile();
        ModelSerializer.writeModel(fast.graph(), file, true);
        ComputationGraph restored = ModelSerializer.restoreComputationGraph(file, true);
        for (int i = 0; i < 3; i++) {
            restored.fit(ds);
            fast.graph().fit(ds);
            plain.graph().fit(ds);
        }
        assertTrue(updaters(restored).stream().allMatch(u -> u.getClass() == AdamUpdater.class));
        assertClose(fast.graph().params(), restored.params(), "restored in DL4J vs uninterrupted");
        assertClose(plain.graph().params(), restored.params(), "restored in DL4J vs DL4J throughout");
    }

    @Test
    void resumedCheckpointTrainsWithTheFastUpdaterFromTheSavedState(@TempDir Path dir) throws Exception {
        assumeTrue(cpu());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 5, 32, 8, 4);
        ComputationGraph base = mlp(DataType.FLOAT, new Adam(1e-2));
        Ia3Config ia3 = Ia3Config.builder().targetModules("dense1", "dense2", "output").feedforwardModules("dense2")
                .build();
        PeftModel uninterrupted = Peft.wrap(base, ia3);
        PeftModel first = Peft.wrap(base, ia3);
        for (int i = 0; i < 3; i++) {
            uninterrupted.graph().fit(ds);
            first.graph().fit(ds);
        }
        first.saveCheckpoint(dir);
        PeftModel resumed = PeftModel.resume(base, dir);
        assertTrue(updaters(resumed.graph()).stream().anyMatch(u -> u instanceof FastAdamUpdater));
        for (int i = 0; i < 3; i++) {
            uninterrupted.graph().fit(ds);
            resumed.graph().fit(ds);
        }
        assertClose(uninterrupted.graph().params(), resumed.graph().params(), "resumed vs uninterrupted");
    }

    @Test
    void setLearningRateRebuildsDl4jsUpdaterAndTrainingStaysCorrect() {
        assumeTrue(cpu());
        DataSet ds = TinyGraphs.classification(DataType.FLOAT, 3, 32, 8, 4);
        PeftModel fast = Peft.wrap(mlp(DataType.FLOAT, new Adam(1e-2)), FineTuningConfig.full());
        PeftModel plain = Peft.wrap(mlp(DataType.FLOAT, new Adam(1e-2)), FineTuningConfig.full());
        plain.graph().setUpdater(null);
        for (int i = 0; i < 6; i++) {
            if (i == 3) {
                fast.graph().setLearningRate(2e-3);
                plain.graph().setLearningRate(2e-3);
            }
            fast.graph().fit(ds);
            plain.graph().fit(ds);
        }
        assertClose(plain.graph().params(), fast.graph().params(), "parameters after a learning-rate change");
    }

    @Test
    void installLeavesTheConfigurationItsJsonAndTheBaseGraphAlone() {
        assumeTrue(cpu());
        ComputationGraph base = mlp(DataType.FLOAT, new Adam(1e-2));
        String baseJson = base.getConfiguration().toJson();
        ComputationGraph g = GraphRewriter.independentClone(base);
        String json = g.getConfiguration().toJson();
        int blocks = FastAdamUpdater.install(g);
        assertTrue(blocks > 0);
        assertEquals(blocks, updaters(g).size(), "every block: all layers train with Adam");
        assertEquals(json, g.getConfiguration().toJson());
        for (UpdaterBlock b : g.getUpdater().getUpdaterBlocks()) {
            BaseLayer layer = (BaseLayer) b.getLayersAndVariablesInBlock().get(0).getLayer().getConfig();
            assertSame(layer.getIUpdater(), b.getGradientUpdater().getConfig(), "the layer's own Adam object");
        }
        Peft.wrap(base, FineTuningConfig.full()).graph().fit(TinyGraphs.classification(DataType.FLOAT, 3, 8, 8, 4));
        // DL4J's clone() gives the base an updater of its own; it must stay DL4J's, with zero state
        assertTrue(updaters(base).stream().allMatch(u -> u.getClass() == AdamUpdater.class));
        assertEquals(0.0, base.getUpdater().getStateViewArray().amaxNumber().doubleValue());
        assertEquals(baseJson, base.getConfiguration().toJson());
    }

    @Test
    void otherUpdatersAndDoubleGraphsKeepDl4jsUpdater() {
        assumeTrue(cpu());
        DataSet ds = TinyGraphs.classification(DataType.DOUBLE, 3, 8, 8, 4);
        PeftModel dbl = Peft.wrap(mlp(DataType.DOUBLE, new Adam(1e-2)), FineTuningConfig.full());
        dbl.graph().fit(ds);
        assertTrue(updaters(dbl.graph()).stream().allMatch(u -> u.getClass() == AdamUpdater.class));
        for (IUpdater u : new IUpdater[] {new Sgd(1e-2), new AdaMax(1e-2)}) {
            PeftModel m = Peft.wrap(mlp(DataType.FLOAT, u), FineTuningConfig.full());
            m.graph().fit(TinyGraphs.classification(DataType.FLOAT, 3, 8, 8, 4));
            assertTrue(updaters(m.graph()).stream().noneMatch(x -> x instanceof FastAdamUpdater), u.toString());
        }
    }

    @Test
    void propertyFalseKeepsDl4jsUpdater() {
        boolean off = "false".equalsIgnoreCase(System.getProperty(FastAdamUpdater.PROPERTY, "true").trim());
        assumeTrue(off || "org.nd4j.linalg.cpu.nativecpu.CpuBackend".equals(Nd4j.getBackend().getClass().getName()));
        assertEquals(!off, FastAdamUpdater.enabled());
        PeftModel m = Peft.wrap(mlp(DataType.FLOAT, new Adam(1e-2)), FineTuningConfig.full());
        m.graph().fit(TinyGraphs.classification(DataType.FLOAT, 3, 8, 8, 4));
        assertEquals(!off, updaters(m.graph()).stream().allMatch(u -> u instanceof FastAdamUpdater));
    }

    private static ComputationGraph mlp(DataType dt, IUpdater updater) {
        return TinyGraphs.mlp(dt, updater, 42, 8, 16, 4);
    }

    private static List<GradientUpdater> updaters(ComputationGraph g) {
        List<GradientUpdater> out = new ArrayList<>();
        for (UpdaterBlock b : g.getUpdater().getUpdaterBlocks()) {
            out.add(b.getGradientUpdater());
        }
        return out;
    }

    private static void assertUlps(INDArray expected, INDArray actual, int ulps, String what) {
        float[] e = expected.dup().data().asFloat();
        float[] a = actual.dup().data().asFloat();
        assertEquals(e.length, a.length);
        for (int i = 0; i < e.length; i++) {
            int d = Math.abs(Float.floatToIntBits(e[i]) - Float.floatToIntBits(a[i]));
            if (d > ulps && !(e[i] == 0f && a[i] == 0f)) {
                throw new AssertionError(what + ": element " + i + " expected " + e[i] + " got " + a[i] + " (" + d
                        + " ulps, at most " + ulps + ")");
            }
        }
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        double diff = expected.castTo(DataType.DOUBLE).sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
        assertTrue(diff <= 1e-6, what + ": max |difference| " + diff);
        assertNotEquals(0, expected.length());
    }
}
