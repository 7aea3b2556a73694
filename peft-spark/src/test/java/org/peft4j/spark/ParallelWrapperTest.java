package org.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.deeplearning4j.datasets.iterator.ExistingDataSetIterator;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.deeplearning4j.parallelism.ParallelWrapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.LoraConfig;

/**
 * DL4J's {@link ParallelWrapper} (data-parallel training on the cores of one machine) trains a
 * wrapped graph as it is: each worker thread trains a {@code clone()} of the graph, whose frozen
 * arrays are shared read-only with the original (no copy per worker), and averages or shares
 * the adapter's parameters and optimizer state only.
 */
class ParallelWrapperTest {
    private static final int N_IN = 8;
    private static final int N_OUT = 3;
    private static final int BATCH = 8;

    /** Records, on every worker after every iteration, frozen digest | parameters | optimizer state. */
    static final class Probe extends BaseTrainingListener {
        final Set<String> seen = ConcurrentHashMap.newKeySet();

        @Override
        public void iterationDone(Model model, int iteration, int epoch) {
            ComputationGraph g = (ComputationGraph) model;
            seen.add(SparkTesting.frozenDigest(g.getConfiguration()) + "|" + g.numParams() + "|"
                    + g.getUpdater().getStateViewArray().length());
        }
    }

    @ParameterizedTest
    @EnumSource(value = ParallelWrapper.TrainingMode.class, names = {"AVERAGING", "SHARED_GRADIENTS"})
    void twoWorkersTrainTheAdapterOverAnUnchangedFrozenBase(ParallelWrapper.TrainingMode mode) throws Exception {
        List<DataSet> data = SparkTesting.teacherData(1, 3, 32, BATCH, N_IN, N_OUT);
        List<DataSet> heldOut = SparkTesting.teacherData(1, 4, 4, BATCH, N_IN, N_OUT);
        PeftModel model = Peft.wrap(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 11, N_IN, 64, N_OUT),
                LoraConfig.builder().rank(4).alpha(8).targetModules("dense0", "dense1", "dense2").build());
        double before = SparkTesting.meanLoss(model.graph(), heldOut);
        String digest = SparkTesting.frozenDigest(model.graph().getConfiguration());
        Probe probe = new Probe();

        try (ParallelWrapper pw = new ParallelWrapper.Builder<>(model.graph()).workers(2).averagingFrequency(2)
                .averageUpdaters(true).prefetchBuffer(2).trainingMode(mode).build()) {
            pw.setListeners(probe);
            for (int epoch = 0; epoch < 2; epoch++) {
                pw.fit(new ExistingDataSetIterator(data));
            }
        }

        double after = SparkTesting.meanLoss(model.graph(), heldOut);
        assertTrue(after < before - 0.1, mode + " lowers held-out loss: " + before + " -> " + after);
        long adapter = model.trainableParameters();
        assertEquals(Set.of(digest + "|" + adapter + "|" + 2 * adapter), probe.seen,
                "frozen digest | parameters | optimizer state on every worker");
        assertEquals(digest, SparkTesting.frozenDigest(model.graph().getConfiguration()), "frozen base of the model");
        assertEquals(2 * adapter, model.graph().getUpdater().getStateViewArray().length());
    }
}
