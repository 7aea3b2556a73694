package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Files are data, not code: the IO package must never use Java object deserialization. */
class NoJavaDeserializationTest {

    private static final List<String> FORBIDDEN = List.of("ObjectInputStream", "readObject",
            "readUnshared", "XMLDecoder", "enableDefaultTyping", "activateDefaultTyping",
            "JsonTypeInfo");

    @Test
    void ioSourcesNeverTouchObjectDeserialization() throws IOException {
        Path src = Path.of("src/main/java/org/peft4j/core/io");
        List<Path> files;
        try (Stream<Path> s = Files.list(src)) {
            files = s.filter(p -> p.toString().endsWith(".java")).toList();
        }
        assertFalse(files.isEmpty(), "no sources found under " + src.toAbsolutePath());
        for (Path f : files) {
            String text = Files.readString(f);
            for (String word : FORBIDDEN) {
                assertEquals(-1, text.indexOf(word), f + " mentions " + word);
            }
        }
    }
}
