package org.peft4j.core.io;

import java.nio.file.Path;

/**
 * Run by {@link DirectoryTransactionCrashTest} and killed there at a random moment: saves the two
 * sets of {@link TwoSets} alternately into one directory, starting with the set given, forever.
 * Prints {@code ready} once it has begun its first save.
 */
public final class DirectoryTransactionCrashChild {

    private DirectoryTransactionCrashChild() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        char set = args[1].charAt(0);
        boolean first = true;
        while (true) {
            try (DirectoryTransaction t = DirectoryTransaction.begin(dir)) {
                if (first) {
                    System.out.println("ready");
                    System.out.flush();
                    first = false;
                }
                TwoSets.write(t.staging(), set);
                t.commit();
            }
            set = set == 'A' ? 'B' : 'A';
        }
    }
}
