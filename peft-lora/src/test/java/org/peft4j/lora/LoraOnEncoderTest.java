package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.blocks.ResidualAdd;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.blocks.internal.GatedResidualAdd;
import org.peft4j.core.testing.GradientChecks;

/**
 * LoRA on the query and value projections of peft4j's BERT-style encoder: the decoder's target regex
 * finds them, the wrapped encoder is the identity at init on the masked pooled output and on the
 * classifier, and it passes the gradient check with a padding mask.
 */
class LoraOnEncoderTest {

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    @Test
    void loraOnQueryAndValueProjectionsOfTheEncoder() {
        ComputationGraph base = Transformers.encoder().vocabSize(5).maxLength(6).dModel(4).heads(2).layers(1)
                .mlpRatio(2).classes(2).dataType(DataType.DOUBLE).updater(new NoOp()).seed(3).build();
        INDArray tokens = Nd4j.createFromArray(new double[][] {{1, 3, 0, 4}, {2, 2, 1, 0}});
        INDArray labels = Nd4j.createFromArray(new double[][] {{1, 0}, {0, 1}});
        INDArray mask = Nd4j.createFromArray(new double[][] {{1, 1, 1, 1}, {1, 1, 1, 0}});
        INDArray before = base.output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0];

        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(2).alpha(4)
                .targetModulesRegex("block\\d+\\.attn\\.(q|v)").modulesToSave("classifier").build());
        assertEquals(Set.of("block0.attn.q", "block0.attn.v"), peft.adaptedLayers().keySet());
        INDArray after = peft.graph().output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0];
        assertTrue(before.equalsWithEps(after, 1e-12), "identity at init");

        Nd4j.getRandom().setSeed(7);
        peft.adaptedLayers().keySet().forEach(name -> {
            INDArray b = peft.graph().getLayer(name).getParam(LoraDenseLayer.LORA_B);
            b.assign(Nd4j.randn(DataType.DOUBLE, b.shape()).muli(0.5));
        });
        assertTrue(GradientChecks.passes(peft.graph(), tokens, labels, mask, null));
    }

    private static final LoraConfig QV = LoraConfig.builder().rank(2).alpha(4)
            .targetModulesRegex("block\\d+\\.attn\\.(q|v)").modulesToSave("classifier").build();

    private static ComputationGraph twoBlocks() {
        return Transformers.encoder().vocabSize(7).maxLength(6).dModel(4).heads(2).layers(2)
                .mlpRatio(2).classes(2).dataType(DataType.DOUBLE).updater(new NoOp()).seed(5).build();
    }

    private static PeftModel wrapWithoutResidualGating(ComputationGraph base, LoraConfig cfg) {
        System.setProperty("peft4j.gateResidualInputs", "false");
        try {
            return Peft.wrap(base, cfg);
        } finally {
            System.clearProperty("peft4j.gateResidualInputs");
        }
    }

    private static boolean inputGradient(ComputationGraph g, String name) {
        return ((FrozenBaseLayer) ((LayerVertex) g.getConfiguration().getVertices().get(name)).getLayerConf()
                .getLayer()).isInputGradient();
    }

    /** Runs one backward pass; returns whether the embedding norm got an epsilon in it. */
    private static boolean step(ComputationGraph g) {
        boolean[] seen = new boolean[1];
        g.setListeners(new BaseTrainingListener() {
            @Override
            public void onBackwardPass(Model model) {
                seen[0] = ((ComputationGraph) model).getVertex(Transformers.EMBEDDING_NORM).getEpsilon() != null;
            }
        });
        g.setInputs(Nd4j.createFromArray(new double[][] {{1, 3, 0, 4, 6}, {2, 5, 1, 0, 0}}));
        g.setLabels(Nd4j.createFromArray(new double[][] {{1, 0}, {0, 1}}));
        g.setLayerMaskArrays(new INDArray[] {Nd4j.createFromArray(new double[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}})},
                null);
        g.computeGradientAndScore();
        g.setListeners();
        return seen[0];
    }

    /**
     * With LoRA on q, v the first block's residual add passes no epsilon to the frozen embedding
     * norm, nor do its q, k, v, so DL4J gives the norm a null epsilon (the wrapped graph without
     * residual gating, the old behaviour, gives it the sum of four); every trainable parameter gets
     * exactly the gradient of the old behaviour. Fails if the dead branch still gets an epsilon
     * or any gradient moves.
     */
    @Test
    void frozenBranchBelowTheFirstBlockGetsNoEpsilonAndGradientsAreUnchanged() {
        ComputationGraph base = twoBlocks();
        String baseJson = base.getConfiguration().toJson();
        PeftModel gated = Peft.wrap(base, QV);
        PeftModel old = wrapWithoutResidualGating(base, QV);
        assertEquals(baseJson, base.getConfiguration().toJson(), "the user's graph is unchanged");
        assertSame(ResidualAdd.class, base.getConfiguration().getVertices().get("block0.attn.residual").getClass());

        ComputationGraph g = gated.graph();
        ComputationGraph o = old.graph();
        GraphVertex r0 = g.getConfiguration().getVertices().get("block0.attn.residual");
        assertInstanceOf(GatedResidualAdd.class, r0);
        assertArrayEquals(new boolean[] {false, true}, ((GatedResidualAdd) r0).inputGradients());
        assertSame(ResidualAdd.class, g.getConfiguration().getVertices().get("block0.mlp.residual").getClass());
        assertSame(ResidualAdd.class, g.getConfiguration().getVertices().get("block1.attn.residual").getClass());
        assertEquals(r0, ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson()).getVertices()
                .get("block0.attn.residual"), "the gate survives a JSON round trip");
        for (String p : new String[] {"q", "v"}) {
            assertFalse(inputGradient(g, "block0.attn." + p), p);
            assertTrue(inputGradient(o, "block0.attn." + p), p);
            assertTrue(inputGradient(g, "block1.attn." + p), p);
        }
        // k trains nothing and nothing below it trains: skipped by DL4J either way
        assertFalse(inputGradient(o, "block0.attn.k"));
        assertSame(ResidualAdd.class, o.getConfiguration().getVertices().get("block0.attn.residual").getClass());

        Nd4j.getRandom().setSeed(11);
        INDArray params = g.params().dup();
        params.assign(params.add(Nd4j.randn(DataType.DOUBLE, params.shape()).muli(0.3)));
        g.setParams(params);
        o.setParams(params.dup());
        assertFalse(step(g), "the frozen branch gets no epsilon");
        assertTrue(step(o), "old behaviour: it does");
        assertEquals(o.score(), g.score(), 0.0);
        Map<String, INDArray> og = o.gradient().gradientForVariable();
        Map<String, INDArray> gg = g.gradient().gradientForVariable();
        assertEquals(og.keySet(), gg.keySet());
        assertTrue(gg.keySet().stream().anyMatch(k -> k.startsWith("block0.attn.q_")), gg.keySet().toString());
        og.forEach((k, v) -> assertEquals(v, gg.get(k), k));
        assertTrue(GradientChecks.passes(g, Nd4j.createFromArray(new double[][] {{1, 3, 0, 4, 6}, {2, 5, 1, 0, 0}}),
                Nd4j.createFromArray(new double[][] {{1, 0}, {0, 1}}),
                Nd4j.createFromArray(new double[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}), null));
    }

    /**
     * Something trainable at or below the embedding norm (the norm saved in full), or DL4J's own
     * element-wise add at the residuals: no residual add is gated and q, k, v pass epsilons, as before.
     */
    @Test
    void trainableNormBelowOrDl4jResidualsKeepEpsilonsFlowing() {
        ComputationGraph base = twoBlocks();
        LoraConfig withNorm = LoraConfig.builder().rank(2).alpha(4).targetModulesRegex("block\\d+\\.attn\\.(q|v)")
                .modulesToSave("classifier", Transformers.EMBEDDING_NORM).build();
        ComputationGraph g = Peft.wrap(base, withNorm).graph();
        ComputationGraphConfiguration conf = base.getConfiguration().clone();
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            if (e.getValue() instanceof ResidualAdd) {
                e.setValue(new ElementWiseVertex(ElementWiseVertex.Op.Add));
            }
        }
        ComputationGraph dl4jAdds = new ComputationGraph(conf);
        dl4jAdds.init(base.params().dup(), true);
        ComputationGraph h = Peft.wrap(dl4jAdds, QV).graph();
        for (ComputationGraph w : new ComputationGraph[] {g, h}) {
            assertFalse(w.getConfiguration().getVertices().values().stream().anyMatch(v -> v instanceof GatedResidualAdd));
            for (String p : new String[] {"q", "v"}) {
                assertTrue(inputGradient(w, "block0.attn." + p), p);
            }
            assertTrue(step(w));
        }
    }
}
