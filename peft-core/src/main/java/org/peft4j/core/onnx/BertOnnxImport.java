package org.peft4j.core.onnx;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import onnx.Onnx;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.protobuf.CodedInputStream;
import org.nd4j.shade.protobuf.InvalidProtocolBufferException;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.blocks.LayerNorm;
import org.peft4j.core.blocks.PositionalEmbedding;
import org.peft4j.core.blocks.Transformers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads a BERT-family encoder exported to ONNX from Hugging Face {@code transformers} (the
 * sentence-transformers all-MiniLM-L6-v2 export, for one) and returns the graph of
 * {@link Transformers#encoder()} with every weight set, so its {@code pool} output is the model's
 * mean-pooled sentence embedding (the ONNX output {@code last_hidden_state} averaged over the
 * attention mask).
 *
 * <p>How the file is read: the sizes come from the named initializers
 * ({@code [prefix]embeddings.word_embeddings.weight [vocab, d]},
 * {@code embeddings.position_embeddings.weight [maxLength, d]},
 * {@code encoder.layer.{i}.intermediate.dense.bias [hidden]}, ...). The projection weights of a
 * PyTorch export are unnamed ({@code onnx::MatMul_787}); each is found by following the graph from
 * its bias: the {@code Add} that uses {@code encoder.layer.{i}.attention.self.query.bias} adds it to
 * the output of a {@code MatMul} whose second input is the weight {@code [in, out]}, already DL4J's
 * {@code DenseLayer} layout {@code W [nIn, nOut]}. The import also checks the wiring it relies on:
 * q, k and v read the previous LayerNorm's output, each LayerNorm reads the residual sum of its
 * sub-block, the MLP uses the erf GELU, the graph returns the last LayerNorm's output; it reads the
 * head count from the attention score scale {@code 1/√headSize} and every LayerNorm {@code eps}
 * from the graph (decomposed {@code ReduceMean … Sqrt} form or an opset-17
 * {@code LayerNormalization} node). Anything else fails with an {@link OnnxFormatException} naming
 * what was missing or unexpected.
 *
 * <p>Token types: the encoder is single-segment; row 0 of {@code token_type_embeddings} is added to
 * every row of the positional table ({@code embed.pos}), exact for inputs whose token types are all
 * 0 (the only ones sentence-transformers sends).
 *
 * <p>Thread-safety: stateless; concurrent calls are independent.
 */
public final class BertOnnxImport {
    private static final Logger LOG = LoggerFactory.getLogger(BertOnnxImport.class);

    private static final String WORD = "embeddings.word_embeddings.weight";
    private static final Pattern LAYER = Pattern.compile("encoder\\.layer\\.(\\d+)\\.attention\\.self\\.query\\.bias");

    /** The module path of a layer's attention LayerNorm, after {@code encoder.layer.{i}.}; in the encoder graph {@code ln1}. */
    private static final String ATTENTION_NORM = "attention.output.LayerNorm";
    /** The module path of a layer's MLP LayerNorm, after {@code encoder.layer.{i}.}; in the encoder graph {@code ln2}. */
    private static final String OUTPUT_NORM = "output.LayerNorm";
    private static final String EMBEDDING_NORM = "embeddings.LayerNorm";

    /**
     * The ONNX roles (module paths after {@code encoder.layer.{i}.}) of the six projections of a
     * layer, with their names in the encoder graph.
     */
    private static final String[][] ROLES = {
        {"attention.self.query", "attn.q"},
        {"attention.self.key", "attn.k"},
        {"attention.self.value", "attn.v"},
        {"attention.output.dense", "attn.o"},
        {"intermediate.dense", "mlp.up"},
        {"output.dense", "mlp.down"},
    };

    private BertOnnxImport() {
    }

    /**
     * The correspondence between the module paths of Hugging Face transformers' {@code BertModel}
     * (the model PEFT wraps for an adapter of a BERT-family encoder, sentence-transformers'
     * all-MiniLM-L6-v2 among them) and the layers of {@code encoder}, a graph of
     * {@link Transformers#encoder()} such as {@link #load} returns:
     * {@code embeddings.word_embeddings} is {@code embed.tokens}, {@code embeddings.LayerNorm} is
     * {@code embed.ln}, and in layer {@code i}
     * {@code encoder.layer.i.attention.self.query / key / value} are {@code block<i>.attn.q / k / v},
     * {@code attention.output.dense} is {@code attn.o}, {@code intermediate.dense} is
     * {@code mlp.up}, {@code output.dense} is {@code mlp.down}, {@code attention.output.LayerNorm}
     * and {@code output.LayerNorm} are {@code ln1} and {@code ln2}; a head {@code classifier}
     * ({@code EncoderBuilder.classes}) is {@code classifier}, the name
     * {@code BertForSequenceClassification} gives its head (peft4j's head reads the mean-pooled
     * output, BERT's the pooler's, so the head's weights carry over, its inputs do not). The
     * position and token-type embeddings (fused into {@code embed.pos}) and {@code pooler.dense}
     * have no layer. Tolerated prefixes: {@code bert.} (PEFT around
     * {@code BertForSequenceClassification}) and {@code 0.auto_model.} (around a
     * sentence-transformers model).
     *
     * @throws IllegalArgumentException if {@code encoder} lacks a layer of that structure
     */
    public static ModuleNames moduleNames(ComputationGraph encoder) {
        Objects.requireNonNull(encoder, "encoder must not be null");
        Map<String, org.deeplearning4j.nn.conf.graph.GraphVertex> v = encoder.getConfiguration().getVertices();
        ModuleNames.Builder b = ModuleNames.builder()
                .map("embeddings.word_embeddings", Transformers.TOKEN_EMBEDDING)
                .map(EMBEDDING_NORM, Transformers.EMBEDDING_NORM)
                .unmapped("embeddings.position_embeddings", "embeddings.token_type_embeddings", "pooler.dense")
                .tolerate("bert.", "0.auto_model.");
        int layers = 0;
        while (v.containsKey(Transformers.block(layers) + ".ln2")) {
            String block = Transformers.block(layers);
            String path = "encoder.layer." + layers + ".";
            for (String[] role : ROLES) {
                b.map(path + role[0], block + "." + role[1]);
            }
            b.map(path + ATTENTION_NORM, block + ".ln1");
            b.map(path + OUTPUT_NORM, block + ".ln2");
            layers++;
        }
        if (v.containsKey(Transformers.CLASSIFIER)) {
            b.map("classifier", Transformers.CLASSIFIER);
        }
        ModuleNames names = b.build();
        List<String> missing = new ArrayList<>();
        for (String layer : names.layersByPath().values()) {
            if (!(v.get(layer) instanceof org.deeplearning4j.nn.conf.graph.LayerVertex)) {
                missing.add(layer);
            }
        }
        if (layers == 0 || !missing.isEmpty()) {
            throw new IllegalArgumentException("not an encoder graph of Transformers.encoder(): "
                    + (layers == 0 ? "it has no block0.ln2" : "it lacks the layers " + missing));
        }
        return names;
    }

    /** Reads {@code file}; the graph has no head (output {@code pool}) and is in FLOAT. */
    public static ComputationGraph load(Path file) throws IOException {
        return load(file, UnaryOperator.identity());
    }

    /**
     * Reads {@code file}, sizing the encoder from it, then lets {@code customize} add settings that do
     * not change its sizes (a head with {@code classes(n)}, {@code updater}, {@code dropout},
     * {@code seed}, {@code dataType}) before the graph is built and the weights are set. A head keeps
     * its random initialization.
     *
     * @throws OnnxFormatException if the file is not a BERT encoder this importer understands
     * @throws IllegalArgumentException if {@code customize} changed a size the file fixes
     */
    public static ComputationGraph load(Path file, UnaryOperator<Transformers.EncoderBuilder> customize)
            throws IOException {
        Objects.requireNonNull(file, "file must not be null");
        try (InputStream in = Files.newInputStream(file)) {
            return load(in, customize, file.toString());
        }
    }

    /** As {@link #load(Path, UnaryOperator)} for a stream (read to its end, not closed). */
    public static ComputationGraph load(InputStream in, UnaryOperator<Transformers.EncoderBuilder> customize)
            throws IOException {
        return load(in, customize, "stream");
    }

    private static ComputationGraph load(InputStream in, UnaryOperator<Transformers.EncoderBuilder> customize,
                                         String source) throws IOException {
        Objects.requireNonNull(in, "in must not be null");
        Objects.requireNonNull(customize, "customize must not be null");
        Onnx.ModelProto model;
        try {
            CodedInputStream coded = CodedInputStream.newInstance(in);
            coded.setSizeLimit(Integer.MAX_VALUE);
            model = Onnx.ModelProto.parseFrom(coded);
        } catch (InvalidProtocolBufferException e) {
            throw new OnnxFormatException("ONNX " + source + ": not a valid ONNX model (" + e.getMessage() + ")", e);
        }
        return fromModel(model, customize);
    }

    /** As {@link #load(Path, UnaryOperator)} for a parsed model. */
    static ComputationGraph fromModel(Onnx.ModelProto model, UnaryOperator<Transformers.EncoderBuilder> customize) {
        long t0 = System.nanoTime();
        Reader r = new Reader(model.getGraph());
        ComputationGraph g = r.build(customize);
        LOG.info("imported a {}-layer BERT encoder (d={}, heads={}, vocab={}) from ONNX in {} ms", r.layers, r.d,
                r.heads, r.vocab, (System.nanoTime() - t0) / 1_000_000);
        return g;
    }

    /** The walk over one ONNX graph. */
    private static final class Reader {
        private final Onnx.GraphProto graph;
        private final Map<String, Onnx.TensorProto> init = new HashMap<>();
        private final Map<String, Onnx.NodeProto> producer = new HashMap<>();
        private final Map<String, List<Onnx.NodeProto>> consumers = new HashMap<>();
        private String prefix;
        int layers;
        long d;
        long vocab;
        int heads;

        Reader(Onnx.GraphProto graph) {
            this.graph = graph;
            for (Onnx.TensorProto t : graph.getInitializerList()) {
                init.put(t.getName(), t);
            }
            for (Onnx.NodeProto n : graph.getNodeList()) {
                for (String o : n.getOutputList()) {
                    producer.put(o, n);
                }
                for (String i : n.getInputList()) {
                    consumers.computeIfAbsent(i, k -> new ArrayList<>()).add(n);
                }
            }
        }

        private static OnnxFormatException error(String message) {
            return new OnnxFormatException("ONNX BERT import: " + message);
        }

        private Onnx.TensorProto tensor(String name) {
            Onnx.TensorProto t = init.get(prefix + name);
            if (t == null) {
                throw error("missing initializer \"" + prefix + name + "\"");
            }
            return t;
        }

        private long[] dims(Onnx.TensorProto t) {
            return t.getDimsList().stream().mapToLong(Long::longValue).toArray();
        }

        private long[] dims(String name, int rank) {
            long[] s = dims(tensor(name));
            if (s.length != rank) {
                throw error("initializer \"" + prefix + name + "\" has shape " + Arrays.toString(s) + ", expected rank "
                        + rank);
            }
            return s;
        }

        private void expectShape(String what, long[] actual, long... expected) {
            if (!Arrays.equals(actual, expected)) {
                throw error(what + " has shape " + Arrays.toString(actual) + ", expected " + Arrays.toString(expected));
            }
        }

        /** The float values of an initializer or Constant tensor, as an array of its shape ('c' order). */
        private INDArray values(Onnx.TensorProto t, String what) {
            if (t.getDataLocation() == Onnx.TensorProto.DataLocation.EXTERNAL || t.getExternalDataCount() > 0) {
                throw error(what + " stores its data in an external file; re-export the model with the weights "
                        + "inside the .onnx file");
            }
            long[] shape = dims(t);
            long n = Arrays.stream(shape).reduce(1, Math::multiplyExact);
            float[] f;
            if (t.getDataType() == Onnx.TensorProto.DataType.FLOAT_VALUE) {
                if (!t.getRawData().isEmpty()) {
                    ByteBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
                    f = new float[b.remaining() / 4];
                    b.asFloatBuffer().get(f);
                } else {
                    f = new float[t.getFloatDataCount()];
                    for (int i = 0; i < f.length; i++) {
                        f[i] = t.getFloatData(i);
                    }
                }
            } else if (t.getDataType() == Onnx.TensorProto.DataType.INT64_VALUE) {
                long[] l;
                if (!t.getRawData().isEmpty()) {
                    ByteBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
                    l = new long[b.remaining() / 8];
                    b.asLongBuffer().get(l);
                } else {
                    l = t.getInt64DataList().stream().mapToLong(Long::longValue).toArray();
                }
                f = new float[l.length];
                for (int i = 0; i < l.length; i++) {
                    f[i] = l[i];
                }
            } else if (t.getDataType() == Onnx.TensorProto.DataType.DOUBLE_VALUE && t.getRawData().isEmpty()) {
                f = new float[t.getDoubleDataCount()];
                for (int i = 0; i < f.length; i++) {
                    f[i] = (float) t.getDoubleData(i);
                }
            } else {
                throw error(what + " has ONNX data type " + Onnx.TensorProto.DataType.forNumber(t.getDataType())
                        + ", expected FLOAT (a quantized or float16 export is not supported)");
            }
            if (f.length != n) {
                throw error(what + " holds " + f.length + " values for shape " + Arrays.toString(shape));
            }
            return shape.length == 0 ? Nd4j.scalar(f[0]) : Nd4j.create(f, shape, 'c');
        }

        private INDArray values(String name) {
            return values(tensor(name), "initializer \"" + prefix + name + "\"");
        }

        /** The scalar value of a tensor name: an initializer or the output of a Constant node, else null. */
        private Double constant(String name) {
            Onnx.TensorProto t = init.get(name);
            Onnx.NodeProto p = producer.get(name);
            if (t == null && p != null && p.getOpType().equals("Constant")) {
                for (Onnx.AttributeProto a : p.getAttributeList()) {
                    if (a.getName().equals("value")) {
                        t = a.getT();
                    }
                }
            }
            if (t == null) {
                return null;
            }
            INDArray v = values(t, "constant \"" + name + "\"");
            return v.length() == 1 ? v.getDouble(0) : null;
        }

        private List<Onnx.NodeProto> users(String tensor) {
            return consumers.getOrDefault(tensor, List.of());
        }

        private String describe(List<Onnx.NodeProto> nodes) {
            return nodes.stream().map(n -> n.getOpType() + " " + n.getName()).collect(Collectors.toList()).toString();
        }

        private static String other(Onnx.NodeProto n, String one) {
            if (n.getInputCount() != 2) {
                return null;
            }
            return n.getInput(0).equals(one) ? n.getInput(1) : n.getInput(1).equals(one) ? n.getInput(0) : null;
        }

        /** A projection: the tensor it reads, its weight W [in, out] and bias b [out], and its output. */
        private static final class Projection {
            String input;
            String output;
            INDArray w;
            INDArray b;
        }

        private Projection projection(int layer, String role, long in, long out) {
            String biasName = "encoder.layer." + layer + "." + role + ".bias";
            INDArray b = values(biasName);
            expectShape("initializer \"" + prefix + biasName + "\"", b.shape(), out);
            List<Onnx.NodeProto> uses = users(prefix + biasName);
            for (Onnx.NodeProto add : uses) {
                String x = other(add, prefix + biasName);
                Onnx.NodeProto mm = x == null ? null : producer.get(x);
                if (add.getOpType().equals("Add") && mm != null && mm.getOpType().equals("MatMul")
                        && init.containsKey(mm.getInput(1))) {
                    Onnx.TensorProto wt = init.get(mm.getInput(1));
                    Projection p = new Projection();
                    p.w = values(wt, "weight \"" + wt.getName() + "\" of " + prefix + "encoder.layer." + layer + "." + role);
                    expectShape("weight \"" + wt.getName() + "\" of " + prefix + "encoder.layer." + layer + "." + role,
                            p.w.shape(), in, out);
                    p.b = b;
                    p.input = mm.getInput(0);
                    p.output = add.getOutput(0);
                    return p;
                }
            }
            throw error("expected \"" + prefix + biasName + "\" to be added (Add) to the output of a MatMul with a "
                    + "weight initializer; it is used by " + describe(uses));
        }

        /** A LayerNorm: its input and output tensors, gain, bias and eps. */
        private static final class Norm {
            String input;
            String output;
            INDArray g;
            INDArray b;
            double eps;
        }

        private Norm norm(String name) {
            String gName = prefix + name + ".weight";
            String bName = prefix + name + ".bias";
            Norm n = new Norm();
            n.g = values(name + ".weight");
            n.b = values(name + ".bias");
            expectShape("initializer \"" + gName + "\"", n.g.shape(), d);
            expectShape("initializer \"" + bName + "\"", n.b.shape(), d);
            for (Onnx.NodeProto node : users(gName)) {
                if (node.getOpType().equals("LayerNormalization") && node.getInputCount() == 3
                        && node.getInput(2).equals(bName)) {
                    n.input = node.getInput(0);
                    n.output = node.getOutput(0);
                    n.eps = 1e-5;
                    for (Onnx.AttributeProto a : node.getAttributeList()) {
                        if (a.getName().equals("epsilon")) {
                            n.eps = a.getF();
                        }
                    }
                    return n;
                }
            }
            // decomposed: y = (x − mean) / sqrt(mean((x − mean)^2) + eps) · g + b
            String where = "LayerNorm \"" + prefix + name + "\"";
            Onnx.NodeProto addB = single(users(bName), "Add", where + " (bias Add)");
            Onnx.NodeProto mulG = producerOf(other(addB, bName), "Mul", where + " (gain Mul)");
            if (other(mulG, gName) == null) {
                throw error(where + ": the gain \"" + gName + "\" is not an input of " + mulG.getName());
            }
            Onnx.NodeProto div = producerOf(other(mulG, gName), "Div", where + " (normalizing Div)");
            Onnx.NodeProto sub = producerOf(div.getInput(0), "Sub", where + " (centering Sub)");
            Onnx.NodeProto sqrt = producerOf(div.getInput(1), "Sqrt", where + " (Sqrt)");
            Onnx.NodeProto addEps = producerOf(sqrt.getInput(0), "Add", where + " (variance + eps)");
            Double eps = constant(addEps.getInput(1));
            if (eps == null) {
                eps = constant(addEps.getInput(0));
            }
            if (eps == null || !(eps > 0)) {
                throw error(where + ": no positive constant eps added to the variance in " + addEps.getName());
            }
            Onnx.NodeProto mean = producerOf(sub.getInput(1), "ReduceMean", where + " (mean)");
            if (!mean.getInput(0).equals(sub.getInput(0))) {
                throw error(where + ": the mean " + mean.getName() + " is not taken of the normalized input "
                        + sub.getInput(0));
            }
            n.input = sub.getInput(0);
            n.output = addB.getOutput(0);
            n.eps = eps;
            return n;
        }

        private Onnx.NodeProto single(List<Onnx.NodeProto> nodes, String op, String what) {
            List<Onnx.NodeProto> m = nodes.stream().filter(n -> n.getOpType().equals(op)).collect(Collectors.toList());
            if (m.size() != 1) {
                throw error(what + ": expected one " + op + " node, found " + describe(nodes));
            }
            return m.get(0);
        }

        private Onnx.NodeProto producerOf(String tensor, String op, String what) {
            Onnx.NodeProto p = tensor == null ? null : producer.get(tensor);
            if (p == null || !p.getOpType().equals(op)) {
                throw error(what + ": expected " + op + " to produce " + tensor + ", found "
                        + (p == null ? "no node" : p.getOpType() + " " + p.getName()));
            }
            return p;
        }

        /** Checks {@code tensor} is an Add of {@code a} and {@code b} (a residual connection). */
        private void expectSum(String tensor, String a, String b, String what) {
            Onnx.NodeProto add = producerOf(tensor, "Add", what);
            List<String> ins = add.getInputList();
            if (!(ins.size() == 2 && ins.contains(a) && ins.contains(b))) {
                throw error(what + ": expected " + add.getName() + " to add " + a + " and " + b + ", it adds " + ins);
            }
        }

        /** Checks the nodes between {@code from} and {@code to} (at most 8, walked back from {@code to}) are the erf GELU. */
        private void expectGelu(String from, String to, String what) {
            List<String> ops = new ArrayList<>();
            boolean reached = false;
            java.util.ArrayDeque<String> todo = new java.util.ArrayDeque<>(List.of(to));
            java.util.Set<String> seen = new java.util.HashSet<>();
            while (!todo.isEmpty() && seen.size() < 8) {
                String t = todo.pop();
                if (t.equals(from)) {
                    reached = true;
                    continue;
                }
                Onnx.NodeProto p = producer.get(t);
                if (p == null || p.getOpType().equals("Constant") || !seen.add(p.getName() + "/" + t)) {
                    continue;
                }
                ops.add(p.getOpType());
                todo.addAll(p.getInputList());
            }
            if (!reached || !ops.contains("Erf") || !todo.isEmpty()) {
                throw error(what + ": expected the exact GELU x·½(1 + erf(x/√2)) between the intermediate dense layer "
                        + "and the output dense layer, found " + ops + (ops.contains("Tanh")
                        ? " (the tanh approximation is not supported)" : ""));
            }
        }

        /** The head size from the attention-score scale that follows Q·Kᵀ (Div by √hs or Mul by 1/√hs). */
        private long headSize(String query, String what) {
            List<String> frontier = new ArrayList<>(List.of(query));
            for (int step = 0; step < 4; step++) {
                List<String> next = new ArrayList<>();
                for (String t : frontier) {
                    for (Onnx.NodeProto n : users(t)) {
                        if (n.getOpType().equals("MatMul") && !init.containsKey(n.getInput(1))) {
                            for (Onnx.NodeProto s : users(n.getOutput(0))) {
                                Double c = constant(other(s, n.getOutput(0)) == null ? "" : other(s, n.getOutput(0)));
                                if (c != null && s.getOpType().equals("Div")) {
                                    return Math.round(c * c);
                                }
                                if (c != null && s.getOpType().equals("Mul")) {
                                    return Math.round(1.0 / (c * c));
                                }
                            }
                            throw error(what + ": the attention scores " + n.getName() + " are not scaled by a constant "
                                    + "(Div by √headSize); used by " + describe(users(n.getOutput(0))));
                        }
                        if (n.getOpType().equals("Reshape") || n.getOpType().equals("Transpose")) {
                            next.add(n.getOutput(0));
                        }
                    }
                }
                frontier = next;
            }
            throw error(what + ": found no attention-score MatMul reading the queries " + query
                    + " through Reshape/Transpose");
        }

        ComputationGraph build(UnaryOperator<Transformers.EncoderBuilder> customize) {
            List<String> words = init.keySet().stream().filter(n -> n.endsWith(WORD)).sorted().collect(Collectors.toList());
            if (words.size() != 1) {
                throw error("expected one initializer named \"[prefix]" + WORD + "\", found " + words
                        + " (is this a BERT-family encoder exported from Hugging Face transformers?)");
            }
            prefix = words.get(0).substring(0, words.get(0).length() - WORD.length());
            long[] ws = dims(WORD, 2);
            vocab = ws[0];
            d = ws[1];
            long[] ps = dims("embeddings.position_embeddings.weight", 2);
            expectShape("initializer \"" + prefix + "embeddings.position_embeddings.weight\"", new long[] {ps[1]}, d);
            long maxLength = ps[0];

            TreeSet<Integer> found = new TreeSet<>();
            for (String n : init.keySet()) {
                if (n.startsWith(prefix)) {
                    Matcher m = LAYER.matcher(n.substring(prefix.length()));
                    if (m.matches()) {
                        found.add(Integer.parseInt(m.group(1)));
                    }
                }
            }
            if (found.isEmpty()) {
                throw error("no encoder layers: missing \"" + prefix + "encoder.layer.0.attention.self.query.bias\"");
            }
            layers = found.last() + 1;
            if (found.size() != layers) {
                throw error("encoder layers " + found + " are not numbered 0.." + (layers - 1));
            }
            long hidden = dims("encoder.layer.0.intermediate.dense.bias", 1)[0];
            if (hidden % d != 0) {
                throw error("intermediate size " + hidden + " is not a multiple of the hidden size " + d
                        + "; the encoder builder needs an integer MLP ratio");
            }

            Norm embedNorm = norm(EMBEDDING_NORM);
            List<Norm> norms = new ArrayList<>();
            List<Projection[]> projections = new ArrayList<>();
            String x = embedNorm.output;
            long headSize = -1;
            for (int i = 0; i < layers; i++) {
                String where = "layer " + i;
                Projection[] p = new Projection[ROLES.length];
                for (int r = 0; r < ROLES.length; r++) {
                    long in = r == 5 ? hidden : d;
                    long out = r == 4 ? hidden : d;
                    p[r] = projection(i, ROLES[r][0], in, out);
                }
                for (int r = 0; r < 3; r++) {
                    if (!p[r].input.equals(x)) {
                        throw error(where + ": " + ROLES[r][0] + " reads " + p[r].input + ", expected the previous "
                                + "LayerNorm's output " + x + " (a post-norm BERT layer)");
                    }
                }
                long hs = headSize(p[0].output, where);
                if (hs <= 0 || d % hs != 0 || (headSize > 0 && hs != headSize)) {
                    throw error(where + ": head size " + hs + " from the attention scale does not divide d = " + d
                            + (headSize > 0 ? " or differs from layer 0's " + headSize : ""));
                }
                headSize = hs;
                Norm attnNorm = norm("encoder.layer." + i + "." + ATTENTION_NORM);
                expectSum(attnNorm.input, p[3].output, x, where + " attention residual");
                if (!p[4].input.equals(attnNorm.output)) {
                    throw error(where + ": intermediate.dense reads " + p[4].input + ", expected the attention "
                            + "LayerNorm's output " + attnNorm.output);
                }
                expectGelu(p[4].output, p[5].input, where);
                Norm outNorm = norm("encoder.layer." + i + "." + OUTPUT_NORM);
                expectSum(outNorm.input, p[5].output, attnNorm.output, where + " MLP residual");
                norms.add(attnNorm);
                norms.add(outNorm);
                projections.add(p);
                x = outNorm.output;
            }
            String last = x;
            if (graph.getOutputList().stream().noneMatch(o -> o.getName().equals(last))) {
                throw error("the graph outputs " + graph.getOutputList().stream().map(Onnx.ValueInfoProto::getName)
                        .collect(Collectors.toList()) + " do not include the last layer's output " + last);
            }
            double eps = embedNorm.eps;
            for (Norm n : norms) {
                if (n.eps != eps) {
                    throw error("LayerNorm eps differ (" + eps + " and " + n.eps + "); the encoder uses one eps");
                }
            }
            heads = (int) (d / headSize);

            INDArray pos = values("embeddings.position_embeddings.weight");
            if (init.containsKey(prefix + "embeddings.position_ids")) {
                INDArray ids = values(tensor("embeddings.position_ids"), "position_ids");
                for (long t = 0; t < ids.length(); t++) {
                    if (ids.getDouble(t) != t) {
                        throw error("embeddings.position_ids is not 0, 1, 2, ... (at " + t + ": " + ids.getDouble(t)
                                + ")");
                    }
                }
            }
            if (init.containsKey(prefix + "embeddings.token_type_embeddings.weight")) {
                INDArray types = values("embeddings.token_type_embeddings.weight");
                expectShape("initializer \"" + prefix + "embeddings.token_type_embeddings.weight\" (row size)",
                        new long[] {types.size(1)}, d);
                pos = pos.addRowVector(types.getRow(0));
            }

            Transformers.EncoderBuilder builder = Transformers.encoder().vocabSize(vocab).maxLength(maxLength)
                    .dModel(d).heads(heads).layers(layers).mlpRatio((int) (hidden / d)).layerNormEps(eps);
            builder = Objects.requireNonNull(customize.apply(builder), "customize returned null");
            ComputationGraph g = builder.build();
            set(g, Transformers.TOKEN_EMBEDDING, "W", values(WORD));
            set(g, Transformers.POSITION_EMBEDDING, PositionalEmbedding.WEIGHT_KEY, pos);
            setNorm(g, Transformers.EMBEDDING_NORM, embedNorm, eps);
            for (int i = 0; i < layers; i++) {
                String b = Transformers.block(i);
                Projection[] p = projections.get(i);
                for (int r = 0; r < ROLES.length; r++) {
                    set(g, b + "." + ROLES[r][1], "W", p[r].w);
                    set(g, b + "." + ROLES[r][1], "b", p[r].b);
                }
                setNorm(g, b + ".ln1", norms.get(2 * i), eps);
                setNorm(g, b + ".ln2", norms.get(2 * i + 1), eps);
            }
            return g;
        }

        private static void setNorm(ComputationGraph g, String layer, Norm n, double eps) {
            LayerNorm conf = (LayerNorm) g.getLayer(layer).conf().getLayer();
            if (conf.eps() != eps) {
                throw new IllegalArgumentException("customize changed the LayerNorm eps to " + conf.eps()
                        + "; the ONNX file fixes it to " + eps);
            }
            set(g, layer, LayerNorm.GAIN_KEY, n.g);
            set(g, layer, LayerNorm.BIAS_KEY, n.b);
        }

        private static void set(ComputationGraph g, String layer, String key, INDArray value) {
            INDArray p = g.getLayer(layer).getParam(key);
            if (p == null || p.length() != value.length() || (p.rank() == value.rank() && !Arrays.equals(p.shape(),
                    value.shape()))) {
                throw new IllegalArgumentException("parameter " + key + " of layer " + layer + " has shape "
                        + (p == null ? "none" : Arrays.toString(p.shape())) + " but the ONNX file gives "
                        + Arrays.toString(value.shape()) + "; did customize change a size?");
            }
            p.assign(value.reshape(p.shape()).castTo(p.dataType()));
        }
    }
}
