package org.peft4j.core.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Two recognisable sets of adapter-like files, A and B, for the directory-transaction tests: the
 * same relative paths (a default adapter, a second adapter in a sub-directory, a training state),
 * every byte of a file telling which set and which file it belongs to.
 */
final class TwoSets {

    static final Map<String, Integer> FILES = new LinkedHashMap<>();

    static {
        FILES.put("adapter_model.safetensors", 1 << 18);
        FILES.put("second/adapter_model.safetensors", 1 << 17);
        FILES.put("training_state.safetensors", 1 << 16);
        FILES.put("second/adapter_config.json", 4096);
        FILES.put("adapter_config.json", 4096);
    }

    private TwoSets() {
    }

    static byte[] content(char set, String file) {
        byte[] b = new byte[FILES.get(file)];
        int seed = set * 31 + file.hashCode();
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (seed + i * 7);
        }
        return b;
    }

    /** Writes set {@code set} under {@code root} (a staging directory). */
    static void write(Path root, char set) throws IOException {
        for (String f : FILES.keySet()) {
            Path p = root.resolve(f);
            Files.createDirectories(p.getParent());
            Files.write(p, content(set, f));
        }
    }

    /**
     * Which set a reader of {@code dir} sees ({@link DirectoryTransaction#resolve}): 'A' or 'B' when
     * every file is that set's, '-' when the files are missing, and 'X' for a mixture.
     */
    static char view(Path dir) throws IOException {
        Character seen = null;
        for (String f : FILES.keySet()) {
            Path p = DirectoryTransaction.resolve(dir, f);
            char now;
            if (!Files.isRegularFile(p)) {
                now = '-';
            } else {
                byte[] b = Files.readAllBytes(p);
                now = Arrays.equals(b, content('A', f)) ? 'A' : Arrays.equals(b, content('B', f)) ? 'B' : 'X';
            }
            if (seen == null) {
                seen = now;
            } else if (seen != now) {
                return 'X';
            }
        }
        return seen;
    }

    /** The entries a save leaves only while in progress or after a crash. */
    static List<Path> leftovers(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> {
                String n = p.getFileName().toString();
                return n.startsWith(DirectoryTransaction.INTERNAL_PREFIX) || AtomicFiles.isTemporary(n);
            }).filter(p -> Files.exists(p, LinkOption.NOFOLLOW_LINKS)).toList();
        }
    }

    /** A copy of the tree under {@code from} at {@code to}. */
    static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path q = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                    Files.createDirectories(q);
                } else {
                    Files.copy(p, q);
                }
            }
        }
    }
}
