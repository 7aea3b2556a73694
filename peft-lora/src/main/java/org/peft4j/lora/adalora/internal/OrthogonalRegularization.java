package org.peft4j.lora.adalora.internal;

import java.util.Objects;
import org.nd4j.linalg.api.buffer.DataType;
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

    /** The factor as a matrix in double precision (a flat view is read in {@code 'f'} order). */
    private INDArray matrix(INDArray p) {
        INDArray d = p.castTo(DataType.DOUBLE);
        return d.rank() == 2 ? d : d.dup('f').reshape('f', shape);
    }

    /** {@code M} in double precision. */
    private INDArray deviation(INDArray p) {
        INDArray d = matrix(p);
        INDArray m = rows ? d.mmul(d.transpose()) : d.transpose().mmul(d);
        return m.subi(Nd4j.eye(m.rows()).castTo(DataType.DOUBLE));
    }

    @Override
    public ApplyStep applyStep() {
        return ApplyStep.BEFORE_UPDATER;
    }

    /** Adds {@code c·∂‖M‖/∂p} to {@code gradView}. */
    @Override
    public void apply(INDArray param, INDArray gradView, double lr, int iteration, int epoch) {
        gradView.addi(gradient(param).castTo(gradView.dataType()).dup('f').reshape('f', gradView.shape()));
    }

    /** {@code c·∂‖M‖/∂p} as a matrix of the factor's shape, in double precision. */
    public INDArray gradient(INDArray param) {
        INDArray m = deviation(param);
        double norm = m.norm2Number().doubleValue();
        INDArray p = matrix(param);
        if (norm == 0) {
            return Nd4j.zeros(DataType.DOUBLE, p.shape());
        }
        INDArray g = rows ? m.mmul(p) : p.mmul(m);
        return g.muli(2 * coefficient / norm);
    }

    @Override
    public double score(INDArray param, int iteration, int epoch) {
        return coefficient * deviation(param).norm2Number().doubleValue();
    }

    @Override
    public Regularization clone() {
        return new OrthogonalRegularization(coefficient, rows, shape);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof OrthogonalRegularization r && Double.compare(r.coefficient, coefficient) == 0
                && r.rows == rows && java.util.Arrays.equals(r.shape, shape);
    }

    @Override
    public int hashCode() {
        return Objects.hash(coefficient, rows, java.util.Arrays.hashCode(shape));
    }

    @Override
    public String toString() {
        return "OrthogonalRegularization(" + coefficient + " * ||" + (rows ? "A·Aᵀ" : "Bᵀ·B") + " - I||_F)";
    }
}
