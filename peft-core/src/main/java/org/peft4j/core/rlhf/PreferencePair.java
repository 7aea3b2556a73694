package org.peft4j.core.rlhf;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One preference: for {@code prompt}, the response {@code chosen} is preferred to {@code rejected}.
 * All three are token ids; the responses must not be empty, and on a decoder the prompt must not
 * be empty either (checked where a model is at hand, with the context length and vocabulary).
 *
 * <p>Thread-safety: immutable (arrays are copied in and out).
 *
 * @param prompt the prompt's token ids
 * @param chosen the preferred response's token ids
 * @param rejected the other response's token ids
 */
public record PreferencePair(int[] prompt, int[] chosen, int[] rejected) {

    /**
     * @throws IllegalArgumentException if an array is null or a response is empty
     */
    public PreferencePair {
        if (prompt == null || chosen == null || rejected == null) {
            throw new IllegalArgumentException("prompt, chosen and rejected must not be null");
        }
        if (chosen.length == 0 || rejected.length == 0) {
            throw new IllegalArgumentException("the " + (chosen.length == 0 ? "chosen" : "rejected") + " response is "
                    + "empty: a preference compares two responses of at least one token each");
        }
        prompt = prompt.clone();
        chosen = chosen.clone();
        rejected = rejected.clone();
    }

    /**
     * The pairs {@code (prompts[i], chosen[i], rejected[i])}.
     *
     * @throws IllegalArgumentException if the lists differ in size, or a pair is invalid (its index
     *     is named)
     */
    public static List<PreferencePair> zip(List<int[]> prompts, List<int[]> chosen, List<int[]> rejected) {
        if (prompts.size() != chosen.size() || prompts.size() != rejected.size()) {
            throw new IllegalArgumentException("mismatched pair counts: " + prompts.size() + " prompts, "
                    + chosen.size() + " chosen and " + rejected.size() + " rejected responses; give one of each "
                    + "per pair");
        }
        List<PreferencePair> out = new ArrayList<>(prompts.size());
        for (int i = 0; i < prompts.size(); i++) {
            try {
                out.add(new PreferencePair(prompts.get(i), chosen.get(i), rejected.get(i)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("pair " + i + ": " + e.getMessage(), e);
            }
        }
        return out;
    }

    @Override
    public int[] prompt() {
        return prompt.clone();
    }

    @Override
    public int[] chosen() {
        return chosen.clone();
    }

    @Override
    public int[] rejected() {
        return rejected.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PreferencePair p && Arrays.equals(prompt, p.prompt) && Arrays.equals(chosen, p.chosen)
                && Arrays.equals(rejected, p.rejected);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Arrays.hashCode(prompt) + Arrays.hashCode(chosen)) + Arrays.hashCode(rejected);
    }

    @Override
    public String toString() {
        return "PreferencePair(prompt=" + Arrays.toString(prompt) + ", chosen=" + Arrays.toString(chosen)
                + ", rejected=" + Arrays.toString(rejected) + ")";
    }
}
