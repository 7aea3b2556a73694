package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code ```java} block of {@code README.md} and of every {@code docs/**.md} compiles
 * against the project, without a warning under {@code -Xlint:all}: the code a user copies is the
 * API as it is. Pages added under {@code docs/} are picked up without touching this test. Each
 * block is one source file (its imports and a class); a failure names the page and line.
 */
class DocSnippetsTest {

    /** A fenced block: where it starts in its page, and its text without the common indentation. */
    record Snippet(Path page, int firstLine, String code) {
    }

    private static final Pattern OPEN = Pattern.compile("^(\\s*)```java\\s*$");
    private static final Pattern CLOSE = Pattern.compile("^\\s*```\\s*$");

    @Test
    void everyJavaBlockOfTheReadmeAndDocsCompilesWithoutWarnings(@TempDir Path tmp) throws IOException {
        Path root = repositoryRoot();
        List<Path> pages = pages(root);
        List<Snippet> snippets = new ArrayList<>();
        for (Path p : pages) {
            snippets.addAll(snippets(p));
        }
        assertTrue(snippets.stream().anyMatch(s -> s.page().getFileName().toString().equals("README.md")
                && s.code().contains("Peft.wrap(")), "the README's Quickstart was found: " + snippets);
        List<String> problems = compile(snippets, root, tmp);
        if (!problems.isEmpty()) {
            fail(problems.size() + " problem(s) in the java blocks of the documentation (a block is compiled as one "
                    + "source file: give it its imports and a class):\n" + String.join("\n", problems));
        }
    }

    @Test
    void aBlockThatDoesNotCompileIsReportedWithItsPageAndLine(@TempDir Path tmp) throws IOException {
        Path page = Files.writeString(tmp.resolve("page.md"), String.join("\n",
                "# A page",
                "",
                "  ```java",
                "  import org.peft4j.core.Peft;",
                "",
                "  class Broken {",
                "      Object m() { return Peft.noSuchMethod(); }",
                "  }",
                "  ```",
                ""));
        List<Snippet> found = snippets(page);
        assertEquals(1, found.size());
        assertEquals(3, found.get(0).firstLine());
        List<String> problems = compile(found, tmp, Files.createDirectory(tmp.resolve("out")));
        assertEquals(1, problems.size(), problems.toString());
        assertTrue(problems.get(0).startsWith("page.md:7: cannot find symbol"), problems.get(0));
        assertTrue(problems.get(0).contains("Peft.noSuchMethod()"), "the offending line is quoted: " + problems.get(0));
    }

    /** The directory holding README.md, docs/ and the reactor's pom, found upwards from the working directory. */
    private static Path repositoryRoot() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("README.md")) && Files.isRegularFile(p.resolve("mvnw"))) {
                return p;
            }
        }
        throw new IllegalStateException("no README.md with mvnw beside it above " + Path.of("").toAbsolutePath());
    }

    /** README.md, then every .md under docs/ (any depth), in name order. */
    private static List<Path> pages(Path root) throws IOException {
        List<Path> pages = new ArrayList<>(List.of(root.resolve("README.md")));
        Path docs = root.resolve("docs");
        if (Files.isDirectory(docs)) {
            try (Stream<Path> all = Files.walk(docs)) {
                all.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
            }
        }
        return pages;
    }

    static List<Snippet> snippets(Path page) {
        List<String> lines;
        try {
            lines = Files.readAllLines(page, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
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

    /**
     * Compiles every snippet, each into a package of its own (declared on its first line, so line
     * numbers stay those of the page) unless it declares one; returns one line per error or
     * warning, {@code page:line: message | source line}.
     */
    static List<String> compile(List<Snippet> snippets, Path root, Path out) throws IOException {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertNotNull(javac, "the tests need a JDK, not a JRE, to compile the documentation's java blocks");
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
}
