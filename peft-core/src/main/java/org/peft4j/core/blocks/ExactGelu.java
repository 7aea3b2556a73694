package org.peft4j.core.blocks;

import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.BaseActivationFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Erf;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;
import org.peft4j.core.blocks.internal.GeluKernel;

/**
 * The exact GELU of BERT and the original paper, {@code gelu(x) = x·Φ(x) = ½·x·(1 + erf(x/√2))},
 * with derivative {@code Φ(x) + x·φ(x)}, {@code φ(x) = exp(−x²/2)/√(2π)}.
 *
 * <p>DL4J 1.0.0-M2.1's {@code Activation.GELU} is not this function: it is the sigmoid
 * approximation {@code x·σ(1.702·x)} (1.4e-2 from the erf form at {@code x = −3}, 4.5e-3 at
 * {@code x = 1}; measured). Its {@code ActivationGELU(true)} ("precise") is not the usual tanh form
 * {@code ½x(1 + tanh(√(2/π)(x + 0.044715x³)))} either: it stays within 2e-4 of that form without
 * its cubic term, {@code x·σ(√(8/π)·x)}, and is further still from the erf form. Use this class when importing a BERT-family
 * model (MiniLM included).
 *
 * <p>Float32 arrays laid out contiguously (dense-layer activations) are computed in one pass by
 * {@link GeluKernel}, within {@code 2.5e-7·max(1, |x|)} of the exact function (see there why ND4J's
 * ops were not enough); other arrays, double precision included, by ND4J's {@code erf} and
 * {@code exp}.
 *
 * <p>Thread-safety: stateless.
 */
public class ExactGelu extends BaseActivationFunction {
    private static final long serialVersionUID = 1L;

    private static final double INV_SQRT2 = 1.0 / Math.sqrt(2.0);
    private static final double INV_SQRT_2PI = 1.0 / Math.sqrt(2.0 * Math.PI);

    /** Φ(x) = ½(1 + erf(x/√2)), a new array. */
    private static INDArray cdf(INDArray x) {
        INDArray phi = x.mul(INV_SQRT2);
        Nd4j.getExecutioner().exec(new Erf(phi, phi));
        return phi.addi(1.0).muli(0.5);
    }

    @Override
    public INDArray getActivation(INDArray in, boolean training) {
        if (GeluKernel.handles(in, null)) {
            GeluKernel.forward(in);
            return in;
        }
        return in.muli(cdf(in));
    }

    @Override
    public Pair<INDArray, INDArray> backprop(INDArray in, INDArray epsilon) {
        assertShape(in, epsilon);
        if (GeluKernel.handles(in, null)) {
            // an epsilon in the other order is copied once: cheaper than ND4J's ops on mixed orders
            INDArray dy = GeluKernel.handles(in, epsilon) ? epsilon : epsilon.castTo(DataType.FLOAT).dup(in.ordering());
            GeluKernel.backward(in, dy);
            return new Pair<>(in, null);
        }
        INDArray density = Transforms.exp(in.mul(in).muli(-0.5), false).muli(INV_SQRT_2PI);
        INDArray dLdz = cdf(in).addi(density.muli(in));
        in.assign(dLdz.muli(epsilon));
        return new Pair<>(in, null);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ExactGelu;
    }

    @Override
    public int hashCode() {
        return ExactGelu.class.hashCode();
    }

    @Override
    public String toString() {
        return "exactgelu";
    }
}
