package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.core.testing.DocSnippets;
import org.peft4j.core.testing.DocSnippets.Snippet;

/**
 * Every {@code ```java} block of {@code README.md} and of every {@code docs/**.md} compiles
 * against the project, without a warning under {@code -Xlint:all}: the code a user copies is the
 * API as it is. Pages added under {@code docs/} are picked up without touching this test. Each
 * block is one source file (its imports and a class); a failure names the page and line. A page
 * whose first line names another module ({@code <!-- java blocks compiled by: peft-spark -->}) is
 * compiled by that module's test, against its dependencies (see {@link DocSnippets}).
 */
class DocSnippetsTest {

    @Test
    void everyJavaBlockOfTheReadmeAndDocsCompilesWithoutWarnings(@TempDir Path tmp) throws IOException {
        Path root = DocSnippets.repositoryRoot();
        List<Snippet> snippets = DocSnippets.snippets(DocSnippets.pagesCompiledBy(root, DocSnippets.DEFAULT_MODULE));
        assertTrue(snippets.stream().anyMatch(s -> s.page().getFileName().toString().equals("README.md")
                && s.code().contains("Peft.wrap(")), "the README's Quickstart was found: " + snippets);
        List<String> problems = DocSnippets.compile(snippets, root, tmp);
        if (!problems.isEmpty()) {
            fail(problems.size() + " problem(s) in the java blocks of the documentation (a block is compiled as one "
                    + "source file: give it its imports and a class):\n" + String.join("\n", problems));
        }
    }
}
