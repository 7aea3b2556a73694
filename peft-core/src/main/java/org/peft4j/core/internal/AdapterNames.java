package org.peft4j.core.internal;

import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Pattern;
import org.peft4j.core.spi.Messages;

/**
 * The rule for adapter names. A name becomes a directory when the adapters are saved
 * ({@code <dir>/<name>/}), and adapter directories are copied between Linux, macOS and Windows,
 * so a name must be a directory name that means the same on all three:
 * <ul>
 *   <li>1 to {@value #MAX_LENGTH} characters: ASCII letters, digits, {@code .}, {@code _},
 *       {@code -}, starting with a letter or digit (no path separators, no {@code ..}, no hidden
 *       names);</li>
 *   <li>not ending with {@code .} (Windows drops trailing dots and spaces, so {@code a.} would be
 *       saved as {@code a});</li>
 *   <li>not a Windows device name ({@code CON}, {@code PRN}, {@code AUX}, {@code NUL},
 *       {@code COM0}–{@code COM9}, {@code LPT0}–{@code LPT9}), in any case, with or without an
 *       extension ({@code nul.txt} opens the device too);</li>
 *   <li>not one of the files saved beside the adapters' directories, and not the name of an
 *       existing adapter, both compared ignoring case: on a case-insensitive file system
 *       (Windows, macOS) {@code Mixed} and {@code mixed} are one directory.</li>
 * </ul>
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterNames {

    /** Longest adapter name. */
    public static final int MAX_LENGTH = 100;

    private static final Pattern SYNTAX = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0," + (MAX_LENGTH - 1) + "}");
    private static final Pattern DEVICE = Pattern.compile("(con|prn|aux|nul|com[0-9]|lpt[0-9])(\\..*)?");
    private static final List<String> FILES =
            List.of(AdapterFiles.CONFIG_FILE, AdapterFiles.WEIGHTS_FILE, AdapterFiles.STATE_FILE);

    private AdapterNames() {
    }

    /**
     * Checks a name for a new adapter.
     *
     * @param existing the names of the model's adapters
     * @throws NullPointerException if {@code name} is null
     * @throws IllegalArgumentException saying which rule the name breaks
     */
    public static void checkNew(String name, Collection<String> existing) {
        Objects.requireNonNull(name, "adapter name must not be null");
        if (!SYNTAX.matcher(name).matches()) {
            throw new IllegalArgumentException("adapter name \"" + Messages.shorten(name) + "\" must be 1-" + MAX_LENGTH
                    + " letters, digits, '.', '_' or '-', starting with a letter or digit (it names a directory when "
                    + "saved)");
        }
        if (name.endsWith(".")) {
            throw new IllegalArgumentException("adapter name \"" + name + "\" ends with '.', which Windows drops from "
                    + "directory names; choose a name that ends with a letter, digit, '_' or '-'");
        }
        String lower = name.toLowerCase(Locale.ROOT);
        if (DEVICE.matcher(lower).matches()) {
            throw new IllegalArgumentException("adapter name \"" + name + "\" is a Windows device name (CON, PRN, AUX, "
                    + "NUL, COM0-9, LPT0-9, with or without an extension), which cannot name a directory there; choose "
                    + "another name");
        }
        for (String f : FILES) {
            if (f.equalsIgnoreCase(name)) {
                throw new IllegalArgumentException("adapter name \"" + name + "\" "
                        + (f.equals(name) ? "is the name of a file" : "differs only in case from " + f + ", a file")
                        + " saveAdapter and saveCheckpoint write next to the adapters' directories; choose another name");
            }
        }
        for (String e : existing) {
            if (e.equalsIgnoreCase(name)) {
                throw new IllegalArgumentException(e.equals(name)
                        ? "an adapter named \"" + name + "\" exists already; adapters are " + Messages.list(existing)
                        : "adapter name \"" + name + "\" differs from the existing adapter \"" + e + "\" only in case, "
                                + "and the two would share one directory on a case-insensitive file system (Windows, "
                                + "macOS); choose another name");
            }
        }
    }
}
