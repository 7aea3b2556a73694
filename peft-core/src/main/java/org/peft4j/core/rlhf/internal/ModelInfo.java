package org.peft4j.core.rlhf.internal;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.BaseOutputLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.RnnLossLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.conf.layers.wrapper.BaseWrapperLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.impl.ActivationSoftmax;
import org.nd4j.linalg.api.buffer.DataType;
import org.peft4j.core.blocks.PositionalEmbedding;
import org.peft4j.core.rlhf.Heads;

/**
 * What the preference methods need to know about a graph, read from its configuration: the data
 * type, the context length, the vocabulary (to check token ids before they reach the embedding),
 * and which of the {@link Heads} it has.
 *
 * <p>Thread-safety: immutable.
 *
 * @param graph the graph described
 * @param heads the output names asked for
 * @param dataType the network's data type (inputs and labels are made in it)
 * @param maxLength the context length
 * @param vocab the number of token ids the input embedding takes, or 0 if the graph has no such embedding
 * @param hasLanguageModel whether {@code heads.languageModel()} is an output
 * @param hasScore whether {@code heads.score()} is an output
 * @param scorePerToken whether the score output is per position ({@code [batch, 1, time]}) rather than pooled
 * @param outputs the graph's outputs in order
 */
public record ModelInfo(ComputationGraph graph, Heads heads, DataType dataType, int maxLength, long vocab,
                        boolean hasLanguageModel, boolean hasScore, boolean scorePerToken, List<String> outputs) {

    /**
     * Reads {@code graph}'s configuration.
     *
     * @throws IllegalArgumentException if the context length cannot be found, or the graph has more
     *     than one input
     */
    public static ModelInfo of(ComputationGraph graph, Heads heads) {
        ComputationGraphConfiguration conf = graph.getConfiguration();
        if (conf.getNetworkInputs().size() != 1) {
            throw new IllegalArgumentException("the preference methods feed one input of token ids [batch, time]; "
                    + "the graph has inputs " + conf.getNetworkInputs());
        }
        List<String> outputs = List.copyOf(conf.getNetworkOutputs());
        Map<String, GraphVertex> vertices = conf.getVertices();
        int maxLength = heads.maxLength();
        long vocab = 0;
        String input = conf.getNetworkInputs().get(0);
        for (Map.Entry<String, GraphVertex> e : vertices.entrySet()) {
            Layer l = unwrap(layerOf(e.getValue()));
            if (l instanceof PositionalEmbedding p && heads.maxLength() == 0) {
                maxLength = maxLength == 0 ? Math.toIntExact(p.maxLength()) : Math.min(maxLength,
                        Math.toIntExact(p.maxLength()));
            }
            if ((l instanceof EmbeddingSequenceLayer || l instanceof EmbeddingLayer)
                    && conf.getVertexInputs().get(e.getKey()).contains(input)) {
                vocab = ((org.deeplearning4j.nn.conf.layers.FeedForwardLayer) l).getNIn();
            }
        }
        if (maxLength == 0) {
            throw new IllegalArgumentException("cannot tell the graph's context length: it has no PositionalEmbedding "
                    + "layer; give the longest sequence it takes with Heads.withMaxLength(n)");
        }
        boolean hasLm = outputs.contains(heads.languageModel());
        if (hasLm) {
            Layer head = unwrap(layerOf(vertices.get(heads.languageModel())));
            if (!(head instanceof BaseLayer b) || !(b.getActivationFn() instanceof ActivationSoftmax)) {
                throw new IllegalArgumentException("the next-token output \"" + heads.languageModel() + "\" must be "
                        + "an output layer with a softmax activation (its pre-activations are the logits the "
                        + "preference methods differentiate); it is " + (head == null ? "not a layer"
                        : head.getClass().getSimpleName() + (head instanceof BaseLayer b2 ? " with activation "
                        + b2.getActivationFn() : "")));
            }
        }
        boolean hasScore = outputs.contains(heads.score());
        boolean perToken = hasScore && isSequenceOutput(layerOf(vertices.get(heads.score())));
        return new ModelInfo(graph, heads, conf.getDataType(), maxLength, vocab, hasLm, hasScore, perToken, outputs);
    }

    /** Throws unless the graph has the next-token output; {@code what} names the caller for the message. */
    public void requireLanguageModel(String what) {
        if (!hasLanguageModel) {
            throw new IllegalArgumentException(what + " needs the next-token output \"" + heads.languageModel()
                    + "\", but the graph's outputs are " + outputs + "; name it with Heads");
        }
    }

    /** Throws unless the graph has the scalar output; {@code what} names the caller for the message. */
    public void requireScore(String what) {
        if (!hasScore) {
            throw new IllegalArgumentException(what + " needs the scalar output \"" + heads.score() + "\", but the "
                    + "graph's outputs are " + outputs + "; add one with ScoreHead.decoder(base) or "
                    + "ScoreHead.encoder(base) before wrapping, or name it with Heads");
        }
    }

    /**
     * The smallest probability a softmax of the network's data type holds without underflow; smaller
     * probabilities count as this one when their logarithm is taken.
     */
    public double probabilityFloor() {
        return dataType == DataType.DOUBLE ? Double.MIN_NORMAL : Float.MIN_NORMAL;
    }

    /** Whether the next-token output reads positions left to right (a decoder): then prompts must not be empty. */
    public boolean isDecoder() {
        return hasLanguageModel || scorePerToken;
    }

    private static boolean isSequenceOutput(Layer l) {
        return l instanceof RnnOutputLayer || l instanceof RnnLossLayer;
    }

    static Layer layerOf(GraphVertex v) {
        return v instanceof LayerVertex lv ? lv.getLayerConf().getLayer() : null;
    }

    static Layer unwrap(Layer l) {
        Layer x = l;
        while (x instanceof BaseWrapperLayer w) {
            x = w.getUnderlying();
        }
        return x;
    }

    /** Whether a layer configuration carries a loss function the preference methods can replace. */
    static boolean hasLoss(Layer l) {
        return l instanceof BaseOutputLayer || l instanceof LossLayer || l instanceof RnnLossLayer;
    }
}
