package org.peft4j.core.rlhf;

import org.peft4j.core.blocks.Transformers;

/**
 * Which outputs of a graph the preference methods read, and the longest token sequence it takes.
 *
 * <ul>
 *   <li>{@code languageModel}: the next-token head, an output layer with a softmax over the
 *       vocabulary {@code [batch, vocab, time]} whose position {@code t} predicts token {@code t + 1}
 *       ({@link Transformers#OUTPUT} of peft4j's decoder). Needed by {@link Sequences},
 *       {@link DpoTrainer} and {@link PpoTrainer}.</li>
 *   <li>{@code score}: the scalar head {@link ScoreHead} adds, {@code [batch, 1, time]} on a decoder
 *       (one value per position; a sequence's reward is the value at its last token) or
 *       {@code [batch, 1]} on an encoder (pooled). Needed by {@link RewardTrainer},
 *       {@link RewardModel} and, as the value head, by {@link PpoTrainer}.</li>
 *   <li>{@code maxLength}: the context, the most tokens (prompt plus response) a sequence may have;
 *       0 reads it from the graph's {@link org.peft4j.core.blocks.PositionalEmbedding}.</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 *
 * @param languageModel name of the next-token output
 * @param score name of the scalar output
 * @param maxLength the context length, or 0 to read it from the graph
 */
public record Heads(String languageModel, String score, int maxLength) {

    /** peft4j's names: {@code head} and {@code score}; the context read from the graph. */
    public static final Heads DEFAULT = new Heads(Transformers.OUTPUT, ScoreHead.NAME, 0);

    /**
     * @throws IllegalArgumentException if a name is null or blank, the two names are equal, or
     *     {@code maxLength} is negative
     */
    public Heads {
        if (languageModel == null || languageModel.isBlank()) {
            throw new IllegalArgumentException("languageModel output name must not be null or blank; got \""
                    + languageModel + "\"");
        }
        if (score == null || score.isBlank()) {
            throw new IllegalArgumentException("score output name must not be null or blank; got \"" + score + "\"");
        }
        if (languageModel.equals(score)) {
            throw new IllegalArgumentException("languageModel and score must name different outputs; both are \""
                    + score + "\"");
        }
        if (maxLength < 0) {
            throw new IllegalArgumentException("maxLength must be positive, or 0 to read it from the graph; got "
                    + maxLength);
        }
    }

    /** These output names with the context length {@code maxLength} (positive) instead of the graph's. */
    public Heads withMaxLength(int maxLength) {
        if (maxLength <= 0) {
            throw new IllegalArgumentException("maxLength must be positive; got " + maxLength);
        }
        return new Heads(languageModel, score, maxLength);
    }
}
