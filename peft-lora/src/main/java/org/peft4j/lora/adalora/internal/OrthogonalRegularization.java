package org.peft4j.lora.adalora.internal;

import java.util.Arrays;
import java.util.Objects;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.regularization.Regularization;

/**
 * AdaLoRA's orthogonal regularizer of one factor, as Hugging Face PEFT adds it to the loss
 * ({@code AdaLoraModel.forward}): {@code c·‖M‖_F} with {@code M = A·Aᵀ − I} for {@code A [r, n]}
 * (orthonormal rows) or {@code M = Bᵀ·B − I} for {@code B [out, r]} (orthonormal columns), and
 * {@code c = orth_reg_weight / N}, {@code N} the number of factors regularized in the model (2 per
 * layer). PEFT takes the Frobenius norm itself, not its square (the paper's Eq. 4 squares it); so
 * does this. Gradient: {@code 2c·M·A/‖M‖} and {@code 2c·B·M/‖M‖} ({@code M} is symmetric), 0 where
 * {@code M = 0}.
 *
 * <p>A DL4J {@link Regularization}: the updater adds the gradient to the parameter's (minibatch-
 * averaged) gradient before the update, and the score includes the term, as the loss does in PEFT.
 * Computed in double precision on the JVM: {@code M} is {@code r × r} with {@code r} a dozen or so,
 * and a handful of small ND4J operations would cost more than the arithmetic.
 *
 * <p>Thread-safety: immutable.
 */
public final class OrthogonalRegularization implements Regularization {
    private static final long serialVersionUID = 1L;

    private final double coefficient;
    private final boolean rows;
    private final long[] shape;

    /**
     * @param coefficient {@code c}
     * @param rows true for {@code A} ({@code M = A·Aᵀ − I}), false for {@code B} ({@code M = Bᵀ·B − I})
     * @param shape the factor's shape: DL4J's updater hands a parameter over as a flat view of its
     *     {@code 'f'}-ordered elements
     */
    public OrthogonalRegularization(double coefficient, boolean rows, long... shape) {
        this.coefficient = coefficient;
        this.rows = rows;
        this.shape = shape.clone();
    }

    /** The elements of a factor (the matrix, or a flat view of its {@code 'f'}-ordered elements) in {@code 'f'} order. */
    public static double[] fortranOrder(INDArray p) {
        return (p.rank() == 1 ? p : p.reshape('f', new long[] {p.length()})).toDoubleVector();
    }

    @Override
    public ApplyStep applyStep() {
        return ApplyStep.BEFORE_UPDATER;
    }

    /** Adds {@code c·∂‖M‖/∂p} to {@code gradView}. */
    @Override
    public void apply(INDArray param, INDArray gradView, double lr, int iteration, int epoch) {
        double[] g = gradient(fortranOrder(param));
        gradView.addi(Nd4j.create(g, new long[] {g.length}, 'f').castTo(gradView.dataType())
                .reshape('f', gradView.shape()));
    }

    /** {@code c·∂‖M‖/∂p} as a matrix of the factor's shape, in double precision. */
    public INDArray gradient(INDArray param) {
        return Nd4j.create(gradient(fortranOrder(param)), shape, 'f');
    }

    /** {@code c·∂‖M‖/∂p} of a factor given by its {@code 'f'}-ordered elements, in the same order. */
    public double[] gradient(double[] p) {
        int r = rank();
        double[] m = deviation(p);
        double norm = norm(m);
        double[] g = new double[p.length];
        if (norm == 0) {
            return g;
        }
        double f = 2 * coefficient / norm;
        if (rows) {
            int n = (int) shape[1];
            for (int j = 0; j < n; j++) {
                for (int i = 0; i < r; i++) {
                    double s = 0;
                    for (int k = 0; k < r; k++) {
                        s += m[i + k * r] * p[k + j * r];
                    }
                    g[i + j * r] = f * s;
                }
            }
        } else {
            int out = (int) shape[0];
            for (int i = 0; i < r; i++) {
                for (int o = 0; o < out; o++) {
                    double s = 0;
                    for (int k = 0; k < r; k++) {
                        s += p[o + k * out] * m[k + i * r];
                    }
                    g[o + i * out] = f * s;
                }
            }
        }
        return g;
    }

    private int rank() {
        return (int) (rows ? shape[0] : shape[1]);
    }

    /** {@code M = A·Aᵀ − I} or {@code Bᵀ·B − I}, {@code r × r} ('f' order, symmetric). */
    private double[] deviation(double[] p) {
        int r = rank();
        int len = (int) (rows ? shape[1] : shape[0]);
        double[] m = new double[r * r];
        for (int i = 0; i < r; i++) {
            for (int k = i; k < r; k++) {
                double s = 0;
                for (int j = 0; j < len; j++) {
                    s += rows ? p[i + j * r] * p[k + j * r] : p[j + i * len] * p[j + k * len];
                }
                if (i == k) {
                    s -= 1;
                }
                m[i + k * r] = s;
                m[k + i * r] = s;
            }
        }
        return m;
    }

    private static double norm(double[] m) {
        double s = 0;
        for (double v : m) {
            s += v * v;
        }
        return Math.sqrt(s);
    }

    @Override
    public double score(INDArray param, int iteration, int epoch) {
        return coefficient * norm(deviation(fortranOrder(param)));
    }

    @Override
    public Regularization clone() {
        return new OrthogonalRegularization(coefficient, rows, shape);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof OrthogonalRegularization r && Double.compare(r.coefficient, coefficient) == 0
                && r.rows == rows && Arrays.equals(r.shape, shape);
    }

    @Override
    public int hashCode() {
        return Objects.hash(coefficient, rows, Arrays.hashCode(shape));
    }

    @Override
    public String toString() {
        return "OrthogonalRegularization(" + coefficient + " * ||" + (rows ? "A·Aᵀ" : "Bᵀ·B") + " - I||_F, "
                + Arrays.toString(shape) + ")";
    }
}
