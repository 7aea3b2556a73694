package org.peft4j.core.rlhf;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.RnnOutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.blocks.Transformers;

/**
 * Adds the scalar head {@value #NAME} that a reward model and PPO's value function read: a linear
 * map {@code r = h·w + b} ({@code w [d, 1]}, both zero at first, so every reward starts at 0) from
 * the features the model's own head reads. The result is a new graph of the base's data type: the base graph is
 * only read, its weights copied.
 *
 * <ul>
 *   <li>{@link #decoder}: beside the next-token head, an {@code RnnOutputLayer} giving one value per
 *       position ({@code [batch, 1, time]}); the reward of a sequence is the value at its last token,
 *       and PPO reads the value of each state from the position before each response token. Outputs:
 *       the next-token head, then {@value #NAME}.</li>
 *   <li>{@link #encoder}: an {@code OutputLayer} on the pooled features ({@code [batch, 1]}). Output:
 *       {@value #NAME}.</li>
 * </ul>
 * Both carry DL4J's MSE loss with an identity activation, so {@code fit} with reward targets also
 * works; the preference trainers replace the loss during their own backward passes. The head
 * trains with the updater of the model's next-token head (decoder) or first trained layer (encoder). Wrap the
 * result with {@value #NAME} in {@code modulesToSave} to train the head, which is then saved with
 * the adapter as a trained module ({@code base_model.model.score.weight}, {@code .bias}).
 *
 * <p>Thread-safety: stateless.
 */
public final class ScoreHead {

    /** Name of the scalar head. */
    public static final String NAME = "score";

    private ScoreHead() {
    }

    /** {@link #decoder(ComputationGraph, String)} for peft4j's decoder (head {@link Transformers#OUTPUT}). */
    public static ComputationGraph decoder(ComputationGraph base) {
        return decoder(base, Transformers.OUTPUT);
    }

    /**
     * {@code base} plus a per-position scalar head reading the input of the next-token output
     * {@code languageModel} (an {@code RnnOutputLayer}).
     *
     * @throws IllegalArgumentException if {@code languageModel} is not an {@code RnnOutputLayer}
     *     output of {@code base}, or {@code base} already has a layer named {@value #NAME}
     */
    public static ComputationGraph decoder(ComputationGraph base, String languageModel) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        requireFreeName(conf);
        Layer head = layerOf(conf, languageModel);
        if (!(head instanceof RnnOutputLayer r) || !conf.getNetworkOutputs().contains(languageModel)) {
            throw new IllegalArgumentException("\"" + languageModel + "\" is not an RnnOutputLayer output of the graph; "
                    + "outputs are " + conf.getNetworkOutputs());
        }
        String input = conf.getVertexInputs().get(languageModel).get(0);
        RNNFormat fmt = r.getRnnDataFormat() == null ? RNNFormat.NCW : r.getRnnDataFormat();
        RnnOutputLayer score = new RnnOutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(r.getNIn()).nOut(1)
                .activation(Activation.IDENTITY).dataFormat(fmt).build();
        List<String> outputs = new ArrayList<>(conf.getNetworkOutputs());
        outputs.add(NAME);
        return attach(base, score, input, outputs, r);
    }

    /** {@link #encoder(ComputationGraph, String, long)} for peft4j's encoder (pooled output {@link Transformers#POOL}). */
    public static ComputationGraph encoder(ComputationGraph base) {
        Layer embed = layerOf(base.getConfiguration(), Transformers.TOKEN_EMBEDDING);
        if (!(embed instanceof FeedForwardLayer f)) {
            throw new IllegalArgumentException("the graph has no " + Transformers.TOKEN_EMBEDDING + " layer to read "
                    + "the model width from; use encoder(base, pooled, width)");
        }
        return encoder(base, Transformers.POOL, f.getNOut());
    }

    /**
     * {@code base} plus a scalar head reading the pooled features {@code pooled} ({@code [batch,
     * width]}); the head becomes the only output.
     *
     * @throws IllegalArgumentException if {@code pooled} is not a vertex of {@code base}, the width
     *     is not positive, or {@code base} already has a layer named {@value #NAME}
     */
    public static ComputationGraph encoder(ComputationGraph base, String pooled, long width) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        requireFreeName(conf);
        if (!conf.getVertices().containsKey(pooled)) {
            throw new IllegalArgumentException("the graph has no vertex \"" + pooled + "\"; vertices are "
                    + conf.getVertices().keySet());
        }
        if (width <= 0) {
            throw new IllegalArgumentException("width must be positive; got " + width);
        }
        OutputLayer score = new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(width).nOut(1)
                .activation(Activation.IDENTITY).build();
        return attach(base, score, pooled, List.of(NAME), referenceLayer(conf));
    }

    /**
     * A new graph: {@code base}'s configuration plus {@code score} (with the updater, regularization
     * and gradient normalization of {@code like}, a layer of the model), base weights copied by layer
     * name and key, the head zero. DL4J's {@code TransferLearning.GraphBuilder} would do the same, but
     * in 1.0.0-M2.1 it builds a float graph from a double one.
     */
    private static ComputationGraph attach(ComputationGraph base, BaseLayer score, String input, List<String> outputs,
                                           BaseLayer like) {
        ComputationGraphConfiguration orig = base.getConfiguration();
        // a builder made from a NeuralNetConfiguration carries no updater: take the model's own settings
        if (like != null) {
            score.setIUpdater(like.getIUpdater() == null ? null : like.getIUpdater().clone());
            score.setBiasUpdater(like.getBiasUpdater() == null ? null : like.getBiasUpdater().clone());
            score.setRegularization(like.getRegularization());
            score.setRegularizationBias(like.getRegularizationBias());
            score.setGradientNormalization(like.getGradientNormalization());
            score.setGradientNormalizationThreshold(like.getGradientNormalizationThreshold());
        }
        NeuralNetConfiguration.Builder global = new NeuralNetConfiguration.Builder(base.conf().clone())
                .dataType(orig.getDataType());
        ComputationGraphConfiguration conf = new ComputationGraphConfiguration.GraphBuilder(orig.clone(), global)
                .addLayer(NAME, score, input)
                .setOutputs(outputs.toArray(new String[0]))
                .build();
        conf.setDataType(orig.getDataType());
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        for (org.deeplearning4j.nn.api.Layer l : base.getLayers()) {
            org.deeplearning4j.nn.api.Layer target = g.getLayer(l.conf().getLayer().getLayerName());
            l.paramTable().forEach((k, v) -> target.getParam(k).assign(v));
        }
        g.getLayer(NAME).params().assign(0);
        return g;
    }

    /** The first layer with an updater of its own: whose training settings the head copies. */
    private static BaseLayer referenceLayer(ComputationGraphConfiguration conf) {
        for (GraphVertex v : conf.getVertices().values()) {
            if (v instanceof LayerVertex lv && lv.getLayerConf().getLayer() instanceof BaseLayer b
                    && b.getIUpdater() != null) {
                return b;
            }
        }
        return null;
    }

    private static void requireFreeName(ComputationGraphConfiguration conf) {
        if (conf.getVertices().containsKey(NAME)) {
            throw new IllegalArgumentException("the graph already has a vertex named \"" + NAME + "\"");
        }
    }

    private static Layer layerOf(ComputationGraphConfiguration conf, String name) {
        Map<String, GraphVertex> v = conf.getVertices();
        return v.get(name) instanceof LayerVertex lv ? lv.getLayerConf().getLayer() : null;
    }
}
