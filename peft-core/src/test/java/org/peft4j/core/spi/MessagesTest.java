package org.peft4j.core.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class MessagesTest {

    @Test
    void shortListsReadLikeListToString() {
        assertEquals("[a, b, c]", Messages.list(List.of("a", "b", "c")));
        assertEquals("[]", Messages.list(List.of()));
        assertEquals("a; b", Messages.join("; ", List.of("a", "b")));
    }

    @Test
    void longListsShowTwentyItemsAndCountTheRest() {
        List<String> names = IntStream.range(0, 500_000).mapToObj(i -> "n" + i).toList();
        String s = Messages.list(names);
        assertTrue(s.startsWith("[n0, n1, n2, "), s);
        assertTrue(s.endsWith(", n19, and 499980 more]"), s);
        assertEquals(21, s.split(", ").length);
    }

    @Test
    void longItemsAreCutAndControlCharactersHidden() {
        String huge = "x".repeat(1_000_000);
        assertEquals("x".repeat(200) + "...(1000000 chars)", Messages.shorten(huge));
        assertEquals("a?b?", Messages.shorten("a\nb\u0000"));
        List<String> sentences = new ArrayList<>(List.of("y".repeat(5000), "short"));
        assertEquals("y".repeat(4000) + "...(5000 chars); short", Messages.joinSentences("; ", sentences));
    }
}
