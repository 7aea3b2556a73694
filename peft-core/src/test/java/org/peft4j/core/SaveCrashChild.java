package org.peft4j.core;

import java.nio.file.Path;

/**
 * Run by {@link SaveCrashTest} and killed there at a random moment: saves the two adapter sets of
 * {@link TwoAdapterSets} alternately into one directory with {@link PeftModel#saveAdapter},
 * starting with the set given, forever. Prints {@code ready} when both models are built and a few
 * saves into another directory have warmed the JVM up, just before the first save.
 */
public final class SaveCrashChild {

    private static final int WARM_UP_SAVES = 6;

    private SaveCrashChild() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        PeftModel a = TwoAdapterSets.model('A');
        PeftModel b = TwoAdapterSets.model('B');
        boolean nextIsA = args[1].charAt(0) == 'A';
        // Saves elsewhere first, so that the kills land in saves at their usual speed, not in the
        // first ones (class loading, compilation), which spend most of their time before staging.
        Path warmUp = Path.of(args[2]);
        for (int i = 0; i < WARM_UP_SAVES; i++) {
            (i % 2 == 0 ? a : b).saveAdapter(warmUp);
        }
        System.out.println("ready");
        System.out.flush();
        while (true) {
            (nextIsA ? a : b).saveAdapter(dir);
            nextIsA = !nextIsA;
        }
    }
}
