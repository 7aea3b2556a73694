package org.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.RDDTrainingApproach;
import org.deeplearning4j.spark.api.Repartition;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
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

/**
 * The frozen base and the per-round configuration travel under Spark's Kryo serializer with
 * ND4J's registrator, the setting DL4J recommends for Spark, as under Java serialization.
 */
class KryoSerializerTest {

    @Test
    void qloraTrainsUnderKryoWithTheFrozenBaseUnchangedOnTheWorkers() {
        JavaSparkContext sc = new JavaSparkContext(SparkTesting.conf("local[2]").set("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
                .set("spark.kryo.registrator", "org.nd4j.kryo.Nd4jRegistrator"));
        try {
            List<DataSet> data = SparkTesting.teacherData(1, 3, 16, 8, 8, 3);
            List<DataSet> heldOut = SparkTesting.teacherData(1, 4, 4, 8, 8, 3);
            ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 11, 8, 64, 3);
            PeftModel model = Peft.wrap(base, QLoraConfig.of(
                    LoraConfig.builder().rank(4).alpha(8).targetModules("dense0", "dense1", "dense2").build(), QuantSpec.nf4()));
            double before = SparkTesting.meanLoss(model.graph(), heldOut);
            String digest = SparkTesting.frozenDigest(model.graph().getConfiguration());
            SparkTesting.WorkerProbe probe = new SparkTesting.WorkerProbe(sc);
            try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model,
                    new ParameterAveragingTrainingMaster.Builder(2, 8).batchSizePerWorker(8).averagingFrequency(2)
                            .workerPrefetchNumBatches(0).repartionData(Repartition.Never).saveUpdater(true)
                            .rddTrainingApproach(RDDTrainingApproach.Direct).trainingHooks(probe))) {
                spark.fit(sc.parallelize(data, 2));
            }
            double after = SparkTesting.meanLoss(model.graph(), heldOut);
            assertTrue(after < before, "held-out loss falls under Kryo: " + before + " -> " + after);
            PeftSparkTest.assertWorkersKeptFrozenBaseAndStateOfAdapterOnly(probe, digest, model);
            assertEquals("org.apache.spark.serializer.KryoSerializer", sc.getConf().get("spark.serializer"));
        } finally {
            sc.stop();
        }
    }
}
