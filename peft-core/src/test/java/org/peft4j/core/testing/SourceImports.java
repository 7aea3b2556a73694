package org.peft4j.core.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Reads the import lines of a module's sources, for the tests that keep modules off each other's
 * {@code .internal} packages (DESIGN: modules use each other through public API and core's
 * {@code spi}).
 */
public final class SourceImports {

    private static final Pattern IMPORT = Pattern.compile("^import\\s+(?:static\\s+)?([\\w.]+)", Pattern.MULTILINE);
    private static final Pattern QUALIFIED_USE = Pattern.compile("\\b(org\\.peft4j\\.core\\.internal\\.\\w+)");

    private SourceImports() {
    }

    /**
     * Every import of a package under {@code forbidden} (and every fully qualified use of
     * {@code org.peft4j.core.internal} when that is the package) in the Java files under
     * {@code sourceRoot}, as {@code file: name}.
     *
     * @throws IllegalStateException if {@code sourceRoot} holds no Java file (a wrong path would
     *     otherwise pass unnoticed)
     */
    public static List<String> usesOf(Path sourceRoot, String forbidden) throws IOException {
        List<String> found = new ArrayList<>();
        List<Path> files;
        try (Stream<Path> s = Files.walk(sourceRoot)) {
            files = s.filter(p -> p.toString().endsWith(".java")).sorted().toList();
        }
        if (files.isEmpty()) {
            throw new IllegalStateException("no Java sources under " + sourceRoot.toAbsolutePath());
        }
        for (Path f : files) {
            String text = Files.readString(f);
            Matcher m = IMPORT.matcher(text);
            while (m.find()) {
                if (m.group(1).startsWith(forbidden + ".")) {
                    found.add(sourceRoot.relativize(f) + ": " + m.group(1));
                }
            }
            Matcher q = QUALIFIED_USE.matcher(text);
            while (q.find()) {
                if (q.group(1).startsWith(forbidden + ".") && !found.contains(sourceRoot.relativize(f) + ": " + q.group(1))) {
                    found.add(sourceRoot.relativize(f) + ": " + q.group(1));
                }
            }
        }
        return found;
    }
}
