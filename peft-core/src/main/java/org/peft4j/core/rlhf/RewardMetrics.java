package org.peft4j.core.rlhf;

/**
 * What a reward model does on a batch of preference pairs, computed before the update when it
 * comes from {@link RewardTrainer#step} (as TRL reports it).
 *
 * <p>Thread-safety: immutable.
 *
 * @param loss the Bradley–Terry loss {@code mean[−log σ(r_c − r_r)]} (plus the centring term when configured)
 * @param accuracy share of pairs with {@code r_c > r_r}
 * @param margin mean of {@code r_c − r_r}
 * @param meanChosen mean reward of the chosen responses
 * @param meanRejected mean reward of the rejected responses
 */
public record RewardMetrics(double loss, double accuracy, double margin, double meanChosen, double meanRejected) {
}
