package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.peft4j.core.spi.PeftJson;

/**
 * Guards the fixture set of real {@code adapter_config.json} files under {@code peft-configs/}: every file is
 * one JSON object our strict parser reads (no duplicate keys) with a string {@code peft_type}, every file is
 * listed in {@code SOURCES.md} with its source (and nothing listed is missing), and the derived files are in
 * the layout PEFT writes, which our own writer reproduces byte for byte.
 */
class PeftConfigFixturesTest {

    /** A row of SOURCES.md: {@code | `name.json` | repository | `path` | `40-hex commit` (date) | ...}. */
    private static final Pattern FOUND_ROW = Pattern.compile(
            "^\\| `([^`]+\\.json)` \\| ([\\w.-]+/[\\w.-]+) \\| `([^`]+)` \\| `([0-9a-f]{40})` \\((\\d{4}-\\d{2}-\\d{2})\\) \\|");
    /** A row of the derived/ section: {@code | `name.json` | `kind/source.json` | keys | ...}. */
    private static final Pattern DERIVED_ROW = Pattern.compile("^\\| `([^`]+\\.json)` \\| `([^`]+\\.json)` \\|");
    private static final Pattern SECTION = Pattern.compile("^## ([a-z0-9_]+)/$");

    private static Path root() throws URISyntaxException {
        return Path.of(PeftConfigFixturesTest.class.getResource("/peft-configs/SOURCES.md").toURI()).getParent();
    }

    private static List<Path> fixtures() throws IOException, URISyntaxException {
        try (Stream<Path> s = Files.walk(root())) {
            return s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
        }
    }

    private static String relative(Path p) throws URISyntaxException {
        return root().relativize(p).toString().replace('\\', '/');
    }

    @Test
    void everyFixtureIsOneJsonObjectWithAPeftType() throws Exception {
        List<Path> files = fixtures();
        assertTrue(files.size() >= 80, "expected the whole fixture set, found " + files.size() + " files");
        for (Path f : files) {
            Map<String, Object> json = PeftJson.parseObject(Files.readAllBytes(f), f.toString());
            assertInstanceOf(String.class, json.get("peft_type"), f + ": peft_type");
        }
    }

    @Test
    void sourcesListsEveryFixtureOnceAndOnlyExistingOnes() throws Exception {
        TreeSet<String> listed = new TreeSet<>();
        String section = null;
        for (String line : Files.readAllLines(root().resolve("SOURCES.md"), StandardCharsets.UTF_8)) {
            Matcher s = SECTION.matcher(line);
            if (s.matches()) {
                section = s.group(1);
                continue;
            }
            Matcher found = FOUND_ROW.matcher(line);
            Matcher derived = DERIVED_ROW.matcher(line);
            String name = found.find() ? found.group(1) : derived.find() ? derived.group(1) : null;
            if (name == null) {
                continue;
            }
            assertTrue(section != null, "row before any section: " + line);
            assertTrue(listed.add(section + "/" + name), "listed twice: " + section + "/" + name);
            if (section.equals("derived")) {
                assertTrue(Files.isRegularFile(root().resolve(derived.group(2))),
                        name + " is made from " + derived.group(2) + ", which is not in the fixture set");
            }
        }
        TreeSet<String> present = new TreeSet<>();
        for (Path f : fixtures()) {
            present.add(relative(f));
        }
        TreeSet<String> unlisted = new TreeSet<>(present);
        unlisted.removeAll(listed);
        TreeSet<String> missing = new TreeSet<>(listed);
        missing.removeAll(present);
        assertEquals(List.of(), new ArrayList<>(unlisted), "fixtures without a source in SOURCES.md");
        assertEquals(List.of(), new ArrayList<>(missing), "SOURCES.md lists files that are not there");
    }

    @Test
    void derivedFixturesAreInTheLayoutPeftWritesAndOurWriterReproducesIt() throws Exception {
        List<Path> derived = new ArrayList<>();
        for (Path f : fixtures()) {
            if (relative(f).startsWith("derived/")) {
                derived.add(f);
            }
        }
        assertFalse(derived.isEmpty());
        for (Path f : derived) {
            String text = Files.readString(f, StandardCharsets.UTF_8);
            assertEquals(text, PeftJson.write(PeftJson.parseObject(text.getBytes(StandardCharsets.UTF_8), f.toString())),
                    f + " is not json.dumps(indent=2, sort_keys=True) of its content");
        }
    }
}
