package org.peft4j.core.blocks;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.SelfAttentionLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.internal.GraphRewriter;

/**
 * Conversions between DL4J's stock attention layers and this package's.
 *
 * <p>Thread-safety: stateless; the graphs passed in are only read.
 */
public final class Attention {

    private Attention() {
    }

    /**
     * A new graph in which every stock {@link SelfAttentionLayer} (with {@code projectInput = true})
     * is replaced by a {@link MultiHeadAttention} of the same name, shape and weights ({@code Wq,
     * Wk, Wv [heads, headSize, nIn]}, {@code Wo [heads·headSize, nOut]}, no biases, not causal), its
     * input preprocessor, updater, regularization, dropout and gradient normalization kept. Every other
     * layer and vertex is copied unchanged; all parameters are copied by layer name and key. The
     * forward pass is the same; the gradients are the correct ones, half of what the stock
     * SameDiff-based layer returns in DL4J 1.0.0-M2.1.
     *
     * @throws IllegalArgumentException if {@code graph} has no stock self-attention layer, or one
     *     without input projection (which {@link MultiHeadAttention} does not model)
     */
    public static ComputationGraph fromStock(ComputationGraph graph) {
        ComputationGraphConfiguration conf = graph.getConfiguration();
        Map<String, GraphVertex> vertices = new LinkedHashMap<>();
        int replaced = 0;
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            GraphVertex v = e.getValue();
            Layer l = v instanceof LayerVertex ? ((LayerVertex) v).getLayerConf().getLayer() : null;
            if (l instanceof SelfAttentionLayer) {
                SelfAttentionLayer s = (SelfAttentionLayer) l;
                if (!s.isProjectInput()) {
                    throw new IllegalArgumentException("layer \"" + e.getKey() + "\" is a SelfAttentionLayer without "
                            + "input projection (projectInput = false), which MultiHeadAttention does not model");
                }
                MultiHeadAttention m = MultiHeadAttention.builder().nIn(s.getNIn()).nOut(s.getNOut())
                        .heads(s.getNHeads()).headSize(s.getHeadSize()).build();
                m.setLayerName(e.getKey());
                m.setIUpdater(s.getUpdater());
                m.setBiasUpdater(s.getBiasUpdater());
                m.setRegularization(s.getRegularization());
                m.setRegularizationBias(s.getRegularizationBias());
                m.setGradientNormalization(s.getGradientNormalization());
                m.setGradientNormalizationThreshold(s.getGradientNormalizationThreshold());
                m.setIDropout(s.getIDropout());
                LayerVertex lv = (LayerVertex) v;
                NeuralNetConfiguration nnc = lv.getLayerConf().clone();
                nnc.clearVariables();
                nnc.setLayer(m);
                vertices.put(e.getKey(), new LayerVertex(nnc, lv.getPreProcessor() == null ? null
                        : lv.getPreProcessor().clone()));
                replaced++;
            } else {
                vertices.put(e.getKey(), v.clone());
            }
        }
        if (replaced == 0) {
            throw new IllegalArgumentException("no stock SelfAttentionLayer in the graph; layers are: "
                    + GraphRewriter.describeLayers(conf));
        }
        ComputationGraphConfiguration newConf = conf.clone();
        newConf.setVertices(vertices);
        newConf.setTopologicalOrder(null);
        newConf.setTopologicalOrderStr(null);
        newConf.validate(false, false);
        ComputationGraph out = new ComputationGraph(newConf);
        out.init();
        for (org.deeplearning4j.nn.api.Layer src : graph.getLayers()) {
            String name = src.conf().getLayer().getLayerName();
            org.deeplearning4j.nn.api.Layer dst = out.getLayer(name);
            for (Map.Entry<String, INDArray> p : src.paramTable().entrySet()) {
                INDArray target = dst.paramTable().get(p.getKey());
                if (target == null || target.length() != p.getValue().length()) {
                    throw new IllegalStateException("cannot copy parameter " + p.getKey() + " of layer " + name);
                }
                target.assign(p.getValue().reshape(target.shape()));
            }
        }
        return out;
    }

    /** Names of the layers {@link #fromStock} would replace. */
    public static List<String> stockSelfAttentionLayers(ComputationGraph graph) {
        return graph.getConfiguration().getVertices().entrySet().stream()
                .filter(e -> e.getValue() instanceof LayerVertex
                        && ((LayerVertex) e.getValue()).getLayerConf().getLayer() instanceof SelfAttentionLayer)
                .map(Map.Entry::getKey).toList();
    }
}
