package org.peft4j.core.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

/**
 * Finds the {@code ```java} blocks of {@code README.md} and {@code docs/**.md} and compiles them
 * against the test class path of the module that runs the test, under {@code -Xlint:all}, so the
 * code a user copies is the API as it is.
 *
 * <p>Which module compiles a page: {@value #DEFAULT_MODULE}, unless the page's first line is
 * {@code <!-- java blocks compiled by: MODULE -->}. A page names another module when its blocks
 * need that module's dependencies (Spark for {@code peft-spark}), which the examples must not
 * carry. Each module with such pages runs {@link #pagesCompiledBy} for its own name, so every page
 * is compiled exactly once.
 *
 * <p>Thread-safety: stateless; safe from any thread.
 */
public final class DocSnippets {

    /** The module that compiles the pages naming no module: it has every library module on its class path. */
    public static final String DEFAULT_MODULE = "peft-examples";

    /** A fenced block: where it starts in its page (1-based line of the fence), and its text without the common indentation. */
    public record Snippet(Path page, int firstLine, String code) {
    }

    private static final Pattern OPEN = Pattern.compile("^(\\s*)```java\\s*$");
    private static final Pattern CLOSE = Pattern.compile("^\\s*```\\s*$");
    private static final Pattern MARKER = Pattern.compile("^<!-- java blocks compiled by: ([a-z0-9-]+) -->$");
    private static final String MARKER_START = "<!-- java blocks compiled by";

    private DocSnippets() {
    }

    /** The directory holding README.md, docs/, .mvn/ and the reactor's pom, found upwards from the working directory. */
    public static Path repositoryRoot() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("README.md")) && Files.isDirectory(p.resolve(".mvn"))) {
                return p;
            }
        }
        throw new IllegalStateException("no README.md with .mvn/ beside it above " + Path.of("").toAbsolutePath());
    }

    /** README.md, then every .md under docs/ (any depth), in name order. */
    public static List<Path> pages(Path root) throws IOException {
        List<Path> pages = new ArrayList<>(List.of(root.resolve("README.md")));
        Path docs = root.resolve("docs");
        if (Files.isDirectory(docs)) {
            try (Stream<Path> all = Files.walk(docs)) {
                all.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
            }
        }
        return pages;
    }

    /**
     * The pages of {@link #pages} whose java blocks {@code module} compiles.
     *
     * @throws IllegalArgumentException if a page names a module that is not a directory with a
     *     pom.xml under {@code root} (its blocks would be compiled by no one), or carries a
     *     malformed marker
     */
    public static List<Path> pagesCompiledBy(Path root, String module) throws IOException {
        List<Path> mine = new ArrayList<>();
        for (Path page : pages(root)) {
            String by = compilingModule(page).orElse(DEFAULT_MODULE);
            if (!Files.isRegularFile(root.resolve(by).resolve("pom.xml"))) {
                throw new IllegalArgumentException(root.relativize(page) + ":1: names module '" + by
                        + "', which is not a module of " + root + "; name an existing module directory");
            }
            if (by.equals(module)) {
                mine.add(page);
            }
        }
        return mine;
    }

    /**
     * The module named by the page's first line, {@code <!-- java blocks compiled by: MODULE -->}, if any.
     *
     * @throws IllegalArgumentException if the first line starts like the marker but does not match it,
     *     or the marker appears on another line (it would be silently ignored there)
     */
    public static Optional<String> compilingModule(Path page) {
        List<String> lines = read(page);
        for (int i = 1; i < lines.size(); i++) {
            if (lines.get(i).strip().startsWith(MARKER_START)) {
                throw new IllegalArgumentException(page + ":" + (i + 1) + ": the '" + MARKER_START
                        + ": MODULE -->' marker must be the page's first line");
            }
        }
        if (lines.isEmpty() || !lines.get(0).startsWith(MARKER_START)) {
            return Optional.empty();
        }
        Matcher m = MARKER.matcher(lines.get(0));
        if (!m.matches()) {
            throw new IllegalArgumentException(page + ":1: malformed marker '" + lines.get(0)
                    + "'; expected exactly '" + MARKER_START + ": MODULE -->' with a module directory name");
        }
        return Optional.of(m.group(1));
    }

    /** The {@code ```java} blocks of the page, in order. */
    public static List<Snippet> snippets(Path page) {
        List<String> lines = read(page);
        List<Snippet> out = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            Matcher m = OPEN.matcher(lines.get(i));
            if (!m.matches()) {
                continue;
            }
            int indent = m.group(1).length();
            int start = i;
            StringBuilder code = new StringBuilder();
            for (i++; i < lines.size() && !CLOSE.matcher(lines.get(i)).matches(); i++) {
                String l = lines.get(i);
                int cut = 0;
                while (cut < indent && cut < l.length() && l.charAt(cut) == ' ') {
                    cut++;
                }
                code.append(l.substring(cut)).append('\n');
            }
            if (i == lines.size()) {
                throw new IllegalStateException(page + ":" + (start + 1) + ": ```java block is never closed");
            }
            out.add(new Snippet(page, start + 1, code.toString()));
        }
        return out;
    }

    /** The blocks of every page, in page order. */
    public static List<Snippet> snippets(List<Path> pages) {
        List<Snippet> all = new ArrayList<>();
        for (Path p : pages) {
            all.addAll(snippets(p));
        }
        return all;
    }

    /**
     * Compiles every snippet against this JVM's test class path, each into a package of its own
     * (declared on its first line, so line numbers stay those of the page) unless it declares one;
     * returns one line per error or warning, {@code page:line: message | source line}, the page
     * relative to {@code root}.
     *
     * @throws IllegalStateException if this JVM has no compiler (a JRE)
     */
    public static List<String> compile(List<Snippet> snippets, Path root, Path out) throws IOException {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            throw new IllegalStateException("the tests need a JDK, not a JRE, to compile the documentation's java blocks");
        }
        Path src = Files.createDirectories(out.resolve("src"));
        Path classes = Files.createDirectories(out.resolve("classes"));
        List<Path> files = new ArrayList<>();
        for (int i = 0; i < snippets.size(); i++) {
            Snippet s = snippets.get(i);
            String pkg = "docsnippet" + i;
            boolean ownPackage = s.code().lines().anyMatch(l -> l.startsWith("package "));
            Path dir = Files.createDirectories(src.resolve(pkg));
            Path file = dir.resolve(publicTypeName(s.code()) + ".java");
            files.add(Files.writeString(file, ownPackage ? s.code() : "package " + pkg + "; " + s.code()));
        }
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        try (StandardJavaFileManager fm = javac.getStandardFileManager(diagnostics, Locale.ROOT, StandardCharsets.UTF_8)) {
            javac.getTask(null, fm, diagnostics, List.of("-proc:none", "-Xlint:all", "-classpath", classpath,
                    "-d", classes.toString()), null, fm.getJavaFileObjectsFromPaths(files)).call();
        }
        List<String> problems = new ArrayList<>();
        for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
            if (d.getKind() == Diagnostic.Kind.NOTE || d.getKind() == Diagnostic.Kind.OTHER) {
                continue;
            }
            if (d.getSource() == null) {
                problems.add("javac: " + d.getMessage(Locale.ROOT));
                continue;
            }
            Snippet s = snippets.get(files.indexOf(Path.of(d.getSource().toUri())));
            int inBlock = (int) d.getLineNumber();
            String line = inBlock >= 1 ? s.code().lines().skip(inBlock - 1L).findFirst().orElse("").strip() : "";
            problems.add(root.relativize(s.page().toAbsolutePath()) + ":" + (s.firstLine() + inBlock) + ": "
                    + d.getMessage(Locale.ROOT).lines().findFirst().orElse("") + " | " + line);
        }
        return problems;
    }

    /** The name a source file must have: its public top-level type's, else its first type's. */
    private static String publicTypeName(String code) {
        Matcher pub = Pattern.compile("(?m)^public\\s+(?:final\\s+|abstract\\s+)*(?:class|interface|record|enum)\\s+(\\w+)")
                .matcher(code);
        if (pub.find()) {
            return pub.group(1);
        }
        Matcher any = Pattern.compile("(?m)^(?:final\\s+|abstract\\s+)*(?:class|interface|record|enum)\\s+(\\w+)")
                .matcher(code);
        return any.find() ? any.group(1) : "Snippet";
    }

    private static List<String> read(Path page) {
        try {
            return Files.readAllLines(page, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
