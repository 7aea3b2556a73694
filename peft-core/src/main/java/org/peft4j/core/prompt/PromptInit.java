package org.peft4j.core.prompt;

/**
 * How the virtual-token embeddings of prompt tuning start, as Hugging Face PEFT's
 * {@code prompt_tuning_init}.
 *
 * <ul>
 *   <li>{@link #RANDOM}: normal with the standard deviation of the base model's token embedding
 *       table (so the prompt starts at the scale of real tokens).</li>
 *   <li>{@link #TEXT}: copies of the base model's embedding rows of given token ids (repeated to
 *       fill {@code p}, as PEFT does with the tokenized init text).</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public enum PromptInit {
    RANDOM,
    TEXT
}
