package org.peft4j.spark;

import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.impl.graph.SparkComputationGraph;
import org.deeplearning4j.spark.impl.paramavg.ParameterAveragingTrainingMaster;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.peft4j.core.PeftModel;

/**
 * Trains a {@link PeftModel} on Apache Spark with DL4J's parameter averaging: each worker fits
 * its share of the data for {@code averagingFrequency} minibatches from the current adapter
 * weights, then the driver averages the workers' adapter weights and optimizer state. Only the
 * adapter (the graph's parameters) is exchanged per round; the frozen base is broadcast once
 * ({@link PeftParameterAveragingTrainingMaster}).
 *
 * <pre>{@code
 * PeftModel model = Peft.wrap(base, LoraConfig.builder().rank(8).targetModules("q", "v").build());
 * try (PeftSpark spark = PeftSpark.parameterAveraging(sc, model,
 *         new ParameterAveragingTrainingMaster.Builder(numWorkers, 32)   // 32 examples per DataSet
 *                 .batchSizePerWorker(32).averagingFrequency(5).saveUpdater(true)
 *                 .rddTrainingApproach(RDDTrainingApproach.Direct))) {
 *     spark.fit(trainingData);     // JavaRDD<DataSet>
 * }
 * model.saveAdapter(dir);          // the trained adapter, in the usual layout
 * }</pre>
 *
 * <p>The model is trained in place: after {@link #fit} its graph holds the averaged adapter
 * weights and optimizer state, and every {@link PeftModel} method (saving, merging, switching
 * adapters) works on it as after single-JVM training.
 *
 * <p>Thread-safety: not thread-safe; fit from one thread, and do not use the model from other
 * threads during {@link #fit}.
 */
public final class PeftSpark implements AutoCloseable {

    private final JavaSparkContext sc;
    private final PeftModel model;
    private final PeftParameterAveragingTrainingMaster master;
    private SparkComputationGraph spark;

    private PeftSpark(JavaSparkContext sc, PeftModel model, PeftParameterAveragingTrainingMaster master) {
        this.sc = sc;
        this.model = model;
        this.master = master;
    }

    /**
     * A trainer of {@code model} with DL4J's parameter averaging configured by {@code builder}.
     *
     * @throws IllegalArgumentException if an argument is null
     */
    public static PeftSpark parameterAveraging(JavaSparkContext sc, PeftModel model,
            ParameterAveragingTrainingMaster.Builder builder) {
        return new PeftSpark(requireArg(sc, "sc"), requireArg(model, "model"),
                new PeftParameterAveragingTrainingMaster(requireArg(builder, "builder")));
    }

    /** The model this trains (the one given, trained in place). */
    public PeftModel model() {
        return model;
    }

    /** The training master, e.g. for {@code getTrainingStats()} after a fit with statistics collected. */
    public PeftParameterAveragingTrainingMaster trainingMaster() {
        return master;
    }

    /**
     * One pass over {@code data} (each element one minibatch of the builder's batch size per
     * worker), training the model's active adapter in place.
     *
     * @return the model, trained
     * @throws IllegalStateException if the model is merged ({@link PeftModel#unmerge()} first)
     */
    public PeftModel fit(JavaRDD<DataSet> data) {
        requireArg(data, "data");
        network().fit(data);
        return model;
    }

    /** As {@link #fit}, for graphs with several inputs or outputs. */
    public PeftModel fitMultiDataSet(JavaRDD<MultiDataSet> data) {
        requireArg(data, "data");
        network().fitMultiDataSet(data);
        return model;
    }

    /** The score (mean loss) of the last averaging round, as DL4J's {@code SparkComputationGraph.getScore()}. */
    public double score() {
        if (spark == null) {
            throw new IllegalStateException("no score before the first fit");
        }
        return spark.getScore();
    }

    /** Frees the frozen base broadcast to the executors ({@link PeftParameterAveragingTrainingMaster#releaseFrozenBase()}). */
    @Override
    public void close() {
        master.releaseFrozenBase();
    }

    /** DL4J's Spark network over the model's current graph (a new one when the model rebuilt its graph). */
    private SparkComputationGraph network() {
        if (model.isMerged()) {
            throw new IllegalStateException("the model is merged: call unmerge() before training, so the adapter "
                    + "trains over the frozen base weights and not over base + adapter");
        }
        ComputationGraph g = model.graph();
        if (spark == null || spark.getNetwork() != g) {
            spark = new SparkComputationGraph(sc, g, master);
        }
        return spark;
    }

    private static <T> T requireArg(T value, String name) {
        if (value == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        return value;
    }
}
