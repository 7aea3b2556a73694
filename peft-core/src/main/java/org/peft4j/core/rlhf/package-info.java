/**
 * Learning from preferences on adapters: sequence log-probabilities and sampling
 * ({@link org.peft4j.core.rlhf.Sequences}), a reward model trained with the Bradley–Terry loss
 * ({@link org.peft4j.core.rlhf.ScoreHead}, {@link org.peft4j.core.rlhf.RewardTrainer},
 * {@link org.peft4j.core.rlhf.RewardModel}), direct preference optimization
 * ({@link org.peft4j.core.rlhf.DpoTrainer}) and PPO against a reward with a KL penalty
 * ({@link org.peft4j.core.rlhf.PpoTrainer}).
 *
 * <p>The reference model of DPO and PPO is the wrapped model inside
 * {@link org.peft4j.core.PeftModel#disableAdapter()}: the frozen base weights, no second copy. A
 * reward model can be another adapter of the same {@link org.peft4j.core.PeftModel}. Every
 * objective is computed in Java from an inference pass (double precision) and its gradient with
 * respect to the output layers' pre-activations is backpropagated through the graph's own layers by
 * one {@code ComputationGraph.fit}, so the graph's updater, listeners and invariants (frozen base,
 * optimizer state for trainable parameters only) apply unchanged. Any tuner whose
 * {@code disableAdapter()} gives the base model works: LoRA, QLoRA, IA3, bottleneck adapters.
 */
package org.peft4j.core.rlhf;
