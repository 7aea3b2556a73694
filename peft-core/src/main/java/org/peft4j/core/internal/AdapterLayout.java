package org.peft4j.core.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.blocks.Normalization;
import org.peft4j.core.blocks.PositionalEmbedding;

/**
 * Which tensors of {@code adapter_model.safetensors} hold which parameters of a wrapped graph:
 * per-layer tensors ({@link AdapterLayer#savedTensors()}, named
 * {@code base_model.model.<layer>.<suffix>}, and every parameter of a trained module, under
 * PyTorch's parameter name where it has one) and
 * model-level tensors assembled from the column blocks of several layers
 * ({@link AdapterLayer#sharedBlocks()}). Used by both {@link AdapterWriter} and {@link AdapterReader}.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterLayout {

    static final String PREFIX = "base_model.model.";
    /** Hugging Face PEFT's model-level tensor of prompt and prefix tuning, {@code [num_virtual_tokens, …]}. */
    static final String PROMPT_TENSOR = "prompt_embeddings";

    private AdapterLayout() {
    }

    /** One tensor of an adapter file and the parameter it belongs to. */
    record Slot(String vertex, String key, boolean transposed, long[] fileShape) {
    }

    /** The tensors a graph's trainable parameters map to, by file name, in the current format. */
    static Map<String, Slot> layout(ComputationGraph g) {
        return layout(g, false);
    }

    /**
     * The tensors a graph's trainable parameters map to, by file name. Trained modules are saved
     * under PyTorch's parameter names ({@link #pytorchName}); in files of format 1
     * ({@code legacy}) only dense-type layers were, the others under DL4J's keys.
     */
    static Map<String, Slot> layout(ComputationGraph g, boolean legacy) {
        Map<String, Slot> m = new TreeMap<>();
        for (Layer l : g.getLayers()) {
            if (l.numParams() == 0) {
                continue;
            }
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            String vertex = c.getLayerName();
            if (c instanceof AdapterLayer) {
                AdapterLayer a = (AdapterLayer) c;
                for (FrozenDenseLayer.SavedTensor st : a.savedTensors()) {
                    INDArray p = l.getParam(st.paramKey());
                    long[] shape = st.fileShape() != null ? st.fileShape().clone() : fileShape(p, st.transposed());
                    if (SafeTensorCounts.product(shape) != p.length()) {
                        throw new IllegalStateException("saved shape " + java.util.Arrays.toString(shape) + " of " + vertex
                                + "." + st.paramKey() + " does not hold its " + p.length() + " elements");
                    }
                    m.put(PREFIX + a.baseLayerName() + "." + st.fileSuffix(),
                            new Slot(vertex, st.paramKey(), st.transposed(), shape));
                }
            } else {
                for (Map.Entry<String, INDArray> p : l.paramTable().entrySet()) {
                    String suffix = legacy && !isDense(c) ? null : pytorchName(c, p.getKey());
                    boolean t = isDense(c) && DENSE_WEIGHT.equals(p.getKey());
                    m.put(PREFIX + vertex + "." + (suffix == null ? p.getKey() : suffix),
                            new Slot(vertex, p.getKey(), t, fileShape(p.getValue(), t)));
                }
            }
        }
        return m;
    }

    private static final String DENSE_WEIGHT = "W";

    private static boolean isDense(org.deeplearning4j.nn.conf.layers.Layer c) {
        return c instanceof DenseLayer || c instanceof OutputLayer || c instanceof RnnOutputLayer;
    }

    /**
     * PyTorch's name of parameter {@code key} of a trained module whose configuration is {@code c},
     * or null when PyTorch's module of that kind has no such parameter (then the DL4J key is used):
     * dense-type layers {@code W → weight} (stored transposed, {@code [out, in]}) and
     * {@code b → bias}; embeddings ({@code EmbeddingLayer}, {@code EmbeddingSequenceLayer},
     * peft4j's {@code PositionalEmbedding}) {@code W → weight [rows, width]} and {@code b → bias};
     * 2D convolutions {@code W → weight [out, in, kH, kW]} and {@code b → bias}; peft4j's
     * normalizations {@code g → weight}, {@code b → bias}.
     */
    static String pytorchName(org.deeplearning4j.nn.conf.layers.Layer c, String key) {
        boolean weightAndBias = isDense(c) || c instanceof EmbeddingLayer || c instanceof EmbeddingSequenceLayer
                || c.getClass() == ConvolutionLayer.class;
        if (weightAndBias) {
            return "W".equals(key) ? "weight" : "b".equals(key) ? "bias" : null;
        }
        if (c instanceof PositionalEmbedding) {
            return PositionalEmbedding.WEIGHT_KEY.equals(key) ? "weight" : null;
        }
        if (c instanceof Normalization) {
            return Normalization.GAIN_KEY.equals(key) ? "weight" : Normalization.BIAS_KEY.equals(key) ? "bias" : null;
        }
        return null;
    }

    /** The layers of {@code g} trained in full (modules to save): those with parameters that are not adapter layers. */
    static List<String> trainedModules(ComputationGraph g) {
        List<String> out = new ArrayList<>();
        for (Layer l : g.getLayers()) {
            if (l.numParams() > 0 && !(l.conf().getLayer() instanceof AdapterLayer)) {
                out.add(l.conf().getLayer().getLayerName());
            }
        }
        return out;
    }

    /** A model-level tensor and the blocks of it each layer holds. */
    record Shared(long[] fileShape, List<Part> parts) {
    }

    /** One layer's block of a model-level tensor. */
    record Part(String vertex, AdapterLayer layer, AdapterLayer.SharedBlock block) {
    }

    /**
     * The model-level tensors of a graph, by file name, checked for consistency: every block of a
     * tensor declares the same shape, and the blocks tile its columns exactly.
     */
    static Map<String, Shared> sharedLayout(ComputationGraph g) {
        Map<String, Shared> m = new TreeMap<>();
        for (Layer l : g.getLayers()) {
            org.deeplearning4j.nn.conf.layers.Layer c = l.conf().getLayer();
            if (!(c instanceof AdapterLayer)) {
                continue;
            }
            for (AdapterLayer.SharedBlock b : ((AdapterLayer) c).sharedBlocks()) {
                Shared s = m.computeIfAbsent(b.fileName(), k -> new Shared(b.fileShape(), new ArrayList<>()));
                if (!java.util.Arrays.equals(s.fileShape(), b.fileShape())) {
                    throw new IllegalStateException("layers disagree on the shape of " + b.fileName() + ": "
                            + java.util.Arrays.toString(s.fileShape()) + " and " + b + " of " + c.getLayerName());
                }
                if (b.paramKey() != null) {
                    INDArray p = l.getParam(b.paramKey());
                    if (p == null || p.rank() != 2 || p.size(0) != b.columns() || p.size(1) != b.rows()) {
                        throw new IllegalStateException("block " + b + " of " + c.getLayerName() + ": parameter "
                                + b.paramKey() + " must be [" + b.columns() + ", " + b.rows() + "], is "
                                + (p == null ? "missing" : java.util.Arrays.toString(p.shape())));
                    }
                }
                s.parts().add(new Part(c.getLayerName(), (AdapterLayer) c, b));
            }
        }
        for (Map.Entry<String, Shared> e : m.entrySet()) {
            List<Part> parts = new ArrayList<>(e.getValue().parts());
            parts.sort(java.util.Comparator.comparingLong(p -> p.block().columnOffset()));
            long next = 0;
            for (Part p : parts) {
                if (p.block().columnOffset() != next) {
                    throw new IllegalStateException("the blocks of " + e.getKey() + " do not tile its columns: "
                            + (p.block().columnOffset() < next ? "overlap" : "gap") + " at column " + next + "; blocks "
                            + parts.stream().map(x -> x.vertex() + ": " + x.block()).toList());
                }
                next += p.block().columns();
            }
            long width = e.getValue().parts().get(0).block().width();
            if (next != width) {
                throw new IllegalStateException("the blocks of " + e.getKey() + " cover " + next + " of its "
                        + width + " columns");
            }
        }
        return m;
    }

    /** Element counts of shapes. */
    private static final class SafeTensorCounts {
        static long product(long[] shape) {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }
    }

    private static long[] fileShape(INDArray p, boolean transposed) {
        long[] s = p.shape().clone();
        if (transposed && s.length == 2) {
            return new long[] {s[1], s[0]};
        }
        return s;
    }
}
