package org.peft4j.core.rlhf;

import java.util.List;

/**
 * Scores responses for {@link PpoTrainer}: one number per (prompt, response), higher is better. A
 * trained {@link RewardModel} is one; a rule (a count, a classifier's probability) is another.
 *
 * <p>Thread-safety: up to the implementation; {@link PpoTrainer} calls it from its own thread.
 */
@FunctionalInterface
public interface RewardFunction {

    /**
     * The reward of {@code responses.get(i)} as a continuation of {@code prompts.get(i)}.
     *
     * @param prompts token ids of the prompts
     * @param responses token ids of the responses, one per prompt, none empty
     * @return one finite reward per prompt
     */
    double[] score(List<int[]> prompts, List<int[]> responses);
}
