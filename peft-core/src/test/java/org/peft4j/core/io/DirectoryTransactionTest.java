package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Replacing a directory's set of files as one, and what a crash at each step leaves. */
class DirectoryTransactionTest {

    @TempDir
    Path tmp;

    private static void save(Path dir, char set) throws IOException {
        try (DirectoryTransaction t = DirectoryTransaction.begin(dir)) {
            TwoSets.write(t.staging(), set);
            t.commit();
        }
    }

    @Test
    void aCommitReplacesTheWholeSetAndLeavesNothingBehind() throws Exception {
        Path dir = tmp.resolve("adapters");
        save(dir, 'A');
        assertEquals('A', TwoSets.view(dir));
        save(dir, 'B');
        assertEquals('B', TwoSets.view(dir));
        assertEquals(List.of(), TwoSets.leftovers(dir));
        assertArrayEquals(TwoSets.content('B', "second/adapter_config.json"),
                Files.readAllBytes(dir.resolve("second/adapter_config.json")), "files are in place, not only readable");
    }

    /**
     * A crash at any step of a save (the state on disk copied at that step) leaves a directory that
     * reads as exactly the previous set before the commit rename and exactly the new set from it on;
     * recovering it keeps what it reads, removes every leftover, and a save into it then works.
     */
    @Test
    void aCrashAtAnyStepLeavesExactlyOneCompleteSet() throws Exception {
        Path dir = tmp.resolve("adapters");
        save(dir, 'A');
        List<Path> snapshots = new ArrayList<>();
        List<DirectoryTransaction.Step> steps = new ArrayList<>();
        DirectoryTransaction.StepListener snapshot = step -> {
            Path copy = tmp.resolve("crash" + snapshots.size());
            TwoSets.copyTree(dir, copy);
            snapshots.add(copy);
            steps.add(step);
        };
        try (DirectoryTransaction t = DirectoryTransaction.begin(dir, snapshot)) {
            // Crashes while the new files are being written: after each one.
            for (String f : TwoSets.FILES.keySet()) {
                Path p = t.staging().resolve(f);
                Files.createDirectories(p.getParent());
                Files.write(p, TwoSets.content('B', f));
                snapshot.reached(DirectoryTransaction.Step.STAGING_CREATED);
            }
            t.commit();
        }
        assertEquals(5 + 1 + 1 + 1 + 5 + 1 + 1, snapshots.size(), steps::toString);
        boolean committed = false;
        for (int i = 0; i < snapshots.size(); i++) {
            Path s = snapshots.get(i);
            committed |= steps.get(i) == DirectoryTransaction.Step.COMMITTED;
            char expected = committed ? 'B' : 'A';
            assertEquals(expected, TwoSets.view(s), "crash at " + steps.get(i) + " #" + i);
            DirectoryTransaction.recover(s);
            assertEquals(expected, TwoSets.view(s), "after recovering the crash at " + steps.get(i) + " #" + i);
            assertEquals(List.of(), TwoSets.leftovers(s), "after recovering the crash at " + steps.get(i));
            save(s, expected == 'A' ? 'B' : 'A');
            assertEquals(expected == 'A' ? 'B' : 'A', TwoSets.view(s));
        }
    }

    @Test
    void anAbandonedSaveLeavesThePreviousSetAndNoStaging() throws Exception {
        Path dir = tmp.resolve("adapters");
        save(dir, 'A');
        try (DirectoryTransaction t = DirectoryTransaction.begin(dir)) {
            TwoSets.write(t.staging(), 'B');
        }
        assertEquals('A', TwoSets.view(dir));
        assertEquals(List.of(), TwoSets.leftovers(dir));
        DirectoryTransaction t = DirectoryTransaction.begin(dir);
        t.commit();
        assertThrows(IllegalStateException.class, t::commit);
    }

    @Test
    void theNextSaveRemovesWhatCrashedSavesLeftAndNothingElse() throws Exception {
        Path dir = tmp.resolve("adapters");
        save(dir, 'A');
        Path staging = Files.createDirectories(dir.resolve(".peft4j-staging-0123456789abcdef/second"));
        Files.write(staging.resolve("adapter_model.safetensors"), new byte[] {1});
        Path tmpFile = Files.write(dir.resolve(".adapter_model.safetensors.tmp-0123456789abcdef"), new byte[] {2});
        Path subTmp = Files.write(dir.resolve("second/.adapter_config.json.tmp-fedcba9876543210"), new byte[] {3});
        Path users = Files.write(dir.resolve(".notes.tmp-mine"), new byte[] {4});
        Path usersDir = Files.createDirectories(dir.resolve("logs"));

        save(dir, 'B');
        assertEquals('B', TwoSets.view(dir));
        assertFalse(Files.exists(staging.getParent()));
        assertFalse(Files.exists(tmpFile));
        assertFalse(Files.exists(subTmp));
        assertTrue(Files.exists(users), "a file that is not a temporary of ours stays");
        assertTrue(Files.isDirectory(usersDir));
    }

    @Test
    void linksAreNeverFollowed() throws Exception {
        Path dir = tmp.resolve("adapters");
        save(dir, 'A');
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Path precious = Files.write(outside.resolve("precious"), new byte[] {42});

        // A link inside a leftover staging directory: the link goes, what it points to stays.
        Path staging = Files.createDirectories(dir.resolve(".peft4j-staging-00000000000000ff"));
        Files.createSymbolicLink(staging.resolve("link"), outside);
        DirectoryTransaction.recover(dir);
        assertFalse(Files.exists(staging));
        assertArrayEquals(new byte[] {42}, Files.readAllBytes(precious));

        // A link planted as the commit directory is refused, not read or moved from.
        Files.createSymbolicLink(dir.resolve(".peft4j-commit"), outside);
        assertEquals('A', TwoSets.view(dir));
        FileSystemException commit = assertThrows(FileSystemException.class, () -> DirectoryTransaction.recover(dir));
        assertTrue(commit.getMessage().contains("is not a directory"), commit.getMessage());
        Files.delete(dir.resolve(".peft4j-commit"));

        // A sub-directory replaced by a link: the save is refused before its commit rename, writes
        // nothing outside and leaves nothing behind; removing the link lets the next save complete.
        deleteTree(dir.resolve("second"));
        Files.createSymbolicLink(dir.resolve("second"), outside);
        FileSystemException sub = assertThrows(FileSystemException.class, () -> save(dir, 'B'));
        assertTrue(sub.getMessage().contains(dir.resolve("second") + ": is a symbolic link"), sub.getMessage());
        try (Stream<Path> s = Files.list(outside)) {
            assertEquals(List.of(precious), s.toList());
        }
        assertEquals(List.of(), TwoSets.leftovers(dir), "no staging or commit directory left");
        assertTrue(Files.isSymbolicLink(dir.resolve("second")), "the link is left as it was");
        Files.delete(dir.resolve("second"));
        save(dir, 'B');
        assertEquals('B', TwoSets.view(dir));
        save(dir, 'A');
        assertEquals('A', TwoSets.view(dir));
        assertEquals(List.of(), TwoSets.leftovers(dir));
    }

    @Test
    void readersResolveOnlyPathsInsideTheDirectory() {
        Path dir = tmp.resolve("adapters");
        assertEquals(dir.resolve("a/b"), DirectoryTransaction.resolve(dir, "a/b"));
        for (String bad : new String[] {"", "../x", "a/../../x", "/etc/passwd"}) {
            assertThrows(IllegalArgumentException.class, () -> DirectoryTransaction.resolve(dir, bad), bad);
        }
    }

    private static void deleteTree(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted((a, b) -> b.getNameCount() - a.getNameCount()).toList()) {
                Files.delete(q);
            }
        }
    }
}
