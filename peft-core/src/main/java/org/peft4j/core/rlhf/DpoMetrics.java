package org.peft4j.core.rlhf;

/**
 * DPO's loss and implicit rewards {@code β·(log π(y|x) − log π_ref(y|x))} on a batch of pairs, with
 * TRL's names in the comments; computed before the update when it comes from {@link DpoTrainer#step}.
 *
 * <p>Thread-safety: immutable.
 *
 * @param loss the DPO loss
 * @param rewardsChosen mean implicit reward of the chosen responses ({@code rewards/chosen})
 * @param rewardsRejected mean implicit reward of the rejected responses ({@code rewards/rejected})
 * @param rewardAccuracy share of pairs whose chosen reward is higher ({@code rewards/accuracies})
 * @param rewardMargin mean of chosen minus rejected reward ({@code rewards/margins})
 */
public record DpoMetrics(double loss, double rewardsChosen, double rewardsRejected, double rewardAccuracy,
                         double rewardMargin) {
}
