package org.peft4j.lora.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.spi.PeftJson;

/**
 * One case of the LoRA-family reference fixtures under {@code src/test/resources/family/}
 * (written by {@code src/test/python/family_reference.py} from Hugging Face PEFT's formulas): a
 * PEFT adapter directory for a one-layer model, its {@code case.json} scalars and its
 * {@code reference.safetensors} (input {@code x}, base weight and bias, {@code delta_weight},
 * {@code output}, {@code merged_weight}, all in PyTorch's orientation). Builds the DL4J base graph
 * the adapter goes onto, and compares arrays.
 *
 * <p>Thread-safety: immutable after loading.
 */
public final class FamilyCase {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String name;
    private final Path dir;
    private final JsonNode info;
    private final SafetensorsFile reference;

    private FamilyCase(String name, Path dir, JsonNode info, SafetensorsFile reference) {
        this.name = name;
        this.dir = dir;
        this.info = info;
        this.reference = reference;
    }

    /** The case {@code method/case}, e.g. {@code "loha/dense"}. */
    public static FamilyCase of(String name) {
        try {
            URL url = FamilyCase.class.getResource("/family/" + name);
            assertNotNull(url, "fixture family/" + name + " is missing; run family_reference.py");
            Path dir = Path.of(url.toURI());
            return new FamilyCase(name, dir, JSON.readTree(Files.readAllBytes(dir.resolve("case.json"))),
                    Safetensors.read(dir.resolve("reference.safetensors")));
        } catch (IOException | URISyntaxException e) {
            throw new IllegalStateException("cannot read fixture " + name, e);
        }
    }

    /** The PEFT adapter directory. */
    public Path dir() {
        return dir;
    }

    /** {@code case.json}. */
    public JsonNode info() {
        return info;
    }

    /** The name of the adapted layer ({@code case.json} {@code module}). */
    public String module() {
        return info.get("module").asText();
    }

    /** A tensor of {@code reference.safetensors} as a double array in its file shape. */
    public INDArray ref(String tensor) {
        SafeTensor t = reference.get(tensor);
        assertNotNull(t, name + ": no reference tensor " + tensor);
        return t.toINDArray(DataType.DOUBLE);
    }

    /** The adapter's tensors as PEFT wrote them, by name. */
    public Map<String, SafeTensor> adapterTensors() throws IOException {
        return Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors();
    }

    /** The adapter's {@code adapter_config.json}, parsed. */
    public Map<String, Object> adapterConfig() throws IOException {
        return readConfig(dir);
    }

    /** An {@code adapter_config.json} in {@code dir}, parsed. */
    public static Map<String, Object> readConfig(Path dir) throws IOException {
        Path f = dir.resolve("adapter_config.json");
        return new TreeMap<>(PeftJson.parseObject(Files.readAllBytes(f), f.toString()));
    }

    /** The case's layer kind, {@code case.json} {@code layer}: {@code dense}, {@code conv2d} or {@code conv1d}. */
    public String layer() {
        return info.get("layer").asText();
    }

    private int[] ints(String key) {
        JsonNode a = info.get(key);
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }

    /**
     * The base model: {@code in → <module>}, the graph's output, with identity activation and the
     * reference's {@code base_weight} and {@code base_bias}: a {@link DenseLayer} (weight transposed
     * to DL4J's {@code [nIn, nOut]}), a {@link ConvolutionLayer} or a {@link Convolution1DLayer}
     * (stride and padding of {@code case.json}, truncate mode, NCHW / NCW).
     */
    public ComputationGraph base(DataType dt) {
        return base(dt, false);
    }

    /**
     * {@link #base(DataType)} of a dense case with a dense layer {@code pre} in front of the
     * module that passes the input on unchanged ({@code W = I}, {@code b = 0}, identity): training
     * it in full makes the module pass an epsilon down.
     */
    public ComputationGraph baseWithUpstream(DataType dt) {
        return base(dt, true);
    }

    private ComputationGraph base(DataType dt, boolean upstream) {
        INDArray w = ref("base_weight");
        long out = w.size(0);
        long in = w.size(1);
        Layer layer = switch (layer()) {
            case "dense" -> new DenseLayer.Builder().nIn(in).nOut(out).activation(Activation.IDENTITY).build();
            case "conv2d" -> new ConvolutionLayer.Builder(ints("kernel")).stride(ints("stride")).padding(ints("padding"))
                    .convolutionMode(ConvolutionMode.Truncate).nIn(in).nOut(out).activation(Activation.IDENTITY).build();
            case "conv1d" -> new Convolution1DLayer.Builder().kernelSize(ints("kernel")[0]).stride(ints("stride")[0])
                    .padding(ints("padding")[0]).convolutionMode(ConvolutionMode.Truncate).nIn(in).nOut(out)
                    .activation(Activation.IDENTITY).build();
            default -> throw new IllegalStateException("no base graph for layer " + layer());
        };
        var b = new NeuralNetConfiguration.Builder().dataType(dt).updater(new NoOp()).seed(1).graphBuilder().addInputs("in");
        if (upstream) {
            b.addLayer("pre", new DenseLayer.Builder().nIn(in).nOut(in).activation(Activation.IDENTITY).build(), "in");
        }
        ComputationGraphConfiguration conf = b.addLayer(module(), layer, upstream ? "pre" : "in").setOutputs(module()).build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        if (upstream) {
            g.getLayer("pre").setParam("W", org.nd4j.linalg.factory.Nd4j.eye(in).castTo(dt));
            g.getLayer("pre").setParam("b", org.nd4j.linalg.factory.Nd4j.zeros(dt, 1, in));
        }
        org.deeplearning4j.nn.api.Layer l = g.getLayer(module());
        l.setParam("W", stockWeight(w).castTo(dt));
        l.setParam("b", ref("base_bias").reshape(l.getParam("b").shape()).castTo(dt));
        return g;
    }

    /**
     * A weight in PyTorch's orientation as the stock DL4J layer of this case holds it: transposed
     * for a dense layer, as is for a 2D convolution, and for a 1D convolution the {@code [nOut, nIn, k, 1]}
     * array whose buffer DL4J 1.0.0-M2.1 reads as {@code [k, nIn, nOut]}.
     */
    public INDArray stockWeight(INDArray w) {
        return switch (layer()) {
            case "dense" -> w.transpose();
            case "conv1d" -> w.permute(2, 1, 0).dup('c').reshape('c', w.size(0), w.size(1), w.size(2), 1);
            default -> w;
        };
    }

    /** The reference input {@code x} in data type {@code dt}. */
    public INDArray x(DataType dt) {
        return ref("x").castTo(dt);
    }

    /**
     * Asserts {@code actual} equals {@code expected} in shape and to {@code relTol} relative to the
     * largest magnitude of {@code expected}.
     */
    public static void assertClose(INDArray expected, INDArray actual, double relTol, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what + ": shape");
        INDArray e = expected.castTo(DataType.DOUBLE);
        double scale = Math.max(e.amaxNumber().doubleValue(), 1e-30);
        double err = e.sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue() / scale;
        assertTrue(err <= relTol, what + ": relative error " + err + " exceeds " + relTol);
    }
}
