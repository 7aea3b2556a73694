package org.peft4j.core.rlhf.internal;

import java.util.ArrayList;
import java.util.List;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.rlhf.PreferencePair;

/**
 * Prompts and responses packed into one right-padded batch: row {@code i} holds
 * {@code prompt_i ++ response_i} ({@code length(i)} tokens) followed by padding (id 0, mask 0) up to
 * {@link #time()}, the longest row. On a decoder, output position {@code t} predicts token
 * {@code t + 1}, so response token {@code j} of row {@code i} is predicted at position
 * {@code promptLength(i) − 1 + j}; padding sits after every real token, where causal attention
 * never looks, and the feature mask keeps it out of an encoder's attention and pooling.
 *
 * <p>Thread-safety: immutable.
 */
public final class TokenBatch {

    private final int[][] tokens;
    private final int[] promptLengths;
    private final int time;

    private TokenBatch(int[][] tokens, int[] promptLengths) {
        this.tokens = tokens;
        this.promptLengths = promptLengths;
        int t = 0;
        for (int[] s : tokens) {
            t = Math.max(t, s.length);
        }
        this.time = t;
    }

    /**
     * Packs {@code prompts.get(i) ++ responses.get(i)}, checking every argument against {@code info}.
     *
     * @throws IllegalArgumentException if the lists differ in size or are empty, an element is null,
     *     a response is empty, a prompt is empty on a decoder, a token id is outside the vocabulary,
     *     or a sequence is longer than the context
     */
    public static TokenBatch of(List<int[]> prompts, List<int[]> responses, ModelInfo info) {
        check(prompts, responses, info);
        int n = prompts.size();
        int[][] tokens = new int[n][];
        int[] pl = new int[n];
        for (int i = 0; i < n; i++) {
            int[] p = prompts.get(i);
            int[] r = responses.get(i);
            int[] s = new int[p.length + r.length];
            System.arraycopy(p, 0, s, 0, p.length);
            System.arraycopy(r, 0, s, p.length, r.length);
            tokens[i] = s;
            pl[i] = p.length;
        }
        return new TokenBatch(tokens, pl);
    }

    /** Whole sequences (no response part), as generation extends them; not checked. */
    public static TokenBatch ofSequences(List<int[]> sequences) {
        int[][] t = sequences.toArray(new int[0][]);
        int[] pl = new int[t.length];
        for (int i = 0; i < t.length; i++) {
            pl[i] = t[i].length;
        }
        return new TokenBatch(t, pl);
    }

    /** The argument checks of {@link #of}, without packing. */
    public static void check(List<int[]> prompts, List<int[]> responses, ModelInfo info) {
        if (prompts == null || responses == null) {
            throw new IllegalArgumentException("prompts and responses must not be null");
        }
        if (prompts.size() != responses.size()) {
            throw new IllegalArgumentException(prompts.size() + " prompts but " + responses.size() + " responses: "
                    + "give one response per prompt");
        }
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("no sequences given: prompts and responses are empty");
        }
        for (int i = 0; i < prompts.size(); i++) {
            int[] p = checkIds("prompt " + i, prompts.get(i), info);
            int[] r = checkIds("response " + i, responses.get(i), info);
            if (r.length == 0) {
                throw new IllegalArgumentException("response " + i + " is empty: a log-probability or a reward needs "
                        + "at least one response token");
            }
            checkPrompt("prompt " + i, p, r.length, info);
        }
    }

    /**
     * Prompt and response rows of {@code pairs}: the chosen responses in rows {@code 0..n−1}, the
     * rejected ones in rows {@code n..2n−1}, checked as {@link #of} checks, with the pair named.
     */
    public static TokenBatch ofPairs(List<PreferencePair> pairs, ModelInfo info) {
        if (pairs == null || pairs.isEmpty()) {
            throw new IllegalArgumentException("no preference pairs given");
        }
        int n = pairs.size();
        List<int[]> prompts = new ArrayList<>(2 * n);
        List<int[]> responses = new ArrayList<>(2 * n);
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < n; i++) {
                PreferencePair p = pairs.get(i);
                if (p == null) {
                    throw new IllegalArgumentException("pair " + i + " is null");
                }
                int[] prompt = checkIds("the prompt of pair " + i, p.prompt(), info);
                int[] r = checkIds("the " + (pass == 0 ? "chosen" : "rejected") + " response of pair " + i,
                        pass == 0 ? p.chosen() : p.rejected(), info);
                checkPrompt("pair " + i + " (" + (pass == 0 ? "chosen" : "rejected") + ")", prompt, r.length, info);
                prompts.add(prompt);
                responses.add(r);
            }
        }
        return of(prompts, responses, info);
    }

    /**
     * Checks a prompt for a response of {@code responseLength} tokens: not empty on a decoder, and
     * short enough for the context; {@code what} names it in the message.
     */
    public static void checkPrompt(String what, int[] promptIds, int responseLength, ModelInfo info) {
        if (promptIds.length == 0 && info.isDecoder()) {
            throw new IllegalArgumentException(what + ": the prompt is empty, but a decoder predicts each response "
                    + "token from the tokens before it, so the first one needs at least one prompt token (start "
                    + "prompts with a beginning-of-text token)");
        }
        long len = (long) promptIds.length + responseLength;
        if (len > info.maxLength()) {
            throw new IllegalArgumentException(what + ": " + len + " tokens (prompt " + promptIds.length
                    + " + response " + responseLength + ") are more than the model's context of " + info.maxLength()
                    + " tokens; shorten the prompt or the response");
        }
    }

    /** Checks that {@code ids} is not null and every id is in the vocabulary; returns it. */
    public static int[] checkIds(String what, int[] ids, ModelInfo info) {
        if (ids == null) {
            throw new IllegalArgumentException(what + " is null");
        }
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] < 0 || (info.vocab() > 0 && ids[t] >= info.vocab())) {
                throw new IllegalArgumentException(what + " holds token id " + ids[t] + " at position " + t
                        + "; ids must be in [0, " + (info.vocab() > 0 ? info.vocab() : "vocab") + ")");
            }
        }
        return ids;
    }

    /** The rows {@code rows} of this batch, in that order. */
    public TokenBatch select(int[] rows) {
        int[][] t = new int[rows.length][];
        int[] pl = new int[rows.length];
        for (int i = 0; i < rows.length; i++) {
            t[i] = tokens[rows[i]];
            pl[i] = promptLengths[rows[i]];
        }
        return new TokenBatch(t, pl);
    }

    /** Number of rows. */
    public int size() {
        return tokens.length;
    }

    /** Length of the longest row: the time dimension of {@link #ids}. */
    public int time() {
        return time;
    }

    /** Real tokens in row {@code i}. */
    public int length(int i) {
        return tokens[i].length;
    }

    /** Prompt tokens in row {@code i}. */
    public int promptLength(int i) {
        return promptLengths[i];
    }

    /** Response tokens in row {@code i}. */
    public int responseLength(int i) {
        return tokens[i].length - promptLengths[i];
    }

    /** Token {@code t} of row {@code i}. */
    public int token(int i, int t) {
        return tokens[i][t];
    }

    /** The token ids {@code [size, time]} as values of {@code dt}, padding 0. */
    public INDArray ids(DataType dt) {
        double[] v = new double[tokens.length * time];
        for (int i = 0; i < tokens.length; i++) {
            for (int t = 0; t < tokens[i].length; t++) {
                v[i * time + t] = tokens[i][t];
            }
        }
        return Nd4j.create(v, new long[] {tokens.length, time}, 'c').castTo(dt);
    }

    /** The feature mask {@code [size, time]}: 1 on real tokens, 0 on padding. */
    public INDArray mask(DataType dt) {
        double[] v = new double[tokens.length * time];
        for (int i = 0; i < tokens.length; i++) {
            for (int t = 0; t < tokens[i].length; t++) {
                v[i * time + t] = 1;
            }
        }
        return Nd4j.create(v, new long[] {tokens.length, time}, 'c').castTo(dt);
    }
}
