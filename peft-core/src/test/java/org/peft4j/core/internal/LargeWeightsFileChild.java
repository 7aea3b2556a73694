package org.peft4j.core.internal;

import java.nio.file.Path;
import org.peft4j.core.Peft;

/**
 * Run by {@link LargeWeightsFileTest} in a JVM with a small heap: loads each adapter directory
 * given as an argument over the test's base model and prints one line per directory, the
 * exception that refused it. Exits with 3 on {@link OutOfMemoryError}, 4 if a directory loads.
 */
public final class LargeWeightsFileChild {

    private LargeWeightsFileChild() {
    }

    public static void main(String[] args) {
        for (String dir : args) {
            try {
                Peft.load(LargeWeightsFileTest.base(), Path.of(dir), true);
                System.out.println("LOADED " + dir);
                System.exit(4);
            } catch (OutOfMemoryError e) {
                System.out.println("OUT OF MEMORY " + dir);
                System.exit(3);
            } catch (Exception e) {
                String m = String.valueOf(e.getMessage());
                System.out.println("REFUSED " + e.getClass().getSimpleName() + ": "
                        + m.substring(0, Math.min(m.length(), 2000)));
            }
        }
        System.exit(0);
    }
}
