package org.peft4j.core.spi;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.blocks.internal.DirectGemm;

/**
 * {@code c = alpha·op(a)·op(b) + beta·c} for a tuner's own products (its adapter branch), as
 * {@code Nd4j.gemm(a, b, c, transposeA, transposeB, alpha, beta)}: a direct {@link HostBlas} call
 * when all three are float32 matrices BLAS reads in place (parameter and gradient views included),
 * {@code Nd4j.gemm} otherwise (double precision, other backends, {@code -Dpeft4j.directBlas=false}).
 *
 * <p>Why: the low-rank products of a LoRA layer are small ({@code [512, 384]·[384, 8]} and the like
 * in a MiniLM-sized step at 8 × 64 tokens), so {@code Nd4j.gemm}'s fixed set-up per call is a large
 * share of each. Measured at one thread on those shapes (in one JVM, alternating): the six
 * products of a LoRA layer's training step took 615 µs through {@code Nd4j.gemm} and 395 µs
 * through {@code cblas_sgemm} on the same buffers (x·A alone 99.9 against 68.7 µs).
 *
 * <p>Thread-safety: stateless; concurrent writes to one {@code c} are the caller's business.
 */
public final class AdapterGemm {

    private AdapterGemm() {
    }

    /** {@code c = alpha·op(a)·op(b) + beta·c}, {@code c} written in place. */
    public static void gemm(INDArray a, INDArray b, INDArray c, boolean transposeA, boolean transposeB, double alpha,
                            double beta) {
        DirectGemm.gemm(a, b, c, transposeA, transposeB, alpha, beta);
    }
}
