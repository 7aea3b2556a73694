package org.peft4j.core.rlhf.internal;

import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.lossfunctions.ILossFunction;
import org.nd4j.linalg.lossfunctions.LossUtil;

/**
 * A loss whose labels are the gradient {@code G = dL/dz} of an objective {@code L} computed outside
 * the graph, with respect to the output layer's pre-activation {@code z} ({@code [n, k]}, rows as
 * DL4J flattens them): {@code computeGradient} returns {@code G} (times the mask), whatever the
 * layer's activation, and the score is the linear surrogate {@code Σ G ⊙ z}, whose gradient that
 * is. With it, one {@code ComputationGraph} backward pass carries an objective that couples
 * sequences (DPO pairs, PPO's clipped ratios) into every trainable parameter, through the graph's
 * own layers.
 *
 * <p>DL4J's stock losses cannot express such a gradient: a sparse cross-entropy gives
 * {@code (p − onehot)·w} only, not temperature-scaled or top-k-restricted softmax gradients.
 *
 * <p>Thread-safety: stateless.
 */
public final class ExternalGradientLoss implements ILossFunction {
    private static final long serialVersionUID = 1L;

    @Override
    public double computeScore(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask,
                               boolean average) {
        double s = computeScoreArray(labels, preOutput, activationFn, mask).sumNumber().doubleValue();
        return average ? s / preOutput.size(0) : s;
    }

    @Override
    public INDArray computeScoreArray(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        INDArray s = labels.castTo(preOutput.dataType()).mul(preOutput);
        if (mask != null) {
            LossUtil.applyMask(s, mask);
        }
        return s.sum(true, 1);
    }

    @Override
    public INDArray computeGradient(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        if (!java.util.Arrays.equals(labels.shape(), preOutput.shape())) {
            throw new IllegalStateException("external gradient of shape " + java.util.Arrays.toString(labels.shape())
                    + " for an output of shape " + java.util.Arrays.toString(preOutput.shape()));
        }
        INDArray g = labels.castTo(preOutput.dataType()).dup(preOutput.ordering());
        if (mask != null) {
            LossUtil.applyMask(g, mask);
        }
        return g;
    }

    @Override
    public Pair<Double, INDArray> computeGradientAndScore(INDArray labels, INDArray preOutput, IActivation activationFn,
                                                          INDArray mask, boolean average) {
        return new Pair<>(computeScore(labels, preOutput, activationFn, mask, average),
                computeGradient(labels, preOutput, activationFn, mask));
    }

    @Override
    public String name() {
        return "ExternalGradientLoss";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ExternalGradientLoss;
    }

    @Override
    public int hashCode() {
        return ExternalGradientLoss.class.hashCode();
    }

    @Override
    public String toString() {
        return name();
    }
}
