package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The crash test of {@link DirectoryTransaction}: a child JVM saves two sets of files alternately
 * into one directory and is killed ({@code kill -9}) at a random moment, {@value #KILLS} times in a
 * row on the same directory. After every kill the directory reads as exactly one of the two sets,
 * and the next child's first save recovers it. (The random moments are seeded: a failure can be
 * rerun with the seed in its message.)
 */
class DirectoryTransactionCrashTest {

    static final int KILLS = 50;
    /** Kill moments are drawn from [0, this) milliseconds after the child began its first save. */
    private static final int MAX_DELAY_MS = 300;

    @TempDir
    Path tmp;

    @Test
    void aSaveKilledAtAnyMomentLeavesExactlyOneOfTheTwoSets() throws Exception {
        Path dir = tmp.resolve("adapters");
        try (DirectoryTransaction t = DirectoryTransaction.begin(dir)) {
            TwoSets.write(t.staging(), 'A');
            t.commit();
        }
        long seed = System.nanoTime();
        Random random = new Random(seed);
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        int inProgress = 0;
        int afterCommit = 0;
        int changes = 0;
        char view = 'A';
        for (int kill = 0; kill < KILLS; kill++) {
            char next = view == 'A' ? 'B' : 'A';
            Process child = new ProcessBuilder(java.toString(), "-Xmx64m", "-XX:TieredStopAtLevel=1",
                    "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                    DirectoryTransactionCrashChild.class.getName(), dir.toString(), String.valueOf(next))
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            try (BufferedReader out = child.inputReader()) {
                String line = out.readLine();
                assertEquals("ready", line, "child JVM did not start saving (seed " + seed + ")");
                Thread.sleep(random.nextInt(MAX_DELAY_MS));
                child.destroyForcibly(); // SIGKILL on Linux and macOS: no shutdown hook, no finally block
            }
            assertTrue(child.waitFor(1, TimeUnit.MINUTES), "child JVM did not die");
            List<Path> left = TwoSets.leftovers(dir);
            afterCommit += left.contains(dir.resolve(DirectoryTransaction.COMMIT)) ? 1 : 0;
            inProgress += left.isEmpty() ? 0 : 1;
            char now = TwoSets.view(dir);
            assertTrue(now == 'A' || now == 'B', "after kill " + kill + " the directory reads as '" + now
                    + "', not one set; leftovers " + left + " (seed " + seed + ")");
            changes += now != view ? 1 : 0;
            view = now;
        }
        DirectoryTransaction.recover(dir);
        assertEquals(view, TwoSets.view(dir));
        assertEquals(List.of(), TwoSets.leftovers(dir));
        // The kills must have hit saves, not only idle moments: most find one in progress (in a run
        // here: 23 while staging, 26 after the commit rename, 1 between saves), some of them after
        // the commit rename (the roll-forward path), and some saves completed in between.
        assertTrue(inProgress >= KILLS / 2, inProgress + " of " + KILLS + " kills found a save in progress");
        assertTrue(afterCommit > 0, "no kill came after a commit rename");
        assertTrue(changes > 0, "no save completed between kills");
    }
}
