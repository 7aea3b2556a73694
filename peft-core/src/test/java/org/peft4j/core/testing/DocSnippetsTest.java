package org.peft4j.core.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.core.testing.DocSnippets.Snippet;

/** The documentation compiler the modules' doc tests share: block extraction, error reports, which module compiles a page. */
class DocSnippetsTest {

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
        List<Snippet> found = DocSnippets.snippets(page);
        assertEquals(1, found.size());
        assertEquals(3, found.get(0).firstLine());
        List<String> problems = DocSnippets.compile(found, tmp, Files.createDirectory(tmp.resolve("out")));
        assertEquals(1, problems.size(), problems.toString());
        assertTrue(problems.get(0).startsWith("page.md:7: cannot find symbol"), problems.get(0));
        assertTrue(problems.get(0).contains("Peft.noSuchMethod()"), "the offending line is quoted: " + problems.get(0));
    }

    @Test
    void aCompleteBlockCompilesWithoutAProblemAndAWarningIsOne(@TempDir Path tmp) throws IOException {
        Path page = Files.writeString(tmp.resolve("page.md"), String.join("\n",
                "```java",
                "import java.util.ArrayList;",
                "import java.util.List;",
                "",
                "class Fine {",
                "    static List<String> names() { return new ArrayList<>(); }",
                "}",
                "```",
                "```java",
                "import java.util.ArrayList;",
                "",
                "class Raw {",
                "    static Object raw() { return new ArrayList(); }",
                "}",
                "```",
                ""));
        List<Snippet> found = DocSnippets.snippets(page);
        assertEquals(2, found.size());
        List<String> problems = DocSnippets.compile(found, tmp, Files.createDirectory(tmp.resolve("out")));
        assertEquals(1, problems.size(), "only the raw type is reported (-Xlint:all): " + problems);
        assertTrue(problems.get(0).startsWith("page.md:13: "), problems.get(0));
    }

    @Test
    void pagesGoToTheModuleTheirFirstLineNamesElseToTheExamples(@TempDir Path root) throws IOException {
        Path readme = repository(root);
        Path spark = Files.writeString(root.resolve("docs/spark.md"),
                "<!-- java blocks compiled by: peft-spark -->\n# Spark\n");
        Path plain = Files.writeString(root.resolve("docs/plain.md"), "# Plain\n");

        assertEquals(Optional.of("peft-spark"), DocSnippets.compilingModule(spark));
        assertEquals(Optional.empty(), DocSnippets.compilingModule(plain));
        assertEquals(List.of(readme, plain), DocSnippets.pagesCompiledBy(root, DocSnippets.DEFAULT_MODULE));
        assertEquals(List.of(spark), DocSnippets.pagesCompiledBy(root, "peft-spark"));
    }

    @Test
    void aPageNamingNoModuleOfTheRepositoryIsRefused(@TempDir Path root) throws IOException {
        repository(root);
        Files.writeString(root.resolve("docs/typo.md"), "<!-- java blocks compiled by: peft-sprak -->\n");

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DocSnippets.pagesCompiledBy(root, DocSnippets.DEFAULT_MODULE));
        assertTrue(e.getMessage().contains("docs/typo.md:1: names module 'peft-sprak'"), e.getMessage());
    }

    @Test
    void aMarkerThatIsMalformedOrNotOnTheFirstLineIsRefused(@TempDir Path tmp) throws IOException {
        Path malformed = Files.writeString(tmp.resolve("a.md"), "<!-- java blocks compiled by peft-spark -->\n");
        Path late = Files.writeString(tmp.resolve("b.md"), "# B\n<!-- java blocks compiled by: peft-spark -->\n");

        assertTrue(assertThrows(IllegalArgumentException.class, () -> DocSnippets.compilingModule(malformed))
                .getMessage().contains("malformed marker"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DocSnippets.compilingModule(late))
                .getMessage().contains("b.md:2: "));
    }

    /** README.md, .mvn/, docs/ and the module directories peft-examples and peft-spark under {@code root}; returns the README. */
    private static Path repository(Path root) throws IOException {
        Files.createDirectories(root.resolve(".mvn"));
        Files.createDirectories(root.resolve("docs"));
        for (String module : List.of("peft-examples", "peft-spark")) {
            Files.writeString(Files.createDirectories(root.resolve(module)).resolve("pom.xml"), "<project/>\n");
        }
        return Files.writeString(root.resolve("README.md"), "# Project\n");
    }
}
