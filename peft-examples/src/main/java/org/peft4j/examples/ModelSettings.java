package org.peft4j.examples;

/**
 * Shape and training settings of the character-level model.
 *
 * @param vocabSize number of token ids
 * @param seqLen characters per training window (the model's maximum length)
 * @param dModel width of the residual stream
 * @param heads attention heads
 * @param layers decoder blocks
 * @param mlpRatio MLP hidden width as a multiple of {@code dModel}
 * @param seed weight initialisation seed
 * @param learningRate Adam learning rate for pretraining
 */
record ModelSettings(int vocabSize, int seqLen, int dModel, int heads, int layers, int mlpRatio, long seed,
                     double learningRate) {

    ModelSettings {
        if (vocabSize < 2 || seqLen < 2 || dModel < 1 || heads < 1 || layers < 1 || mlpRatio < 1) {
            throw new IllegalArgumentException("model settings must be positive (vocab and length at least 2): " + this);
        }
        if (dModel % heads != 0) {
            throw new IllegalArgumentException("dModel " + dModel + " must be a multiple of heads " + heads);
        }
    }

    /** A stable text of every field, for cache keys. */
    String key() {
        return toString();
    }
}
