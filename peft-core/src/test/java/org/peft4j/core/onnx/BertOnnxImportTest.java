package org.peft4j.core.onnx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import onnx.Onnx;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.blocks.AttentionCore;
import org.peft4j.core.blocks.LayerNorm;
import org.peft4j.core.blocks.Transformers;

/**
 * The ONNX BERT importer on small synthetic graphs: sizes, heads and eps read from the file, every
 * weight in its place (the unnamed MatMul weights found through their biases, the token-type row
 * folded into the positional table), name prefixes and the LayerNormalization op, and a clear
 * {@link OnnxFormatException} for each structure it does not understand.
 */
class BertOnnxImportTest {

    @BeforeAll
    static void floats() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    private static Onnx.TensorProto initializer(Onnx.ModelProto m, String name) {
        return m.getGraph().getInitializerList().stream().filter(t -> t.getName().equals(name)).findFirst()
                .orElseThrow(() -> new AssertionError("no initializer " + name));
    }

    private static INDArray array(Onnx.TensorProto t) {
        java.nio.FloatBuffer f = t.getRawData().asReadOnlyByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .asFloatBuffer();
        float[] v = new float[f.remaining()];
        f.get(v);
        return Nd4j.create(v, t.getDimsList().stream().mapToLong(Long::longValue).toArray(), 'c');
    }

    /** The unnamed weight of the MatMul whose output the bias {@code biasName} is added to. */
    private static Onnx.TensorProto weightOf(Onnx.ModelProto m, String biasName) {
        Onnx.NodeProto add = m.getGraph().getNodeList().stream().filter(n -> n.getInputList().contains(biasName))
                .findFirst().orElseThrow();
        Onnx.NodeProto mm = m.getGraph().getNodeList().stream()
                .filter(n -> n.getOutputList().contains(add.getInput(1))).findFirst().orElseThrow();
        return initializer(m, mm.getInput(1));
    }

    private static ComputationGraph load(Onnx.ModelProto m) {
        return BertOnnxImport.fromModel(m, UnaryOperator.identity());
    }

    @Test
    void sizesHeadsEpsAndEveryWeightComeFromTheFile() {
        Onnx.ModelProto m = new TinyBertOnnx().build();
        ComputationGraph g = load(m);
        AttentionCore core = (AttentionCore) g.getConfiguration().getVertices().get("block1.attn.core");
        assertEquals(2, core.getHeads());
        assertEquals(1e-12f, (float) ((LayerNorm) g.getLayer("block1.ln2").conf().getLayer()).eps());
        assertEquals(7 * 4 + 8 * 4 + 2 * 4 + 2 * (4 * (4 * 4 + 4) + (4 * 8 + 8) + (8 * 4 + 4) + 4 * 4),
                g.numParams());
        assertEquals(array(initializer(m, "embeddings.word_embeddings.weight")), g.getLayer("embed.tokens").getParam("W"));
        INDArray pos = array(initializer(m, "embeddings.position_embeddings.weight"))
                .addRowVector(array(initializer(m, "embeddings.token_type_embeddings.weight")).getRow(0));
        assertEquals(pos, g.getLayer("embed.pos").getParam("W"));
        String[][] roles = {{"attention.self.query", "attn.q"}, {"attention.self.key", "attn.k"},
            {"attention.self.value", "attn.v"}, {"attention.output.dense", "attn.o"},
            {"intermediate.dense", "mlp.up"}, {"output.dense", "mlp.down"}};
        for (int i = 0; i < 2; i++) {
            for (String[] r : roles) {
                String bias = "encoder.layer." + i + "." + r[0] + ".bias";
                String layer = "block" + i + "." + r[1];
                assertEquals(array(weightOf(m, bias)), g.getLayer(layer).getParam("W"), layer);
                assertEquals(array(initializer(m, bias)), g.getLayer(layer).getParam("b").reshape(-1), layer);
            }
            assertEquals(array(initializer(m, "encoder.layer." + i + ".attention.output.LayerNorm.weight")),
                    g.getLayer("block" + i + ".ln1").getParam("g").reshape(-1));
            assertEquals(array(initializer(m, "encoder.layer." + i + ".output.LayerNorm.bias")),
                    g.getLayer("block" + i + ".ln2").getParam("b").reshape(-1));
        }
        assertEquals(array(initializer(m, "embeddings.LayerNorm.weight")), g.getLayer("embed.ln").getParam("g").reshape(-1));
        INDArray pooled = g.outputSingle(Nd4j.createFromArray(new float[][] {{1, 2, 3}}));
        assertEquals(4, pooled.size(1));
    }

    @Test
    void prefixedNamesLayerNormalizationNodesAndStreamsAreRead() throws Exception {
        TinyBertOnnx t = new TinyBertOnnx();
        t.prefix = "bert.";
        t.layerNormOp = true;
        t.eps = 1e-6f;
        t.layers = 3;
        Onnx.ModelProto m = t.build();
        ComputationGraph g = BertOnnxImport.load(new ByteArrayInputStream(m.toByteArray()), b -> b.classes(3));
        assertEquals(1e-6f, (float) ((LayerNorm) g.getLayer("block2.ln1").conf().getLayer()).eps());
        assertEquals(java.util.List.of(Transformers.CLASSIFIER), g.getConfiguration().getNetworkOutputs());
        assertEquals(array(weightOf(m, "bert.encoder.layer.2.output.dense.bias")), g.getLayer("block2.mlp.down").getParam("W"));
    }

    private static void fails(Onnx.ModelProto m, String... fragments) {
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> load(m));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message \"" + e.getMessage() + "\" lacks \"" + f + "\"");
        }
    }

    private static Onnx.ModelProto edit(Consumer<Onnx.GraphProto.Builder> change) {
        Onnx.ModelProto m = new TinyBertOnnx().build();
        Onnx.GraphProto.Builder g = m.getGraph().toBuilder();
        change.accept(g);
        return m.toBuilder().setGraph(g).build();
    }

    private static int initializerIndex(Onnx.GraphProto.Builder g, String name) {
        for (int i = 0; i < g.getInitializerCount(); i++) {
            if (g.getInitializer(i).getName().equals(name)) {
                return i;
            }
        }
        throw new AssertionError(name);
    }

    private static int nodeIndex(Onnx.GraphProto.Builder g, String op, String input) {
        for (int i = 0; i < g.getNodeCount(); i++) {
            if (g.getNode(i).getOpType().equals(op) && (input == null || g.getNode(i).getInputList().contains(input))) {
                return i;
            }
        }
        throw new AssertionError(op + " " + input);
    }

    @Test
    void missingEmbeddingsOrLayerParametersAreNamed() {
        fails(edit(g -> g.removeInitializer(initializerIndex(g, "embeddings.word_embeddings.weight"))),
                "embeddings.word_embeddings.weight", "BERT-family");
        fails(edit(g -> g.removeInitializer(initializerIndex(g, "encoder.layer.1.attention.self.key.bias"))),
                "missing initializer \"encoder.layer.1.attention.self.key.bias\"");
        fails(edit(g -> g.removeInitializer(initializerIndex(g, "encoder.layer.1.output.LayerNorm.weight"))),
                "encoder.layer.1.output.LayerNorm.weight");
    }

    @Test
    void layersMustBeNumberedWithoutGaps() {
        fails(edit(g -> {
            for (int i = 0; i < g.getInitializerCount(); i++) {
                String n = g.getInitializer(i).getName();
                if (n.startsWith("encoder.layer.1.")) {
                    g.setInitializer(i, g.getInitializer(i).toBuilder().setName(n.replace("layer.1.", "layer.3.")));
                }
            }
        }), "encoder layers [0, 3] are not numbered 0..3");
    }

    @Test
    void aBiasNotAddedToAMatMulOutputIsReported() {
        fails(edit(g -> {
            int i = nodeIndex(g, "Add", "encoder.layer.0.attention.self.value.bias");
            g.setNode(i, g.getNode(i).toBuilder().setOpType("Sum"));
        }), "expected \"encoder.layer.0.attention.self.value.bias\" to be added (Add) to the output of a MatMul",
                "used by [Sum");
    }

    @Test
    void aWeightOfTheWrongShapeIsReported() {
        Onnx.ModelProto m = new TinyBertOnnx().build();
        String w = weightOf(m, "encoder.layer.1.intermediate.dense.bias").getName();
        Onnx.GraphProto.Builder g = m.getGraph().toBuilder();
        g.setInitializer(initializerIndex(g, w), TinyBertOnnx.floats(w, new long[] {8, 4}, new float[32]));
        fails(m.toBuilder().setGraph(g).build(), w, "has shape [8, 4], expected [4, 8]");
    }

    @Test
    void tanhGeluIsRejected() {
        fails(edit(g -> {
            int i = nodeIndex(g, "Erf", null);
            g.setNode(i, g.getNode(i).toBuilder().setOpType("Tanh"));
        }), "layer 0", "exact GELU", "tanh approximation is not supported");
    }

    @Test
    void externalDataAndOtherElementTypesAreRejected() {
        fails(edit(g -> {
            int i = initializerIndex(g, "embeddings.word_embeddings.weight");
            g.setInitializer(i, g.getInitializer(i).toBuilder().setDataLocation(Onnx.TensorProto.DataLocation.EXTERNAL));
        }), "external file");
        fails(edit(g -> {
            int i = initializerIndex(g, "embeddings.word_embeddings.weight");
            g.setInitializer(i, g.getInitializer(i).toBuilder().setDataType(Onnx.TensorProto.DataType.FLOAT16_VALUE));
        }), "FLOAT16", "expected FLOAT");
    }

    @Test
    void aGraphNotReturningTheLastLayerIsRejected() {
        fails(edit(g -> g.setOutput(0, g.getOutput(0).toBuilder().setName("pooler_output"))),
                "the graph outputs [pooler_output] do not include the last layer's output");
    }

    @Test
    void differentLayerNormEpsAreRejected() {
        fails(edit(g -> {
            // the first Constant after the embedding LayerNorm's Sqrt input: replace its eps by 1e-5
            int add = nodeIndex(g, "Sqrt", null);
            String epsTensor = g.getNodeList().stream().filter(n -> n.getOutputList().contains(g.getNode(add).getInput(0)))
                    .findFirst().orElseThrow().getInput(1);
            for (int i = 0; i < g.getNodeCount(); i++) {
                if (g.getNode(i).getOutputList().contains(epsTensor)) {
                    g.setNode(i, g.getNode(i).toBuilder().setAttribute(0, g.getNode(i).getAttribute(0).toBuilder()
                            .setT(TinyBertOnnx.floats("", new long[0], new float[] {1e-5f}))));
                }
            }
        }), "LayerNorm eps differ");
    }

    @Test
    void customizeMustNotChangeTheSizes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BertOnnxImport.fromModel(new TinyBertOnnx().build(), b -> b.mlpRatio(4)));
        assertTrue(e.getMessage().contains("did customize change a size?"), e.getMessage());
    }

    @Test
    void bytesThatAreNotAModelAreReported() {
        OnnxFormatException e = assertThrows(OnnxFormatException.class,
                () -> BertOnnxImport.load(new ByteArrayInputStream(new byte[] {0x3A, (byte) 0xFF, 0x01}),
                        UnaryOperator.identity()));
        assertTrue(e.getMessage().contains("not a valid ONNX model"), e.getMessage());
    }
}
