package org.peft4j.examples;

import java.util.List;

/**
 * One row of the comparison table.
 *
 * @param method the method's name
 * @param trainableParams parameters that trained
 * @param allParams parameters of the tuned model (frozen ones included)
 * @param trainStateBytes memory for trainable parameters, their gradients and Adam's two moments
 *     (16 bytes per trainable float parameter)
 * @param peakOffHeapBytes peak ND4J off-heap bytes while training (see {@link MemoryProbe})
 * @param peakHeapBytes peak JVM heap in use while training
 * @param msPerStep mean wall time of one training step (the first step excluded), 0 if none
 * @param target held-out metrics on the target domain
 * @param sourceBitsPerChar bits per character on the source domain's held-out text (forgetting)
 * @param savedBytes size of the saved adapter files, 0 if nothing was saved
 * @param reloadMaxAbsDiff largest absolute difference between the trained model's and the
 *     reloaded model's outputs on a held-out batch (NaN if nothing was saved)
 * @param trainLoss training loss per step; for an untrained row (zero-shot), the base model's loss on the
 *     batches the other rows trained on
 * @param sample generated text from the held-out prompt
 */
record MethodResult(String method, long trainableParams, long allParams, long trainStateBytes, long peakOffHeapBytes,
                    long peakHeapBytes, double msPerStep, HeldOutMetrics target, double sourceBitsPerChar,
                    long savedBytes, double reloadMaxAbsDiff, List<Double> trainLoss, String sample) {

    /** Trainable share of all parameters, in percent. */
    double trainablePercent() {
        return allParams == 0 ? 0 : 100.0 * trainableParams / allParams;
    }
}
