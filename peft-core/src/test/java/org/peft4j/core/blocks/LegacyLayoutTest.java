package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.prefix.PrefixConfig;

/**
 * Graphs built by {@link Transformers} before it carried time-distributed rows between the blocks
 * (sequences {@code [b, d, T]}, a {@code RnnToFeedForwardPreProcessor} on every dense layer and
 * {@code *.reshape} vertices; saved with {@code ModelSerializer} under {@code legacy-layout/} by
 * {@link LegacyLayoutFixtureWriter} at commit 2ff306e) still load, compute what they computed then,
 * take tuners, and equal the rows layout built from the same weights.
 */
class LegacyLayoutTest {
    private static final INDArray TOKENS = Nd4j.createFromArray(new float[][] {{1, 4, 2, 7, 3, 9}, {5, 2, 8, 1, 0, 0}});
    private static final INDArray MASK = Nd4j.createFromArray(new float[][] {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}});

    private static ComputationGraph load(String name) throws Exception {
        try (InputStream in = LegacyLayoutTest.class.getResourceAsStream("legacy-layout/" + name + ".zip")) {
            return ModelSerializer.restoreComputationGraph(in, true);
        }
    }

    /** The output stored beside the model: shape on the first line, then the values in 'c' order. */
    private static INDArray expected(String name) throws Exception {
        try (InputStream in = LegacyLayoutTest.class.getResourceAsStream("legacy-layout/" + name + "-output.txt")) {
            List<String> lines = new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList();
            long[] shape = java.util.Arrays.stream(lines.get(0).replaceAll("[\\[\\] ]", "").split(","))
                    .mapToLong(Long::parseLong).toArray();
            float[] v = new float[lines.size() - 1];
            for (int i = 1; i < lines.size(); i++) {
                v[i - 1] = Float.parseFloat(lines.get(i));
            }
            return Nd4j.create(v, shape, 'c');
        }
    }

    private static INDArray out(ComputationGraph g) {
        return g.output(false, new INDArray[] {TOKENS}, new INDArray[] {MASK})[0];
    }

    /**
     * The decoder's output at the real (unmasked) positions, zero elsewhere: what a wrapped graph
     * must reproduce (its split output layer gives the padded positions a uniform distribution).
     */
    private static INDArray real(INDArray decoderOut) {
        INDArray m = MASK.castTo(decoderOut.dataType()).reshape(2, 1, 6);
        return decoderOut.mul(m.broadcast(decoderOut.shape()));
    }

    private static void assertClose(INDArray expected, INDArray actual, double tol) {
        assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(actual.shape()));
        double diff = expected.castTo(DataType.DOUBLE).sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
        assertTrue(diff <= tol, "max difference " + diff);
    }

    /** The rows-layout graph of the same builder settings, with the legacy graph's weights. */
    private static ComputationGraph rowsLayout(ComputationGraph legacy, Transformers.ModelBuilder<?> builder) {
        ComputationGraph g = builder.vocabSize(11).maxLength(8).dModel(8).heads(2).layers(2).mlpRatio(2)
                .updater(new Adam(1e-2)).build();
        for (org.deeplearning4j.nn.api.Layer l : legacy.getLayers()) {
            l.paramTable().forEach((k, v) -> g.getLayer(l.conf().getLayer().getLayerName()).getParam(k).assign(v));
        }
        return g;
    }

    @Test
    void legacyGraphsLoadWithTheirOwnLayoutAndGiveTheirSavedOutputs() throws Exception {
        for (String name : List.of("decoder", "encoder")) {
            ComputationGraph g = load(name);
            Map<String, GraphVertex> v = g.getConfiguration().getVertices();
            assertTrue(v.containsKey("block1.attn.reshape") && v.containsKey("block1.mlp.reshape"), name);
            assertFalse(v.containsKey(Transformers.SEQUENCE), name);
            assertFalse(((AttentionCore) v.get("block0.attn.core")).isRowsOutput(), name);
            assertFalse(((PositionalEmbedding) g.getLayer("embed.pos").conf().getLayer()).isRowsOutput(), name);
            assertClose(expected(name), out(g), 1e-5);
            ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson());
            assertEquals(g.getConfiguration(), back, name + " JSON round trip");
        }
    }

    @Test
    void theRowsLayoutComputesWhatTheLegacyLayoutComputes() throws Exception {
        ComputationGraph dec = load("decoder");
        assertClose(out(dec), out(rowsLayout(dec, Transformers.decoder())), 1e-5);
        ComputationGraph enc = load("encoder");
        assertClose(out(enc), out(rowsLayout(enc, Transformers.encoder().layerNormEps(1e-12).classes(3))), 1e-5);
    }

    @Test
    void tunersWrapLegacyGraphsAsTheIdentityAndTrainThem() throws Exception {
        ComputationGraph dec = load("decoder");
        INDArray labels = Nd4j.zeros(DataType.FLOAT, 2, 1, 6);
        MultiDataSet step = new MultiDataSet(new INDArray[] {TOKENS}, new INDArray[] {labels}, new INDArray[] {MASK},
                new INDArray[] {MASK});
        INDArray before = out(dec);
        for (PeftConfig cfg : List.<PeftConfig>of(
                org.peft4j.core.FineTuningConfig.transferLearning("block1.attn.v"),
                AdapterConfig.builder().houlsby().reductionFactor(2).build(),
                PrefixConfig.builder().numVirtualTokens(2).build())) {
            PeftModel m = Peft.wrap(dec, cfg);
            if (cfg instanceof PrefixConfig) {
                // virtual keys and values change the attention from the start
                assertEquals(java.util.Arrays.toString(before.shape()), java.util.Arrays.toString(out(m.graph()).shape()));
            } else {
                assertClose(real(before), real(out(m.graph())), 1e-6);
            }
            m.graph().fit(step);
            assertTrue(Double.isFinite(m.graph().score()), cfg.toString());
            assertTrue(real(out(m.graph())).sub(real(before)).amaxNumber().doubleValue() > 0, cfg + " trained nothing");
        }
        ComputationGraph enc = load("encoder");
        PeftModel houlsby = Peft.wrap(enc, AdapterConfig.builder().houlsby().reductionFactor(2).build());
        assertClose(out(enc), out(houlsby.graph()), 1e-6);
    }
}
