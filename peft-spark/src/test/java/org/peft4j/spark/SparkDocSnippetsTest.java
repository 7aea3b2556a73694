package org.peft4j.spark;

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
 * The {@code ```java} blocks of the pages whose first line is
 * {@code <!-- java blocks compiled by: peft-spark -->} ({@code docs/spark.md}) compile against
 * this module's test class path (Spark, DL4J's Spark modules, ParallelWrapper), without a warning
 * under {@code -Xlint:all}: those dependencies stay out of peft-examples, whose
 * {@code DocSnippetsTest} compiles every other page.
 */
class SparkDocSnippetsTest {

    @Test
    void everyJavaBlockOfThePagesNamingThisModuleCompilesWithoutWarnings(@TempDir Path tmp) throws IOException {
        Path root = DocSnippets.repositoryRoot();
        List<Path> pages = DocSnippets.pagesCompiledBy(root, "peft-spark");
        assertTrue(pages.contains(root.resolve("docs/spark.md")), "docs/spark.md names this module: " + pages);
        List<Snippet> snippets = DocSnippets.snippets(pages);
        assertTrue(snippets.stream().anyMatch(s -> s.code().contains("PeftSpark.parameterAveraging(")),
                "the Spark usage block was found: " + snippets);
        List<String> problems = DocSnippets.compile(snippets, root, tmp);
        if (!problems.isEmpty()) {
            fail(problems.size() + " problem(s) in the java blocks of the documentation (a block is compiled as one "
                    + "source file: give it its imports and a class):\n" + String.join("\n", problems));
        }
    }
}
