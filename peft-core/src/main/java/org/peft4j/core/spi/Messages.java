package org.peft4j.core.spi;

import java.util.Collection;
import java.util.Iterator;

/**
 * Bounded text for exception messages built from file contents. A file can name millions of
 * tensors or layers, and one name can be megabytes long; a message that lists them all costs
 * memory and buries the problem. Every list of names taken from a file goes through
 * {@link #list} or {@link #join}: at most {@value #MAX_ITEMS} items, each at most
 * {@value #MAX_ITEM_CHARS} characters, then "and K more".
 *
 * <p>Thread-safety: stateless.
 */
public final class Messages {

    /** Items a message lists before it says how many more there are. */
    public static final int MAX_ITEMS = 20;
    /** Characters of one item shown; longer items end in "...". */
    public static final int MAX_ITEM_CHARS = 200;
    /** Characters of a whole value (a config's target list, a factory's message) quoted in a message. */
    public static final int MAX_VALUE_CHARS = 1000;
    /** Characters of one sentence of {@link #joinSentences} shown. */
    public static final int MAX_SENTENCE_CHARS = 4000;

    private Messages() {
    }

    /**
     * {@code [a, b, c]} for up to {@value #MAX_ITEMS} items, else {@code [a, b, ..., and 12 more]}
     * (the shape of {@code List.toString()}, so callers can use it in its place).
     */
    public static String list(Collection<?> items) {
        return "[" + join(", ", items) + "]";
    }

    /**
     * The items joined with {@code separator}, at most {@value #MAX_ITEMS} of them, each shortened
     * by {@link #shorten}; when there are more, the text ends with
     * {@code separator + "and K more"}.
     */
    public static String join(String separator, Collection<?> items) {
        return join(separator, items, MAX_ITEM_CHARS);
    }

    /**
     * Sentences (problems found, each already built from bounded parts) joined with
     * {@code separator}: as {@link #join}, each sentence shortened to
     * {@value #MAX_SENTENCE_CHARS} characters.
     */
    public static String joinSentences(String separator, Collection<?> sentences) {
        return join(separator, sentences, MAX_SENTENCE_CHARS);
    }

    private static String join(String separator, Collection<?> items, int maxChars) {
        StringBuilder b = new StringBuilder();
        Iterator<?> it = items.iterator();
        int shown = 0;
        while (it.hasNext() && shown < MAX_ITEMS) {
            if (shown > 0) {
                b.append(separator);
            }
            b.append(shorten(it.next(), maxChars));
            shown++;
        }
        int more = items.size() - shown;
        if (more > 0) {
            b.append(separator).append("and ").append(more).append(" more");
        }
        return b.toString();
    }

    /**
     * {@code String.valueOf(item)}, cut to {@value #MAX_ITEM_CHARS} characters followed by
     * {@code "...(N chars)"} when longer, with control characters shown as {@code ?}.
     */
    public static String shorten(Object item) {
        return shorten(item, MAX_ITEM_CHARS);
    }

    /** As {@link #shorten(Object)}, cut to {@code maxChars} characters. */
    public static String shorten(Object item, int maxChars) {
        String s = String.valueOf(item);
        int limit = Math.min(s.length(), maxChars);
        StringBuilder b = new StringBuilder(limit + 16);
        for (int i = 0; i < limit; i++) {
            char c = s.charAt(i);
            b.append(Character.isISOControl(c) ? '?' : c);
        }
        if (s.length() > maxChars) {
            b.append("...(").append(s.length()).append(" chars)");
        }
        return b.toString();
    }
}
