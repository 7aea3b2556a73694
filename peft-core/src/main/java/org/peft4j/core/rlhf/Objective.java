package org.peft4j.core.rlhf;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * An objective's value on a batch and its gradient with respect to the trainable parameters (flat,
 * in {@code graph().params()} order), without an update: what the trainers' steps apply, exposed to
 * this package's tests for comparison with finite differences.
 *
 * @param loss the objective
 * @param gradient {@code dLoss/dθ}
 */
record Objective(double loss, INDArray gradient) {
}
