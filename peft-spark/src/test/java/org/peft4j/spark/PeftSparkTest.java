package org.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.RDDTrainingApproach;
import org.deeplearning4j.spark.api.Repartition;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;

/** Training a wrapped graph with {@link PeftSpark} in Spark's local mode ({@code local[n]}: executors are threads of this JVM). */
class PeftSparkTest {
    private static final int N_IN = 8;
    private static final int HIDDEN = 64;
    private static final int N_OUT = 3;
    private static final int BATCH = 8;

    private static JavaSparkContext sc;

    @BeforeAll
    static void start() {
        sc = SparkTesting.context("local[2]");
    }

    @AfterAll
    static void stop() {
        sc.stop();
    }

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 11, N_IN, HIDDEN, N_OUT);
    }

    private static LoraConfig lora() {
        return LoraConfig.builder().rank(4).alpha(8).targetModules("dense0", "dense1", "dense2").build();
    }

    private static ParameterAveragingTrainingMaster.Builder averaging(int workers, int frequency) {
        return new ParameterAveragingTrainingMaster.Builder(workers, BATCH).batchSizePerWorker(BATCH)
                .averagingFrequency(frequency).workerPrefetchNumBatches(0).repartionData(Repartition.Never)
                .rddTrainingApproach(RDDTrainingApproach.Direct).saveUpdater(true).rngSeed(5);
    }

    private static void assertClose(INDArray expected, INDArray actual, double tol, String what) {
        assertEquals(expected.length(), actual.length(), what + ": length");
        double maxDiff = expected.castTo(DataType.DOUBLE).sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
        double scale = Math.max(1e-3, expected.amaxNumber().doubleValue());
        assertTrue(maxDiff <= tol * scale, what + ": max |difference| " + maxDiff + " > " + tol + " × " + scale);
    }

    @Test
    void oneWorkerEqualsSingleJvmTrainingOnTheSameBatchesAndSavesTheUsualAdapter(@TempDir Path dir) throws Exception {
        List<DataSet> data = SparkTesting.teacherData(1, 2, 6, BATCH, N_IN, N_OUT);
        ComputationGraph base = base();
        PeftModel model = Peft.wrap(base, lora());
        PeftModel reference = Peft.wrap(base, lora());
        reference.graph().setParams(model.graph().params().dup());
        for (DataSet d : data) {
            reference.graph().fit(d);
        }

        try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model, averaging(1, data.size()))) {
            assertTrue(spark.fit(sc.parallelize(data, 1)) == model, "the model given is trained in place");
        }

        assertClose(reference.graph().params(), model.graph().params(), 1e-5, "adapter weights");
        assertClose(reference.graph().getUpdater().getStateViewArray(), model.graph().getUpdater().getStateViewArray(),
                1e-5, "Adam state");

        model.saveAdapter(dir);
        PeftModel loaded = Peft.load(base, dir);
        DataSet probe = data.get(0);
        assertClose(model.output(probe.getFeatures())[0], loaded.output(probe.getFeatures())[0], 1e-6,
                "outputs of the adapter saved after Spark training and loaded back");
    }

    @Test
    void twoWorkersLowerHeldOutLossAsSingleJvmTrainingDoes() {
        List<DataSet> data = SparkTesting.teacherData(1, 3, 16, BATCH, N_IN, N_OUT);
        List<DataSet> heldOut = SparkTesting.teacherData(1, 4, 4, BATCH, N_IN, N_OUT);
        ComputationGraph base = base();
        PeftModel model = Peft.wrap(base, lora());
        PeftModel reference = Peft.wrap(base, lora());
        reference.graph().setParams(model.graph().params().dup());
        double before = SparkTesting.meanLoss(model.graph(), heldOut);
        for (int epoch = 0; epoch < 2; epoch++) {
            data.forEach(reference.graph()::fit);
        }
        double single = SparkTesting.meanLoss(reference.graph(), heldOut);

        String digest = SparkTesting.frozenDigest(model.graph().getConfiguration());
        SparkTesting.WorkerProbe probe = new SparkTesting.WorkerProbe(sc);
        try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model, averaging(2, 2).trainingHooks(probe))) {
            for (int epoch = 0; epoch < 2; epoch++) {
                spark.fit(sc.parallelize(data, 2));
            }
        }
        double spark = SparkTesting.meanLoss(model.graph(), heldOut);

        assertTrue(single < before, "single-JVM training lowers held-out loss: " + before + " -> " + single);
        assertTrue(before - spark >= 0.5 * (before - single),
                "Spark lowers held-out loss at least half as much as single-JVM training over the same epochs: "
                        + before + " -> " + spark + " (single JVM: " + single + ")");
        assertWorkersKeptFrozenBaseAndStateOfAdapterOnly(probe, digest, model);
    }

    @Test
    void qloraTrainsOverItsFourBitBaseWhichStaysUnchanged() {
        List<DataSet> data = SparkTesting.teacherData(1, 3, 16, BATCH, N_IN, N_OUT);
        List<DataSet> heldOut = SparkTesting.teacherData(1, 4, 4, BATCH, N_IN, N_OUT);
        PeftModel model = Peft.wrap(base(), QLoraConfig.of(lora(), QuantSpec.nf4()));
        double before = SparkTesting.meanLoss(model.graph(), heldOut);
        String digest = SparkTesting.frozenDigest(model.graph().getConfiguration());
        SparkTesting.WorkerProbe probe = new SparkTesting.WorkerProbe(sc);
        try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model, averaging(2, 2).trainingHooks(probe))) {
            for (int epoch = 0; epoch < 2; epoch++) {
                spark.fit(sc.parallelize(data, 2));
            }
        }
        double after = SparkTesting.meanLoss(model.graph(), heldOut);
        assertTrue(after < before, "QLoRA on Spark lowers held-out loss: " + before + " -> " + after);
        assertWorkersKeptFrozenBaseAndStateOfAdapterOnly(probe, digest, model);
    }

    @Test
    void aMergedModelIsRefusedBeforeAnythingIsSent() {
        PeftModel model = Peft.wrap(base(), lora());
        model.merge();
        try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model, averaging(1, 1))) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> spark.fit(sc.parallelize(SparkTesting.teacherData(1, 2, 1, BATCH, N_IN, N_OUT), 1)));
            assertTrue(e.getMessage().contains("unmerge()"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> PeftSpark.parameterAveraging(sc, model, null));
    }

    /**
     * Every minibatch on every worker ran with the frozen base bit-for-bit as on the driver before
     * training, a parameter vector of the adapter's size and Adam state of twice that; the
     * driver's base is unchanged too.
     */
    static void assertWorkersKeptFrozenBaseAndStateOfAdapterOnly(SparkTesting.WorkerProbe probe, String digest,
            PeftModel model) {
        List<String> seen = probe.seen();
        assertFalse(seen.isEmpty(), "the workers ran");
        long adapter = model.trainableParameters();
        assertTrue(adapter < model.allParameters() / 2, "the adapter is a small part of the model");
        Set<String> distinct = seen.stream().collect(Collectors.toSet());
        assertEquals(Set.of(digest + "|" + adapter + "|" + 2 * adapter), distinct,
                "frozen digest | parameters | optimizer state seen by the workers");
        assertEquals(digest, SparkTesting.frozenDigest(model.graph().getConfiguration()), "driver's frozen base");
        assertEquals(adapter, model.graph().numParams());
        assertEquals(2 * adapter, model.graph().getUpdater().getStateViewArray().length());
    }
}
