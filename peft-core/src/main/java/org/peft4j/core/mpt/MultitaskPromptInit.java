package org.peft4j.core.mpt;

/**
 * How multitask prompt tuning starts, as Hugging Face PEFT's {@code MultitaskPromptTuningInit}
 * ({@code prompt_tuning_init}). {@code P*} is the shared prompt {@code [p, d]}, {@code u_k [p, r]}
 * and {@code v_k [r, d]} the factors of task {@code k}; "source" is the adapter file of a model
 * trained on several source tasks ({@code adapter_model.safetensors}, tensors
 * {@code prompt_embeddings [p, d]}, {@code prefix_task_cols [S, p, r]},
 * {@code prefix_task_rows [S, r, d]}).
 *
 * <ul>
 *   <li>{@link #RANDOM}: {@code P*} normal with the standard deviation of the base model's token
 *       embedding table (as peft4j's prompt tuning); every {@code u_k}, {@code v_k} normal with
 *       standard deviation 0.02 (PEFT's).</li>
 *   <li>{@link #TEXT}: {@code P*} the base embedding rows of given token ids, repeated to fill
 *       {@code p}; factors as RANDOM.</li>
 *   <li>{@link #AVERAGE_SOURCE_TASKS}: {@code P*} the source's; {@code u, v} the mean of the source
 *       tasks' factors ({@code mean_k u_k}, {@code mean_k v_k}). The target has one task.</li>
 *   <li>{@link #EXACT_SOURCE_TASK}: {@code P*} the source's; {@code u, v} those of one source task.
 *       The target has one task.</li>
 *   <li>{@link #ONLY_SOURCE_SHARED}: {@code P*} the source's; factors as RANDOM.</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public enum MultitaskPromptInit {
    RANDOM,
    TEXT,
    AVERAGE_SOURCE_TASKS,
    EXACT_SOURCE_TASK,
    ONLY_SOURCE_SHARED;

    /** Whether this init reads a source adapter file. */
    public boolean readsSource() {
        return this == AVERAGE_SOURCE_TASKS || this == EXACT_SOURCE_TASK || this == ONLY_SOURCE_SHARED;
    }
}
