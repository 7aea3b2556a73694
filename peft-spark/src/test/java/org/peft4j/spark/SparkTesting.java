package org.peft4j.spark;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerBlockUpdated;
import org.apache.spark.storage.BlockUpdatedInfo;
import org.apache.spark.util.CollectionAccumulator;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.TrainingHook;
import org.nd4j.linalg.dataset.api.DataSet;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.peft4j.core.DetachableFrozenState;

/** Spark contexts on the loopback interface, a broadcast byte meter and frozen-state digests for the tests. */
final class SparkTesting {

    private SparkTesting() {
    }

    /** A context in {@code master} mode ({@code local[n]}), bound to 127.0.0.1, without UI. */
    static JavaSparkContext context(String master) {
        SparkConf conf = new SparkConf().setMaster(master).setAppName("peft-spark-test")
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.ui.showConsoleProgress", "false");
        return new JavaSparkContext(conf);
    }

    /**
     * SHA-256 over the configuration JSON of every layer holding frozen state, in vertex-name
     * order: the arrays are in it as their exact bytes (base64), so equal digests mean the
     * frozen weights are bit-for-bit equal.
     */
    static String frozenDigest(ComputationGraphConfiguration conf) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            int n = 0;
            for (Map.Entry<String, GraphVertex> e : new TreeMap<>(conf.getVertices()).entrySet()) {
                if (e.getValue() instanceof LayerVertex) {
                    Layer l = ((LayerVertex) e.getValue()).getLayerConf().getLayer();
                    if (l instanceof DetachableFrozenState) {
                        md.update(e.getKey().getBytes(StandardCharsets.UTF_8));
                        md.update(NeuralNetConfiguration.mapper().writeValueAsString(l).getBytes(StandardCharsets.UTF_8));
                        n++;
                    }
                }
            }
            if (n == 0) {
                throw new IllegalStateException("no layer holds frozen state");
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException | java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Records, after every minibatch a worker fits, the digest of its frozen state and the
     * lengths of its parameter vector and optimizer state, as {@code digest|numParams|stateLength}.
     */
    static final class WorkerProbe implements TrainingHook {
        private static final long serialVersionUID = 1L;
        private final CollectionAccumulator<String> seen;

        WorkerProbe(JavaSparkContext sc) {
            this.seen = sc.sc().collectionAccumulator("worker-probe");
        }

        List<String> seen() {
            return seen.value();
        }

        @Override
        public void preUpdate(DataSet ds, Model model) {
        }

        @Override
        public void postUpdate(DataSet ds, Model model) {
            record(model);
        }

        @Override
        public void preUpdate(MultiDataSet ds, Model model) {
        }

        @Override
        public void postUpdate(MultiDataSet ds, Model model) {
            record(model);
        }

        private void record(Model model) {
            ComputationGraph g = (ComputationGraph) model;
            seen.add(frozenDigest(g.getConfiguration()) + "|" + g.numParams() + "|"
                    + g.getUpdater().getStateViewArray().length());
        }
    }

    /**
     * Sums the bytes of broadcast blocks (pieces, as stored serialized) that any block manager
     * (the driver's, each executor's) reports, from Spark's block-update events: the bytes each
     * broadcast puts on the driver plus what every executor fetched of it.
     */
    static final class BroadcastMeter extends SparkListener {
        private final Map<String, Long> bytesByBlock = new HashMap<>();

        @Override
        public synchronized void onBlockUpdated(SparkListenerBlockUpdated event) {
            BlockUpdatedInfo info = event.blockUpdatedInfo();
            if (info.blockId().isBroadcast() && info.blockId().name().contains("_piece")
                    && info.storageLevel().isValid()) {
                long size = info.memSize() + info.diskSize();
                bytesByBlock.merge(info.blockManagerId().executorId() + "/" + info.blockId().name(), size, Math::max);
            }
        }

        /** Bytes by broadcast id (e.g. {@code broadcast_3}), summed over pieces and block managers. */
        synchronized Map<String, Long> bytesByBroadcast() {
            Map<String, Long> m = new TreeMap<>();
            bytesByBlock.forEach((k, v) -> {
                String name = k.substring(k.indexOf('/') + 1);
                m.merge(name.substring(0, name.indexOf("_piece")), v, Long::sum);
            });
            return m;
        }

        /** Bytes of every broadcast on every block manager. */
        synchronized long total() {
            return bytesByBlock.values().stream().mapToLong(Long::longValue).sum();
        }
    }

    /** Waits until Spark's listener bus has delivered every event posted so far. */
    static void drainListenerBus(JavaSparkContext sc) {
        try {
            sc.sc().listenerBus().waitUntilEmpty();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
