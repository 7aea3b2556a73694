package org.peft4j.spark;

import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.WorkerConfiguration;
import org.deeplearning4j.spark.api.worker.NetBroadcastTuple;
import org.deeplearning4j.spark.impl.graph.SparkComputationGraph;
import org.deeplearning4j.spark.impl.multilayer.SparkDl4jMultiLayer;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingWorker;
import org.peft4j.spark.internal.AttachingBroadcast;
import org.peft4j.spark.internal.FrozenBase;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * DL4J's parameter averaging ({@link ParameterAveragingTrainingMaster}) for wrapped graphs, with
 * the frozen base sent to each executor once instead of at every averaging round.
 *
 * <p>DL4J's master broadcasts the network's configuration, parameters and optimizer state at the
 * start of every round ({@code averagingFrequency} minibatches per worker). A wrapped graph's
 * parameters and optimizer state are the adapter's only, but its frozen base weights are fields
 * of the layer configurations, so the stock master sends the whole base every round. This
 * master broadcasts the frozen state of the layers once (per network and Spark context), sends
 * each round a configuration without it, and re-attaches it on the workers (see
 * {@link org.peft4j.core.DetachableFrozenState}). Training is otherwise DL4J's: the same
 * workers, splits, averaging, listeners and hooks.
 *
 * <p>Build it from DL4J's builder: {@code new PeftParameterAveragingTrainingMaster(new
 * ParameterAveragingTrainingMaster.Builder(numWorkers, examplesPerDataSet).batchSizePerWorker(32)
 * .averagingFrequency(5)...)}, or use
 * {@link PeftSpark}, which also checks the model. Call {@link #releaseFrozenBase()} when done to
 * free the executors' copy of the base.
 *
 * <p>Thread-safety: like DL4J's master, for one training run at a time (Spark drivers fit from
 * one thread).
 */
public class PeftParameterAveragingTrainingMaster extends ParameterAveragingTrainingMaster {
    private static final Logger LOG = LoggerFactory.getLogger(PeftParameterAveragingTrainingMaster.class);

    private transient Broadcast<FrozenBase> frozen;
    private transient ComputationGraphConfiguration frozenOf;
    private transient JavaSparkContext frozenContext;

    /**
     * @param builder DL4J's builder for parameter averaging, with every option it offers;
     *     {@code collectTrainingStats} is supported as in DL4J
     */
    public PeftParameterAveragingTrainingMaster(ParameterAveragingTrainingMaster.Builder builder) {
        super(builder);
    }

    @Override
    public ParameterAveragingTrainingWorker getWorkerInstance(SparkComputationGraph graph) {
        ComputationGraph net = graph.getNetwork();
        Broadcast<FrozenBase> base = frozenBase(graph.getSparkContext(), net.getConfiguration());
        NetBroadcastTuple tuple = new NetBroadcastTuple(FrozenBase.strip(net.getConfiguration()), net.params(),
                net.getUpdater().getStateViewArray());
        if (collectTrainingStats) {
            stats.logBroadcastStart();
        }
        Broadcast<NetBroadcastTuple> round = graph.getSparkContext().broadcast(tuple);
        if (collectTrainingStats) {
            stats.logBroadcastEnd();
        }
        WorkerConfiguration wc = new WorkerConfiguration(true, rddDataSetNumExamples, batchSizePerWorker,
                averagingFrequency, prefetchNumBatches, collectTrainingStats);
        return new ParameterAveragingTrainingWorker(new AttachingBroadcast(round, base), saveUpdater, wc,
                trainingHookList, listeners, getRouterProvider());
    }

    /** Not supported: peft4j wraps {@code ComputationGraph}s only. */
    @Override
    public ParameterAveragingTrainingWorker getWorkerInstance(SparkDl4jMultiLayer network) {
        throw new UnsupportedOperationException("PeftParameterAveragingTrainingMaster trains ComputationGraphs "
                + "(SparkComputationGraph); peft4j wraps no MultiLayerNetwork");
    }

    /**
     * Destroys the broadcast of the frozen base, freeing it on the driver and the executors; the
     * next round broadcasts it again. Safe to call when nothing was broadcast.
     */
    public void releaseFrozenBase() {
        if (frozen != null) {
            frozen.destroy();
            frozen = null;
            frozenOf = null;
            frozenContext = null;
        }
    }

    /** The frozen base broadcast for {@code conf}, made at the first round of a network. */
    private Broadcast<FrozenBase> frozenBase(JavaSparkContext sc, ComputationGraphConfiguration conf) {
        if (frozen == null || frozenOf != conf || frozenContext != sc) {
            releaseFrozenBase();
            FrozenBase base = FrozenBase.of(conf);
            frozen = sc.broadcast(base);
            frozenOf = conf;
            frozenContext = sc;
            LOG.info("Broadcast the frozen state of {} layers ({} bytes) once", base.size(), base.bytes());
        }
        return frozen;
    }
}
