package org.peft4j.lora;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.CnnLossLayer;
import org.deeplearning4j.nn.conf.layers.Convolution1DLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.RnnLossLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.core.FrozenConvolutionLayer;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;

/**
 * One case of the LoRA-family fixtures under {@code src/test/resources/family/} (written by
 * {@code src/test/python/family_reference.py} from PEFT's formulas): its PEFT adapter directory,
 * its reference tensors (PyTorch orientation) and a double-precision DL4J graph holding its base
 * layer under the case's module name ({@code dense}, {@code embed} or {@code conv}), followed by a
 * parameter-free loss layer, so that the graph's output is the layer's output. A dense case also
 * has an identity layer {@code pre} in front (W = I, b = 0), which a wrapper may train to make the
 * target pass an input gradient down.
 */
final class FamilyCase {
    private static final ObjectMapper JSON = new ObjectMapper();

    final String name;
    final JsonNode info;
    private final SafetensorsFile reference;

    private FamilyCase(String name, JsonNode info, SafetensorsFile reference) {
        this.name = name;
        this.info = info;
        this.reference = reference;
    }

    static FamilyCase of(String name) throws IOException {
        return new FamilyCase(name, JSON.readTree(resource(name + "/case.json")),
                Safetensors.fromBytes(resource(name + "/reference.safetensors")));
    }

    private static byte[] resource(String path) throws IOException {
        try (InputStream in = FamilyCase.class.getResourceAsStream("/family/" + path)) {
            if (in == null) {
                throw new IOException("fixture /family/" + path + " is missing; run family_reference.py");
            }
            return in.readAllBytes();
        }
    }

    String module() {
        return info.get("module").asText();
    }

    int rank() {
        return info.get("r").asInt();
    }

    double alpha() {
        return info.get("alpha").asDouble();
    }

    boolean isConv1d() {
        return "conv1d".equals(info.get("layer").asText());
    }

    /** A copy of the case's PEFT adapter directory (config and weights only) under {@code dir}. */
    Path adapterDir(Path dir) throws IOException {
        Path d = Files.createDirectories(dir.resolve(name.replace('/', '-')));
        for (String f : new String[] {"adapter_config.json", "adapter_model.safetensors"}) {
            Files.write(d.resolve(f), resource(name + "/" + f));
        }
        return d;
    }

    /** Reference tensor {@code tensor} as a double array, in the file's (PyTorch) orientation. */
    INDArray ref(String tensor) {
        return reference.get(tensor).toINDArray(DataType.DOUBLE);
    }

    boolean hasRef(String tensor) {
        return reference.tensors().containsKey(tensor);
    }

    /** The graph input: {@code x}, or the token ids {@code [batch, T]} as doubles. */
    INDArray input() {
        return hasRef("x") ? ref("x") : ref("ids");
    }

    /** A weight in PyTorch orientation as the DL4J layer's weight or kernel ({@code W} for the frozen layer). */
    INDArray toKernel(INDArray pt) {
        switch (module()) {
            case "dense":
                return pt.transpose().dup();
            case "conv":
                return isConv1d() ? pt.dup('c').reshape('c', pt.size(0), pt.size(1), pt.size(2), 1) : pt.dup('c');
            default:
                return pt.dup();
        }
    }

    /** The stock layer's weight or kernel {@code W} of {@code graph} in the layout {@link #toKernel} gives. */
    INDArray kernelOf(ComputationGraph graph) {
        INDArray w = graph.getLayer(module()).getParam("W");
        return "conv".equals(module()) ? FrozenConvolutionLayer.kernelFromStock(graph.getLayer(module()).conf().getLayer(), w)
                : w;
    }

    /** A reference output in the DL4J layout (an embedding sequence's {@code [batch, T, dim]} as {@code [batch, dim, T]}). */
    INDArray toOutputLayout(INDArray pt) {
        return "embed".equals(module()) ? pt.permute(0, 2, 1).dup() : pt;
    }

    /** The base model: the case's layer with the reference weights, in double precision. */
    ComputationGraph base() {
        INDArray w = ref("base_weight");
        var b = new NeuralNetConfiguration.Builder().seed(1).dataType(DataType.DOUBLE).updater(new NoOp())
                .graphBuilder().addInputs("in");
        String m = module();
        switch (m) {
            case "dense": {
                int in = (int) w.size(1);
                b.addLayer("pre", new DenseLayer.Builder().nIn(in).nOut(in).activation(Activation.IDENTITY).build(), "in")
                        .addLayer(m, new DenseLayer.Builder().nIn(in).nOut(w.size(0)).activation(Activation.IDENTITY)
                                .build(), "pre")
                        .addLayer("out", new LossLayer.Builder(LossFunctions.LossFunction.MSE)
                                .activation(Activation.IDENTITY).build(), m);
                break;
            }
            case "embed":
                b.addLayer(m, new EmbeddingSequenceLayer.Builder().nIn(w.size(0)).nOut(w.size(1)).hasBias(false)
                                .activation(Activation.IDENTITY).build(), "in")
                        .addLayer("out", new RnnLossLayer.Builder(LossFunctions.LossFunction.MSE)
                                .activation(Activation.IDENTITY).build(), m);
                break;
            default: {
                int k = info.get("kernel").get(0).asInt();
                int stride = info.get("stride").get(0).asInt();
                int pad = info.get("padding").get(0).asInt();
                if (isConv1d()) {
                    b.addLayer(m, new Convolution1DLayer.Builder().kernelSize(k).stride(stride).padding(pad).nIn(w.size(1))
                                    .nOut(w.size(0)).convolutionMode(ConvolutionMode.Truncate)
                                    .activation(Activation.IDENTITY).build(), "in")
                            .addLayer("out", new RnnLossLayer.Builder(LossFunctions.LossFunction.MSE)
                                    .activation(Activation.IDENTITY).build(), m);
                } else {
                    b.addLayer(m, new ConvolutionLayer.Builder().kernelSize(k, k).stride(stride, stride).padding(pad, pad)
                                    .nIn(w.size(1)).nOut(w.size(0)).convolutionMode(ConvolutionMode.Truncate)
                                    .activation(Activation.IDENTITY).build(), "in")
                            .addLayer("out", new CnnLossLayer.Builder(LossFunctions.LossFunction.MSE)
                                    .activation(Activation.IDENTITY).build(), m);
                }
            }
        }
        ComputationGraphConfiguration conf = b.setOutputs("out").build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        if ("dense".equals(m)) {
            g.getLayer("pre").getParam("W").assign(Nd4j.eye(w.size(1)).castTo(DataType.DOUBLE));
            g.getLayer("pre").getParam("b").assign(0);
        }
        INDArray kernel = toKernel(w);
        if (isConv1d()) {
            // DL4J 1.0.0-M2.1 reads a 1D kernel's [nOut, nIn, k, 1] buffer as [k, nIn, nOut] (see FrozenConvolutionLayer)
            long o = kernel.size(0);
            long i = kernel.size(1);
            long t = kernel.size(2);
            kernel = kernel.dup('c').reshape('c', o, i, t).permute(2, 1, 0).dup('c').reshape('c', o, i, t, 1);
        }
        g.getLayer(m).getParam("W").assign(kernel);
        if (hasRef("base_bias")) {
            g.getLayer(m).getParam("b").assign(ref("base_bias").reshape(g.getLayer(m).getParam("b").shape()));
        }
        return g;
    }
}
