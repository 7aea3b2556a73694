package org.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.RDDTrainingApproach;
import org.deeplearning4j.spark.api.Repartition;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;
import org.peft4j.spark.examples.LocalCluster;

/**
 * {@link PeftSpark} with two executors in separate JVMs ({@code local-cluster[2,1,1024]}): the
 * frozen base reaches them only through the one broadcast, deserialized in each, and every
 * executor trains over it bit-for-bit; only the adapter and its optimizer state come back.
 * Starting the executor JVMs takes a minute or more, so it runs in the {@code local-cluster}
 * Maven profile only.
 */
@Tag("local-cluster")
class LocalClusterTest {
    private static final int N_IN = 8;
    private static final int N_OUT = 3;
    private static final int BATCH = 8;

    private static JavaSparkContext sc;

    @BeforeAll
    static void start() {
        sc = new JavaSparkContext(LocalCluster.conf(2, 1, 1024).setAppName("peft-spark-local-cluster-test"));
    }

    @AfterAll
    static void stop() {
        sc.stop();
    }

    /** {@link SparkTesting.WorkerProbe} that also records the executor it ran on. */
    static final class ExecutorProbe extends SparkTesting.WorkerProbe {
        private static final long serialVersionUID = 1L;

        ExecutorProbe(JavaSparkContext sc) {
            super(sc);
        }

        @Override
        protected String describe(Model model) {
            return SparkEnv.get().executorId() + "|" + super.describe(model);
        }
    }

    private static void trainAndCheck(PeftModel model) {
        List<DataSet> data = SparkTesting.teacherData(1, 3, 16, BATCH, N_IN, N_OUT);
        List<DataSet> heldOut = SparkTesting.teacherData(1, 4, 4, BATCH, N_IN, N_OUT);
        double before = SparkTesting.meanLoss(model.graph(), heldOut);
        String digest = SparkTesting.frozenDigest(model.graph().getConfiguration());
        ExecutorProbe probe = new ExecutorProbe(sc);
        try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model,
                new ParameterAveragingTrainingMaster.Builder(2, BATCH).batchSizePerWorker(BATCH).averagingFrequency(2)
                        .workerPrefetchNumBatches(0).repartionData(Repartition.Always)
                        .rddTrainingApproach(RDDTrainingApproach.Direct).saveUpdater(true).trainingHooks(probe))) {
            for (int epoch = 0; epoch < 2; epoch++) {
                spark.fit(sc.parallelize(data, 2));
            }
        }
        double after = SparkTesting.meanLoss(model.graph(), heldOut);
        assertTrue(after < before, "held-out loss falls: " + before + " -> " + after);

        long adapter = model.trainableParameters();
        Set<String> executors = probe.seen().stream().map(s -> s.substring(0, s.indexOf('|'))).collect(Collectors.toSet());
        assertEquals(2, executors.size(), "both executors trained: " + executors);
        Set<String> states = probe.seen().stream().map(s -> s.substring(s.indexOf('|') + 1)).collect(Collectors.toSet());
        assertEquals(Set.of(digest + "|" + adapter + "|" + 2 * adapter), states,
                "frozen digest | parameters | optimizer state on every executor");
        assertEquals(digest, SparkTesting.frozenDigest(model.graph().getConfiguration()), "driver's frozen base");
    }

    @Test
    void loraTrainsOnExecutorsInSeparateJvmsOverTheBroadcastBase() {
        trainAndCheck(Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 11, N_IN, 64, N_OUT),
                LoraConfig.builder().rank(4).alpha(8).targetModules("dense0", "dense1", "dense2").build()));
    }

    @Test
    void qloraTrainsOnExecutorsInSeparateJvmsOverTheBroadcastFourBitBase() {
        trainAndCheck(Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 11, N_IN, 64, N_OUT),
                QLoraConfig.of(LoraConfig.builder().rank(4).alpha(8).targetModules("dense0", "dense1", "dense2").build(),
                        QuantSpec.nf4())));
    }
}
