package org.peft4j.spark.examples;

import org.apache.spark.SparkConf;

/**
 * Spark's {@code local-cluster[n,c,m]} mode on this machine: a master, workers and {@code n}
 * executor JVMs of {@code c} cores and {@code m} MiB, started as separate processes, so the
 * configuration, parameters and broadcasts really cross JVMs as they would on a cluster, all on
 * 127.0.0.1.
 *
 * <p>Spark's standalone worker builds the executors' command line as for an installed Spark
 * (its {@code jars/} directory on the class path); without an installation, this gives the
 * executors this JVM's class path instead and sets, in their launch environment,
 * {@code SPARK_SCALA_VERSION} (read before anything else) and {@code SPARK_TESTING=1}, the one
 * switch that lets the launcher go on without a {@code jars/} directory. The workers write the
 * executors' logs to {@code $SPARK_HOME/work}, or {@code ./work} when {@code SPARK_HOME} is unset
 * (the Maven build sets it to {@code target/spark-home}).
 *
 * <p>Thread-safety: stateless.
 */
public final class LocalCluster {

    private LocalCluster() {
    }

    /**
     * A configuration for {@code local-cluster[executors,cores,memoryMb]} with the executors on
     * this JVM's class path and 127.0.0.1; the caller adds the application name and any other setting.
     */
    public static SparkConf conf(int executors, int cores, int memoryMb) {
        if (executors < 1 || cores < 1 || memoryMb < 512) {
            throw new IllegalArgumentException("need at least 1 executor of 1 core and 512 MiB; got " + executors
                    + " executors, " + cores + " cores, " + memoryMb + " MiB");
        }
        return new SparkConf()
                .setMaster("local-cluster[" + executors + "," + cores + "," + memoryMb + "]")
                .set("spark.executor.extraClassPath", System.getProperty("java.class.path"))
                // ND4J allocates off-heap: give the executors room beside their heap, one thread per op.
                .set("spark.executor.extraJavaOptions", "-Dorg.bytedeco.javacpp.maxbytes=" + 2L * memoryMb + "m "
                        + "-Dorg.bytedeco.javacpp.maxphysicalbytes=" + 4L * memoryMb + "m")
                .set("spark.executorEnv.OMP_NUM_THREADS", "1")
                .set("spark.executorEnv.SPARK_SCALA_VERSION", "2.12")
                .set("spark.executorEnv.SPARK_TESTING", "1")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.ui.enabled", "false")
                .set("spark.ui.showConsoleProgress", "false");
    }
}
