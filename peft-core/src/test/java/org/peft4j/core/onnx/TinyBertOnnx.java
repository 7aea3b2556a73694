package org.peft4j.core.onnx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import onnx.Onnx;
import org.nd4j.shade.protobuf.ByteString;

/**
 * Writes small synthetic ONNX graphs shaped like a PyTorch export of a BERT encoder: named
 * embeddings, biases and LayerNorm parameters, unnamed MatMul weights ({@code onnx::MatMul_N}),
 * decomposed LayerNorms, the erf GELU and the attention score scale. Vocabulary 7, 8 positions,
 * d = 4, 2 heads, MLP 8, 2 layers, eps 1e-12, unless changed.
 */
final class TinyBertOnnx {
    String prefix = "";
    int vocab = 7;
    int positions = 8;
    int d = 4;
    int heads = 2;
    int hidden = 8;
    int layers = 2;
    float eps = 1e-12f;
    boolean layerNormOp;

    private final Random random = new Random(5);
    private Onnx.GraphProto.Builder g;
    private int counter;

    static Onnx.TensorProto floats(String name, long[] shape, float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putFloat(f);
        }
        Onnx.TensorProto.Builder t = Onnx.TensorProto.newBuilder().setName(name)
                .setDataType(Onnx.TensorProto.DataType.FLOAT_VALUE).setRawData(ByteString.copyFrom(b.array()));
        for (long s : shape) {
            t.addDims(s);
        }
        return t.build();
    }

    private String init(String name, long... shape) {
        int n = 1;
        for (long s : shape) {
            n *= (int) s;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        g.addInitializer(floats(name, shape, v));
        return name;
    }

    private String node(String op, String... inputs) {
        String out = "/" + op + "_" + (counter++) + "_output_0";
        g.addNode(Onnx.NodeProto.newBuilder().setOpType(op).setName("/" + op + "_" + counter).addAllInput(
                java.util.List.of(inputs)).addOutput(out));
        return out;
    }

    private String constant(float value) {
        String out = "/Constant_" + (counter++) + "_output_0";
        g.addNode(Onnx.NodeProto.newBuilder().setOpType("Constant").setName("/Constant_" + counter).addOutput(out)
                .addAttribute(Onnx.AttributeProto.newBuilder().setName("value")
                        .setType(Onnx.AttributeProto.AttributeType.TENSOR)
                        .setT(floats("", new long[0], new float[] {value}))));
        return out;
    }

    private String layerNorm(String name, String x) {
        String gain = init(prefix + name + ".weight", d);
        String bias = init(prefix + name + ".bias", d);
        if (layerNormOp) {
            String out = "/LayerNormalization_" + (counter++) + "_output_0";
            g.addNode(Onnx.NodeProto.newBuilder().setOpType("LayerNormalization").setName("/ln" + counter)
                    .addInput(x).addInput(gain).addInput(bias).addOutput(out)
                    .addAttribute(Onnx.AttributeProto.newBuilder().setName("epsilon")
                            .setType(Onnx.AttributeProto.AttributeType.FLOAT).setF(eps)));
            return out;
        }
        String mean = node("ReduceMean", x);
        String centered = node("Sub", x, mean);
        String var = node("ReduceMean", node("Pow", centered, constant(2)));
        String sd = node("Sqrt", node("Add", var, constant(eps)));
        return node("Add", node("Mul", node("Div", centered, sd), gain), bias);
    }

    private String dense(String role, String x, int in, int out) {
        String w = init("onnx::MatMul_" + (700 + counter), in, out);
        String b = init(prefix + role + ".bias", out);
        return node("Add", b, node("MatMul", x, w));
    }

    Onnx.ModelProto build() {
        g = Onnx.GraphProto.newBuilder().setName("tiny-bert");
        for (String in : new String[] {"input_ids", "attention_mask", "token_type_ids"}) {
            g.addInput(Onnx.ValueInfoProto.newBuilder().setName(in));
        }
        String mask = node("Mul", node("Sub", constant(1), node("Cast", "attention_mask")), constant(-1e9f));
        String word = node("Gather", init(prefix + "embeddings.word_embeddings.weight", vocab, d), "input_ids");
        String type = node("Gather", init(prefix + "embeddings.token_type_embeddings.weight", 2, d), "token_type_ids");
        String pos = node("Gather", init(prefix + "embeddings.position_embeddings.weight", positions, d), "pos");
        String x = layerNorm("embeddings.LayerNorm", node("Add", node("Add", word, type), pos));
        for (int i = 0; i < layers; i++) {
            String l = "encoder.layer." + i + ".";
            String q = dense(l + "attention.self.query", x, d, d);
            String k = dense(l + "attention.self.key", x, d, d);
            String v = dense(l + "attention.self.value", x, d, d);
            String qt = node("Transpose", node("Reshape", q, constant(heads)));
            String kt = node("Transpose", node("Reshape", k, constant(heads)));
            String vt = node("Transpose", node("Reshape", v, constant(heads)));
            String scores = node("Div", node("MatMul", qt, kt), constant((float) Math.sqrt(d / heads)));
            String probs = node("Softmax", node("Add", scores, mask));
            String ctx = node("Reshape", node("Transpose", node("MatMul", probs, vt)), constant(d));
            String o = dense(l + "attention.output.dense", ctx, d, d);
            String a = layerNorm(l + "attention.output.LayerNorm", node("Add", o, x));
            String up = dense(l + "intermediate.dense", a, d, hidden);
            String gelu = node("Mul", node("Mul", up, node("Add", node("Erf", node("Div", up,
                    constant((float) Math.sqrt(2)))), constant(1))), constant(0.5f));
            String down = dense(l + "output.dense", gelu, hidden, d);
            x = layerNorm(l + "output.LayerNorm", node("Add", down, a));
        }
        g.addOutput(Onnx.ValueInfoProto.newBuilder().setName(x));
        return Onnx.ModelProto.newBuilder().setIrVersion(6).setProducerName("test").setGraph(g).build();
    }
}
