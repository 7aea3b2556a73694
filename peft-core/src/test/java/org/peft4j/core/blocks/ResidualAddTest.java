package org.peft4j.core.blocks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.deeplearning4j.exception.DL4JInvalidInputException;
import org.deeplearning4j.nn.api.MaskState;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.ElementWiseVertex;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.peft4j.core.blocks.internal.ResidualAddVertex;

/**
 * {@link ResidualAdd} gives what DL4J's {@code ElementWiseVertex(Op.Add)} gives: the same encoder
 * with either vertex has the same outputs, score and gradients (float32, padded batch), the same
 * output masks (shared, different and fractional masks), and a graph configured with DL4J's vertex
 * keeps it; inputs of two shapes are refused by name. (The double-precision gradient check of the
 * encoder, {@code EncoderTest}, runs through it.)
 */
class ResidualAddTest {

    private static ComputationGraph encoder() {
        return Transformers.encoder().vocabSize(13).maxLength(8).dModel(8).heads(2).layers(2).mlpRatio(2).classes(3)
                .dataType(DataType.FLOAT).updater(new NoOp()).seed(9).build();
    }

    /** The same graph with DL4J's element-wise add at every residual, on the same parameters. */
    private static ComputationGraph withDl4jAdds(ComputationGraph g) {
        ComputationGraphConfiguration conf = g.getConfiguration().clone();
        Map<String, GraphVertex> vertices = conf.getVertices();
        int replaced = 0;
        for (Map.Entry<String, GraphVertex> e : vertices.entrySet()) {
            if (e.getValue() instanceof ResidualAdd) {
                e.setValue(new ElementWiseVertex(ElementWiseVertex.Op.Add));
                replaced++;
            }
        }
        assertEquals(4, replaced, "two residual adds per block");
        ComputationGraph h = new ComputationGraph(conf);
        h.init(g.params().dup(), true);
        return h;
    }

    @Test
    void encoderWithResidualAddMatchesDl4jsElementWiseAddOutputsAndGradients() {
        ComputationGraph g = encoder();
        ComputationGraph h = withDl4jAdds(g);
        assertInstanceOf(ElementWiseVertex.class, ComputationGraphConfiguration.fromJson(h.getConfiguration().toJson())
                .getVertices().get("block0.attn.residual"), "a graph configured with DL4J's vertex keeps it");
        INDArray x = Nd4j.createFromArray(new float[][] {{1, 5, 3, 7, 2, 11}, {4, 4, 9, 12, 0, 6}});
        INDArray mask = Nd4j.createFromArray(new float[][] {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}});
        INDArray y = Nd4j.createFromArray(new float[][] {{0, 1, 0}, {0, 0, 1}});
        INDArray out = g.output(false, new INDArray[] {x}, new INDArray[] {mask})[0];
        assertEquals(h.output(false, new INDArray[] {x}, new INDArray[] {mask})[0], out);
        MultiDataSet batch = new MultiDataSet(new INDArray[] {x}, new INDArray[] {y}, new INDArray[] {mask}, null);
        g.setInputs(x);
        g.setLabels(y);
        g.setLayerMaskArrays(new INDArray[] {mask}, null);
        g.computeGradientAndScore();
        h.setInputs(x);
        h.setLabels(y);
        h.setLayerMaskArrays(new INDArray[] {mask}, null);
        h.computeGradientAndScore();
        assertEquals(h.score(), g.score(), 0.0);
        Gradient gg = g.gradient();
        Gradient hg = h.gradient();
        assertEquals(hg.gradientForVariable().keySet(), gg.gradientForVariable().keySet());
        for (String k : gg.gradientForVariable().keySet()) {
            assertEquals(hg.getGradientFor(k), gg.getGradientFor(k), k);
        }
        assertTrue(gg.gradient().norm2Number().doubleValue() > 0);
        // and after a fit step each, still equal
        g.fit(batch);
        h.fit(batch);
        assertEquals(h.params(), g.params());
    }

    private static ResidualAddVertex vertex() {
        return (ResidualAddVertex) new ResidualAdd().instantiate(null, "r", 0, null, false, DataType.FLOAT);
    }

    private static org.deeplearning4j.nn.graph.vertex.impl.ElementWiseVertex dl4jVertex() {
        return (org.deeplearning4j.nn.graph.vertex.impl.ElementWiseVertex) new ElementWiseVertex(
                ElementWiseVertex.Op.Add).instantiate(null, "e", 0, null, false, DataType.FLOAT);
    }

    @Test
    void masksAreDl4jsOrAndASharedZeroOneMaskIsPassedOnAsItIs() {
        // the rows' masks as the blocks make them: [rows, 1] in 'f' order, one array per block, in the
        // default floating-point type (other tests of this JVM may have set it to double)
        DataType t = Nd4j.defaultFloatingPointType();
        INDArray a = Nd4j.createFromArray(1f, 1f, 0f, 1f, 0f).castTo(t).reshape('f', 5, 1);
        INDArray same = a.dup('f').reshape('f', 5, 1);
        INDArray other = Nd4j.createFromArray(0f, 1f, 1f, 0f, 0f).castTo(t).reshape(5, 1);
        INDArray fractional = Nd4j.createFromArray(0.5f, 1f, 0f, 1f, 0f).castTo(t).reshape(5, 1);
        INDArray[][] cases = {{a, a}, {a, same}, {a, other}, {fractional, fractional}, {a, null}};
        for (INDArray[] masks : cases) {
            org.nd4j.common.primitives.Pair<INDArray, MaskState> ours = vertex().feedForwardMaskArrays(masks.clone(),
                    MaskState.Active, 1);
            org.nd4j.common.primitives.Pair<INDArray, MaskState> theirs = dl4jVertex().feedForwardMaskArrays(
                    masks.clone(), MaskState.Active, 1);
            assertEquals(theirs.getFirst(), ours.getFirst());
            assertEquals(theirs.getSecond(), ours.getSecond());
        }
        assertSame(a, vertex().feedForwardMaskArrays(new INDArray[] {a, same}, MaskState.Active, 1).getFirst());
        assertEquals(Nd4j.createFromArray(1f, 1f, 1f, 1f, 0f).castTo(t).reshape(5, 1),
                vertex().feedForwardMaskArrays(new INDArray[] {a, other}, MaskState.Active, 1).getFirst());
    }

    @Test
    void forwardAndBackwardAreTheSumAndTwoCopiesOfTheGradient() {
        ResidualAddVertex v = vertex();
        LayerWorkspaceMgr ws = LayerWorkspaceMgr.noWorkspaces();
        INDArray a = Nd4j.rand(DataType.FLOAT, 6, 4);
        INDArray b = Nd4j.rand(DataType.FLOAT, 6, 4);
        v.setInputs(new INDArray[] {a, b});
        assertEquals(a.add(b), v.doForward(true, ws));
        INDArray eps = Nd4j.rand(DataType.FLOAT, 6, 4);
        v.setEpsilon(eps);
        INDArray[] grads = v.doBackward(false, ws).getSecond();
        assertEquals(2, grads.length);
        assertEquals(eps, grads[0]);
        assertEquals(eps, grads[1]);
        assertTrue(grads[0] != eps && grads[1] != eps && grads[0] != grads[1], "each input gets its own copy");
    }

    @Test
    void inputsOfTwoShapesAreRefusedByName() {
        ResidualAddVertex v = vertex();
        v.setInputs(new INDArray[] {Nd4j.rand(DataType.FLOAT, 6, 4), Nd4j.rand(DataType.FLOAT, 1, 4)});
        DL4JInvalidInputException e = assertThrows(DL4JInvalidInputException.class,
                () -> v.doForward(false, LayerWorkspaceMgr.noWorkspaces()));
        assertEquals("vertex \"r\" (ResidualAdd) needs two inputs of one shape, got [6, 4] and [1, 4] (use "
                + "ElementWiseVertex(Op.Add) to broadcast)", e.getMessage());
    }

    @Test
    void configurationIsJsonSerializableAndEqualOnlyToItsKind() {
        ComputationGraph g = encoder();
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(g.getConfiguration().toJson());
        assertEquals(new ResidualAdd(), back.getVertices().get("block1.mlp.residual"));
        assertEquals(g.getConfiguration(), back);
        assertEquals(new ResidualAdd(), new ResidualAdd().clone());
        assertNotEquals(new ElementWiseVertex(ElementWiseVertex.Op.Add), new ResidualAdd());
        assertEquals(0, new ResidualAdd().numParams(true));
    }
}
