package org.peft4j.examples;

import java.util.List;

/**
 * One row of the spam example's table.
 *
 * @param method the method's name
 * @param trainableParams parameters that trained (0 for the untrained baseline)
 * @param allParams parameters of the tuned model, frozen ones included
 * @param peakRssBytes peak resident set of the process while training (see {@link MemoryProbe})
 * @param peakHeapBytes peak JVM heap in use while training
 * @param msPerStep mean wall time of one training step (the first excluded), 0 if none
 * @param accuracy held-out accuracy
 * @param precision held-out precision of the spam class
 * @param recall held-out recall of the spam class
 * @param f1 held-out F1 of the spam class
 * @param savedBytes bytes of what was saved (adapter files, or the model zip), 0 if nothing
 * @param savedAs {@code adapter} (PEFT files), {@code model zip}, or empty
 * @param reloadMaxAbsDiff largest |difference| of class probabilities between the trained model and
 *     the one reloaded from disk onto a freshly loaded base, on the first held-out batches (NaN if
 *     nothing was saved)
 * @param reloadSamePredictions whether the reloaded model predicts the same class for each of them
 * @param trainLoss training loss (cross-entropy per e-mail) after each step
 */
record SpamResult(String method, long trainableParams, long allParams, long peakRssBytes, long peakHeapBytes,
                  double msPerStep, double accuracy, double precision, double recall, double f1, long savedBytes,
                  String savedAs, double reloadMaxAbsDiff, boolean reloadSamePredictions, List<Double> trainLoss) {

    /** Trainable share of all parameters, in percent. */
    double trainablePercent() {
        return allParams == 0 ? 0 : 100.0 * trainableParams / allParams;
    }
}
