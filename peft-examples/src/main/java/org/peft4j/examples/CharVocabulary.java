package org.peft4j.examples;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Characters ↔ token ids. Id 0 is the unknown character ({@value #UNKNOWN}); the others are the
 * characters seen at least {@code minCount} times, most frequent first (ties by code point), so
 * the same text always gives the same vocabulary.
 *
 * <p>Thread-safety: immutable.
 */
final class CharVocabulary {

    /** Printed in place of a character outside the vocabulary. */
    static final char UNKNOWN = '\u00bf';

    private final int[] codePoints;
    private final Map<Integer, Integer> idOf;

    private CharVocabulary(int[] codePoints) {
        this.codePoints = codePoints;
        this.idOf = new HashMap<>();
        for (int i = 1; i < codePoints.length; i++) {
            idOf.put(codePoints[i], i);
        }
    }

    /** The characters of {@code texts} seen at least {@code minCount} times, plus the unknown id 0. */
    static CharVocabulary build(Collection<String> texts, int minCount) {
        if (minCount < 1) {
            throw new IllegalArgumentException("minCount must be at least 1; got " + minCount);
        }
        Map<Integer, Integer> counts = new HashMap<>();
        for (String t : texts) {
            t.codePoints().forEach(c -> counts.merge(c, 1, Integer::sum));
        }
        List<Map.Entry<Integer, Integer>> kept = new ArrayList<>();
        for (Map.Entry<Integer, Integer> e : counts.entrySet()) {
            if (e.getValue() >= minCount) {
                kept.add(e);
            }
        }
        kept.sort((a, b) -> a.getValue().equals(b.getValue()) ? Integer.compare(a.getKey(), b.getKey())
                : Integer.compare(b.getValue(), a.getValue()));
        int[] cps = new int[kept.size() + 1];
        cps[0] = UNKNOWN;
        for (int i = 0; i < kept.size(); i++) {
            cps[i + 1] = kept.get(i).getKey();
        }
        return new CharVocabulary(cps);
    }

    /** Number of ids, the unknown id included. */
    int size() {
        return codePoints.length;
    }

    /** The id of one code point (0 if unknown). */
    int id(int codePoint) {
        return idOf.getOrDefault(codePoint, 0);
    }

    /** The ids of {@code text}, one per code point. */
    int[] encode(String text) {
        return text.codePoints().map(this::id).toArray();
    }

    /** The text of {@code ids}. */
    String decode(int[] ids, int from, int to) {
        StringBuilder sb = new StringBuilder();
        for (int i = from; i < to; i++) {
            sb.appendCodePoint(codePoints[ids[i]]);
        }
        return sb.toString();
    }

    /** Every character in id order, for fingerprints. */
    String describe() {
        return new String(codePoints, 0, codePoints.length);
    }
}
