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
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.spark.api.TrainingHook;
import org.nd4j.linalg.dataset.api.DataSet;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.FrozenParamsLayer;
import org.peft4j.quant.QLoraDenseLayer;
import org.peft4j.quant.QuantizedDenseLayer;
import org.peft4j.quant.QuantizedTensor;

/** Spark contexts on the loopback interface, a broadcast byte meter and frozen-state digests for the tests. */
public final class SparkTesting {

    private SparkTesting() {
    }

    /** A context in {@code master} mode ({@code local[n]}), bound to 127.0.0.1, without UI. */
    static JavaSparkContext context(String master) {
        return new JavaSparkContext(conf(master));
    }

    /** The configuration of {@link #context}. */
    static SparkConf conf(String master) {
        return new SparkConf().setMaster(master).setAppName("peft-spark-test")
                .set("spark.ui.enabled", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.ui.showConsoleProgress", "false");
    }

    /**
     * SHA-256 over the frozen arrays of every layer holding frozen state, in vertex-name order:
     * float arrays as their values in C order (the JSON a worker reads them from lays a matrix out
     * in C order, the driver's may be Fortran order: same values), 4-bit weights as their codes
     * and scales. Equal digests mean bit-for-bit equal frozen weights.
     */
    static String frozenDigest(ComputationGraphConfiguration conf) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            int n = 0;
            for (Map.Entry<String, GraphVertex> e : new TreeMap<>(conf.getVertices()).entrySet()) {
                if (!(e.getValue() instanceof LayerVertex)) {
                    continue;
                }
                Layer l = ((LayerVertex) e.getValue()).getLayerConf().getLayer();
                md.update(e.getKey().getBytes(StandardCharsets.UTF_8));
                if (l instanceof QLoraDenseLayer || l instanceof QuantizedDenseLayer) {
                    QuantizedTensor q = l instanceof QLoraDenseLayer ? ((QLoraDenseLayer) l).quantizedWeight()
                            : ((QuantizedDenseLayer) l).quantizedWeight();
                    md.update(q.packedCodes());
                    md.update(floatBytes(q.absmax()));
                    md.update(q.absmaxCodes());
                    md.update(floatBytes(q.nestedAbsmax()));
                    md.update(floatBytes(q.nestedQuantMap()));
                    update(md, ((FrozenDenseLayer) l).frozenBias());
                    n++;
                } else if (l instanceof FrozenDenseLayer) {
                    update(md, ((FrozenDenseLayer) l).frozenWeight());
                    update(md, ((FrozenDenseLayer) l).frozenBias());
                    n++;
                } else if (l instanceof FrozenParamsLayer) {
                    update(md, ((FrozenParamsLayer) l).frozenParams());
                    n++;
                }
            }
            if (n == 0) {
                throw new IllegalStateException("no layer holds frozen state");
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void update(MessageDigest md, INDArray a) {
        if (a == null) {
            md.update((byte) 0);
            return;
        }
        md.update(java.util.Arrays.toString(a.shape()).getBytes(StandardCharsets.UTF_8));
        md.update(a.dataType().toString().getBytes(StandardCharsets.UTF_8));
        md.update(a.dup('c').data().asBytes());
    }

    private static byte[] floatBytes(float[] v) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(v.length * 4);
        b.asFloatBuffer().put(v);
        return b.array();
    }

    /**
     * Records, after every minibatch a worker fits, the digest of its frozen state and the
     * lengths of its parameter vector and optimizer state, as {@code digest|numParams|stateLength}.
     */
    static class WorkerProbe implements TrainingHook {
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
            seen.add(describe(model));
        }

        protected String describe(Model model) {
            ComputationGraph g = (ComputationGraph) model;
            return frozenDigest(g.getConfiguration()) + "|" + g.numParams() + "|"
                    + g.getUpdater().getStateViewArray().length();
        }
    }

    /**
     * Sums the bytes of broadcast blocks (pieces, as stored serialized) that any block manager
     * (the driver's, each executor's) reports, from Spark's block-update events: the bytes each
     * broadcast puts on the driver plus what every executor fetched of it.
     */
    public static final class BroadcastMeter extends SparkListener {
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
        public synchronized Map<String, Long> bytesByBroadcast() {
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

    /**
     * {@code batches} minibatches of {@code batch} examples labelled by one fixed random linear
     * teacher ({@code argmax(x·T)}, T from {@code teacherSeed}), features from {@code seed}: a rule a
     * model can learn across batches, and held-out data from the same rule with another seed.
     */
    static List<org.nd4j.linalg.dataset.DataSet> teacherData(long teacherSeed, long seed, int batches, int batch,
            int nIn, int nOut) {
        org.nd4j.linalg.api.ndarray.INDArray t = gaussian(new java.util.Random(teacherSeed), nIn, nOut);
        java.util.Random rng = new java.util.Random(seed);
        List<org.nd4j.linalg.dataset.DataSet> out = new java.util.ArrayList<>();
        for (int b = 0; b < batches; b++) {
            org.nd4j.linalg.api.ndarray.INDArray x = gaussian(rng, batch, nIn);
            org.nd4j.linalg.api.ndarray.INDArray idx = org.nd4j.linalg.factory.Nd4j.argMax(x.mmul(t), 1);
            org.nd4j.linalg.api.ndarray.INDArray y = org.nd4j.linalg.factory.Nd4j.zeros(
                    org.nd4j.linalg.api.buffer.DataType.FLOAT, batch, nOut);
            for (int i = 0; i < batch; i++) {
                y.putScalar(i, idx.getInt(i), 1.0);
            }
            out.add(new org.nd4j.linalg.dataset.DataSet(x, y));
        }
        return out;
    }

    private static org.nd4j.linalg.api.ndarray.INDArray gaussian(java.util.Random rng, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rng.nextGaussian();
        }
        return org.nd4j.linalg.factory.Nd4j.create(v, new long[] {rows, cols}, 'c');
    }

    /** Mean loss of {@code g} over {@code data}. */
    static double meanLoss(ComputationGraph g, List<org.nd4j.linalg.dataset.DataSet> data) {
        double sum = 0;
        for (org.nd4j.linalg.dataset.DataSet d : data) {
            sum += g.score(d);
        }
        return sum / data.size();
    }

    /** Waits until Spark's listener bus has delivered every event posted so far. */
    public static void drainListenerBus(JavaSparkContext sc) {
        try {
            sc.sc().listenerBus().waitUntilEmpty();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
