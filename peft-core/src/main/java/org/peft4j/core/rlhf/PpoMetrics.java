package org.peft4j.core.rlhf;

/**
 * One PPO iteration: the rollout's statistics (under the policy that sampled it) and the averages
 * over its minibatch updates. TRL's names in parentheses.
 *
 * <p>Thread-safety: immutable.
 *
 * @param meanScore mean reward-function score of the responses (objective/scores)
 * @param meanKl mean over responses of {@code Σ_t (log π − log π_ref)}, nats per response (objective/kl)
 * @param meanEntropy mean entropy of the sampling distribution per response token, nats (policy/entropy_avg)
 * @param klCoefficient the {@code β} this rollout was penalized with
 * @param meanNonScoreReward mean over responses of {@code −β·Σ_t (log π − log π_ref)} (objective/non_score_reward)
 * @param policyLoss mean clipped policy loss over the updates (loss/policy_avg)
 * @param valueLoss mean clipped value loss over the updates (loss/value_avg)
 * @param clipFraction share of tokens whose policy ratio was clipped (policy/clipfrac_avg)
 * @param valueClipFraction share of tokens whose value was clipped (val/clipfrac_avg)
 * @param approxKl mean of {@code ½(log π_new − log π_old)²} over the updates (policy/approxkl_avg)
 * @param meanResponseLength mean response length in tokens
 */
public record PpoMetrics(double meanScore, double meanKl, double meanEntropy, double klCoefficient,
                         double meanNonScoreReward, double policyLoss, double valueLoss, double clipFraction,
                         double valueClipFraction, double approxKl, double meanResponseLength) {
}
