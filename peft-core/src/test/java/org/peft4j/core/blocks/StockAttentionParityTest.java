package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.SelfAttentionLayer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.core.testing.TinyGraphs;

/**
 * {@link Attention#fromStock} against DL4J's stock {@link SelfAttentionLayer}: the same forward
 * outputs, and the stock gradients exactly twice ours (the 1.0.0-M2.1 SameDiff defect recorded in
 * DESIGN.md), while ours passes the gradient check.
 */
class StockAttentionParityTest {

    private static final String[] ATTN_KEYS = {"Wq", "Wk", "Wv", "Wo"};

    @BeforeAll
    static void doublePrecision() {
        GradientChecks.useDoublePrecision();
    }

    /** {@code in → below (dense per step) → attn (stock, 2 heads) → out}. */
    private static ComputationGraph stock(long seed) {
        ComputationGraphConfiguration.GraphBuilder b = BlockGraphs.below(seed, 3, 4);
        b.addLayer("attn", new SelfAttentionLayer.Builder().nIn(4).nOut(4).nHeads(2).projectInput(true).build(),
                "below.rnn");
        return BlockGraphs.finish(b, "attn", 4, 3);
    }

    private static Gradient gradient(ComputationGraph g, INDArray x, INDArray y, INDArray mask) {
        g.setInputs(x);
        g.setLabels(y);
        g.setLayerMaskArrays(mask == null ? null : new INDArray[] {mask}, mask == null ? null : new INDArray[] {mask});
        g.computeGradientAndScore();
        Gradient grad = g.gradient();
        g.clearLayerMaskArrays();
        return grad;
    }

    @Test
    void convertedLayerGivesTheStockOutputsWithAndWithoutMask() {
        ComputationGraph stock = stock(1);
        ComputationGraph ours = Attention.fromStock(stock);
        assertInstanceOf(MultiHeadAttention.class, ours.getLayer("attn").conf().getLayer());
        assertEquals(TinyGraphs.paramsByLayer(stock).keySet(), TinyGraphs.paramsByLayer(ours).keySet());
        INDArray x = BlockGraphs.inputs(2, 3, 3, 5);
        INDArray a = stock.outputSingle(x);
        INDArray b = ours.outputSingle(x);
        assertTrue(a.equalsWithEps(b, 1e-5), "max |diff| " + a.sub(b).amaxNumber());
        INDArray mask = BlockGradientCheckTest.padMask(5, 0, 2, 4);
        INDArray am = stock.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        INDArray bm = ours.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        assertTrue(am.equalsWithEps(bm, 1e-5), "masked: max |diff| " + am.sub(bm).amaxNumber());
        // the mask changes the outputs (it is used, by both)
        assertTrue(am.sub(a).amaxNumber().doubleValue() > 1e-3);
    }

    @Test
    void stockGradientsAreTwiceOurs() {
        ComputationGraph stock = stock(3);
        ComputationGraph ours = Attention.fromStock(stock);
        INDArray x = BlockGraphs.inputs(4, 2, 3, 4);
        INDArray y = BlockGraphs.oneHot(5, 2, 3, 4);
        Gradient gs = gradient(stock, x, y, null);
        Gradient go = gradient(ours, x, y, null);
        for (String k : ATTN_KEYS) {
            INDArray s = gs.getGradientFor("attn_" + k);
            INDArray o = go.getGradientFor("attn_" + k);
            assertTrue(s.equalsWithEps(o.mul(2), 1e-8), "attn " + k + ": stock/ours = " + s.div(o).meanNumber());
        }
        // the doubled epsilon doubles the gradient of the layer below; the layer above is unaffected
        assertTrue(gs.getGradientFor("below_W").equalsWithEps(go.getGradientFor("below_W").mul(2), 1e-8));
        assertTrue(gs.getGradientFor("out_W").equalsWithEps(go.getGradientFor("out_W"), 1e-10));
        assertTrue(GradientChecks.passes(ours, x, y));
    }

    @Test
    void fromStockRejectsAGraphWithoutStockAttention() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Attention.fromStock(TinyGraphs.mlpForGradientCheck(1)));
        assertTrue(e.getMessage().contains("no stock SelfAttentionLayer"), e.getMessage());
    }
}
