package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.core.io.DirectoryTransaction;

/**
 * What a save that stopped at each point leaves, read through {@link Peft#load}: the files of a
 * real save of set B laid over a directory holding set A as {@link DirectoryTransaction} leaves
 * them at each step. Before the commit rename the directory loads as A, from it on as B (whichever
 * files were already moved into place), and the next save removes what was left.
 */
class AtomicSaveTest {

    @TempDir
    static Path tmp;
    private static Path setA;
    private static Path setB;
    private static List<String> filesOfB;

    @BeforeAll
    static void saveBothSets() throws IOException {
        setA = tmp.resolve("a");
        setB = tmp.resolve("b");
        TwoAdapterSets.model('A').saveAdapter(setA);
        TwoAdapterSets.model('B').saveAdapter(setB);
        filesOfB = files(setB);
        assertTrue(filesOfB.contains("second/adapter_model.safetensors"), filesOfB::toString);
    }

    private static List<String> files(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            return s.filter(Files::isRegularFile).map(p -> root.relativize(p).toString()).sorted().toList();
        }
    }

    private static Path copyOfA(String name) throws IOException {
        Path dir = tmp.resolve(name);
        for (String f : files(setA)) {
            Files.createDirectories(dir.resolve(f).getParent());
            Files.copy(setA.resolve(f), dir.resolve(f));
        }
        return dir;
    }

    /** The leftovers of saves in {@code dir}: staging and commit directories, temporary files. */
    private static List<Path> leftovers(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> DirectoryTransaction.isInternal(p.getFileName().toString())
                    || p.getFileName().toString().contains(".tmp-")).toList();
        }
    }

    @Test
    void beforeTheCommitRenameTheDirectoryLoadsAsThePreviousSetAndTheNextSaveCleansUp() throws Exception {
        assertEquals('A', TwoAdapterSets.view(setA));
        Path dir = copyOfA("staged");
        // A save killed while staging: part of B in a staging directory, and temporary files of an
        // earlier version's file-by-file save beside the adapters.
        Path staging = Files.createDirectories(dir.resolve(".peft4j-staging-00000000000000aa"));
        for (String f : filesOfB.subList(0, filesOfB.size() - 1)) {
            Files.createDirectories(staging.resolve(f).getParent());
            Files.copy(setB.resolve(f), staging.resolve(f));
        }
        Files.write(dir.resolve(".adapter_model.safetensors.tmp-00000000000000bb"), new byte[] {1});
        Files.write(dir.resolve("second").resolve(".adapter_config.json.tmp-00000000000000cc"), new byte[] {2});
        assertEquals('A', TwoAdapterSets.view(dir));

        TwoAdapterSets.model('B').saveAdapter(dir);
        assertEquals('B', TwoAdapterSets.view(dir));
        assertEquals(List.of(), leftovers(dir));
        assertEquals(filesOfB, files(dir), "exactly B's files, in place");
    }

    /**
     * Two threads saving one model into one directory take turns (a save removes the staging
     * directory a concurrent save into the same directory left, so overlapping saves would fail).
     */
    @Test
    void savesOfOneModelFromTwoThreadsTakeTurns() throws Exception {
        Path dir = tmp.resolve("two-threads");
        PeftModel model = TwoAdapterSets.model('B');
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(2);
        try {
            List<java.util.concurrent.Future<?>> saves = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                saves.add(pool.submit(() -> {
                    for (int i = 0; i < 5; i++) {
                        model.saveAdapter(dir);
                    }
                    return null;
                }));
            }
            for (java.util.concurrent.Future<?> f : saves) {
                f.get(5, java.util.concurrent.TimeUnit.MINUTES);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals('B', TwoAdapterSets.view(dir));
        assertEquals(List.of(), leftovers(dir));
    }

    @Test
    void fromTheCommitRenameOnTheDirectoryLoadsAsTheNewSetWhicheverFilesWereMoved() throws Exception {
        List<List<String>> movedFirst = new ArrayList<>();
        for (int i = 0; i <= filesOfB.size(); i++) {
            movedFirst.add(filesOfB.subList(0, i)); // the order roll-forward moves them in
            List<String> reversed = new ArrayList<>(filesOfB);
            Collections.reverse(reversed);
            if (i > 0 && i < filesOfB.size()) {
                movedFirst.add(reversed.subList(0, i));
            }
        }
        int n = 0;
        for (List<String> moved : movedFirst) {
            Path dir = copyOfA("committed" + n++);
            Path commit = Files.createDirectories(dir.resolve(".peft4j-commit"));
            for (String f : filesOfB) {
                Path to = moved.contains(f) ? dir.resolve(f) : commit.resolve(f);
                Files.createDirectories(to.getParent());
                Files.copy(setB.resolve(f), to, StandardCopyOption.REPLACE_EXISTING);
            }
            assertEquals('B', TwoAdapterSets.view(dir), "committed, moved " + moved);
            assertTrue(Files.exists(commit, LinkOption.NOFOLLOW_LINKS), "loading writes nothing");

            TwoAdapterSets.model('A').saveAdapter(dir);
            assertEquals('A', TwoAdapterSets.view(dir), "the next save, after rolling B forward");
            assertEquals(List.of(), leftovers(dir));
            assertFalse(Files.exists(commit));
        }
    }
}
