package org.peft4j.core.rlhf.internal;

import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.conf.layers.BaseOutputLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.RnnLossLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.lossfunctions.ILossFunction;

/**
 * Backpropagates an objective computed outside the graph: given {@code dL/dz} for each output's
 * pre-activation {@code z}, it puts an {@link ExternalGradientLoss} on every output layer for the
 * duration of one DL4J backward pass (the layers' own losses are restored afterwards, also on
 * failure) and runs either {@code computeGradientAndScore} ({@link #gradient}) or {@code fit}
 * ({@link #fit}: the graph's updater, gradient normalization, listeners and iteration count, as for
 * any other step).
 *
 * <p>{@code fit} divides the summed gradient by the minibatch size when the configuration says
 * {@code miniBatch(true)} (DL4J's default); {@link #fit} multiplies the given gradient by that size
 * first, so the step applies exactly {@code dL/dθ} of the objective as given (a mean over the batch
 * when the caller averaged).
 *
 * <p>Thread-safety: uses the graph as {@code fit} does; one thread at a time per graph.
 */
public final class ExternalBackprop {

    private ExternalBackprop() {
    }

    /**
     * The gradient {@code dL/dθ} of the trainable parameters (a detached copy of the flat gradient,
     * in {@link ComputationGraph#params()} order).
     *
     * @param dLdz one array per graph output, in output order, shaped like the output
     */
    public static INDArray gradient(ComputationGraph g, INDArray input, INDArray mask, INDArray[] dLdz) {
        try (Swap ignored = new Swap(g)) {
            g.clear();
            g.setInputs(input);
            g.setLabels(dLdz);
            g.setLayerMaskArrays(mask == null ? null : new INDArray[] {mask}, null);
            g.computeGradientAndScore();
            INDArray grad = g.gradient().gradient().dup().detach();
            g.clear();
            return grad;
        }
    }

    /** One optimizer step on the objective with gradients {@code dLdz} (see the class comment). */
    public static void fit(ComputationGraph g, INDArray input, INDArray mask, INDArray[] dLdz) {
        long n = input.size(0);
        INDArray[] labels = new INDArray[dLdz.length];
        boolean divides = g.conf().isMiniBatch();
        for (int i = 0; i < dLdz.length; i++) {
            labels[i] = divides ? dLdz[i].mul(n) : dLdz[i];
        }
        try (Swap ignored = new Swap(g)) {
            g.clear();
            g.fit(new MultiDataSet(new INDArray[] {input}, labels, mask == null ? null : new INDArray[] {mask}, null));
            g.clear();
        }
    }

    /** The outputs' losses replaced by {@link ExternalGradientLoss} until closed. */
    private static final class Swap implements AutoCloseable {
        private final List<Layer> layers = new ArrayList<>();
        private final List<ILossFunction> saved = new ArrayList<>();

        Swap(ComputationGraph g) {
            ExternalGradientLoss external = new ExternalGradientLoss();
            try {
                for (String out : g.getConfiguration().getNetworkOutputs()) {
                    org.deeplearning4j.nn.api.Layer layer = g.getLayer(out);
                    if (layer == null) {
                        throw new IllegalArgumentException("output \"" + out + "\" is a vertex, not a layer; the "
                                + "preference methods backpropagate through output layers (OutputLayer, "
                                + "RnnOutputLayer, LossLayer, RnnLossLayer)");
                    }
                    Layer c = layer.conf().getLayer();
                    ILossFunction old = lossOf(c, out);
                    layers.add(c);
                    saved.add(old);
                    setLoss(c, external);
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        private static ILossFunction lossOf(Layer c, String name) {
            if (c instanceof BaseOutputLayer o) {
                return o.getLossFn();
            } else if (c instanceof LossLayer o) {
                return o.getLossFn();
            } else if (c instanceof RnnLossLayer o) {
                return o.getLossFn();
            }
            throw new IllegalArgumentException("output \"" + name + "\" is a " + c.getClass().getSimpleName()
                    + ", which has no loss function; the preference methods backpropagate through output layers "
                    + "(OutputLayer, RnnOutputLayer, LossLayer, RnnLossLayer)");
        }

        private static void setLoss(Layer c, ILossFunction loss) {
            if (c instanceof BaseOutputLayer o) {
                o.setLossFn(loss);
            } else if (c instanceof LossLayer o) {
                o.setLossFn(loss);
            } else {
                ((RnnLossLayer) c).setLossFn(loss);
            }
        }

        @Override
        public void close() {
            for (int i = 0; i < layers.size(); i++) {
                setLoss(layers.get(i), saved.get(i));
            }
            layers.clear();
            saved.clear();
        }
    }
}
