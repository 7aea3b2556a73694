package org.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.RDDTrainingApproach;
import org.deeplearning4j.spark.api.Repartition;
import org.deeplearning4j.spark.impl.graph.SparkComputationGraph;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;

/**
 * Guards the point of {@link PeftParameterAveragingTrainingMaster}: with a large frozen base
 * (three 2048×2048 float layers, 48 MiB) and a small LoRA adapter, the bytes broadcast per
 * averaging round are the adapter's, not the base's; the base is broadcast once. DL4J's own
 * master, measured in the same run, sends the base every round.
 */
class BroadcastBytesTest {
    private static final int WIDTH = 2048;
    private static final int BATCH = 4;
    private static final int ROUNDS = 3;
    private static final long BASE_BYTES = 3L * WIDTH * WIDTH * 4;

    private static JavaSparkContext sc;
    private static SparkTesting.BroadcastMeter meter;

    @BeforeAll
    static void start() {
        sc = SparkTesting.context("local[1]");
        meter = new SparkTesting.BroadcastMeter();
        sc.sc().addSparkListener(meter);
    }

    @AfterAll
    static void stop() {
        sc.stop();
    }

    private static PeftModel wrapped() {
        ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-3), 7, WIDTH, WIDTH, 4);
        return Peft.wrap(base, LoraConfig.builder().rank(4).alpha(8).targetModules("dense0", "dense1", "dense2").build());
    }

    private static ParameterAveragingTrainingMaster.Builder builder() {
        return new ParameterAveragingTrainingMaster.Builder(1, BATCH).averagingFrequency(1).workerPrefetchNumBatches(0)
                .repartionData(Repartition.Never).rddTrainingApproach(RDDTrainingApproach.Direct);
    }

    /** Fits {@link #ROUNDS} rounds of one minibatch; returns the bytes broadcast, by broadcast id, during the fits. */
    private static Map<String, Long> measure(Runnable fits) {
        SparkTesting.drainListenerBus(sc);
        Map<String, Long> before = meter.bytesByBroadcast();
        fits.run();
        SparkTesting.drainListenerBus(sc);
        Map<String, Long> after = meter.bytesByBroadcast();
        after.keySet().removeAll(before.keySet());
        return after;
    }

    @Test
    void perRoundBroadcastCarriesTheAdapterNotTheFrozenBase() {
        List<JavaRDD<DataSet>> rounds = new ArrayList<>();
        for (int r = 0; r < ROUNDS; r++) {
            rounds.add(sc.parallelize(List.of(TinyGraphs.classification(DataType.FLOAT, 100 + r, BATCH, WIDTH, 4)), 1));
        }

        PeftModel stockModel = wrapped();
        SparkComputationGraph stock = new SparkComputationGraph(sc, stockModel.graph(), builder().build());
        Map<String, Long> stockBytes = measure(() -> rounds.forEach(stock::fit));

        PeftModel model = wrapped();
        Map<String, Long> peftBytes;
        long adapterBytes = model.graph().numParams() * 4 * 3; // parameters + Adam's two moments
        try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model, builder())) {
            peftBytes = measure(() -> rounds.forEach(spark::fit));
        }

        long stockTotal = stockBytes.values().stream().mapToLong(Long::longValue).sum();
        long peftLargest = peftBytes.values().stream().mapToLong(Long::longValue).max().orElseThrow();
        long peftTotal = peftBytes.values().stream().mapToLong(Long::longValue).sum();
        long peftPerRound = (peftTotal - peftLargest) / ROUNDS;
        System.out.printf("broadcast bytes, frozen base %d B, adapter+Adam %d B, %d rounds:%n"
                + "  DL4J ParameterAveragingTrainingMaster: %d B total, %d B per round %s%n"
                + "  PeftParameterAveragingTrainingMaster:  %d B total, %d B once (frozen base), %d B per round %s%n",
                BASE_BYTES, adapterBytes, ROUNDS, stockTotal, stockTotal / ROUNDS, stockBytes,
                peftTotal, peftLargest, peftPerRound, peftBytes);

        assertTrue(stockTotal / ROUNDS > BASE_BYTES / 2, "DL4J's master sends the base every round: " + stockBytes);
        assertTrue(peftLargest > BASE_BYTES / 2, "the frozen base is broadcast once: " + peftBytes);
        assertTrue(peftPerRound < 10 * adapterBytes + 200_000,
                "per round only the adapter, its optimizer state and task closures travel: " + peftBytes);
        assertEquals(stockModel.graph().params(), model.graph().params(), "both masters train the same adapter");
    }
}
