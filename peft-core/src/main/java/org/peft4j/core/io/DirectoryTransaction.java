package org.peft4j.core.io;

import java.io.Closeable;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Replaces a set of files in a directory as one: after a crash at any moment (an exception, a
 * {@code kill -9}, a power cut once the data is flushed) a reader sees either the complete
 * previous set or the complete new one, never a mixture and never nothing.
 *
 * <h2>How</h2>
 * <ol>
 *   <li>{@link #begin} first {@linkplain #recover recovers} the directory (below), then creates a
 *       fresh staging directory {@code .peft4j-staging-<random>} inside it. The caller writes the
 *       new files into {@link #staging()} in the layout they must have in the directory
 *       ({@code adapter_config.json}, {@code second/adapter_model.safetensors}, ...). Readers ignore
 *       staging directories, so until the commit the previous set is what they read.</li>
 *   <li>{@link #commit} flushes every staged file and directory to the device and renames the
 *       staging directory to {@code .peft4j-commit}: one atomic rename is the commit point. From
 *       then on the new set is what readers read.</li>
 *   <li>It then moves each committed file over its old version (an atomic replacing rename per
 *       file), flushes the directories, and removes the emptied {@code .peft4j-commit}.</li>
 * </ol>
 *
 * <h2>Reading, and the recovery rule</h2>
 * Between the commit point and the end of the moves, some new files are in place and the others
 * are still in {@code .peft4j-commit}. A reader therefore takes each file from
 * {@code .peft4j-commit} if it is there, else from the directory ({@link #resolve}); that is the
 * new set at every moment after the commit point, without writing anything. The next
 * {@link #begin} (or an explicit {@link #recover}) finishes the moves of a committed save (roll
 * forward) and deletes what crashed saves left: staging directories, and {@link AtomicFiles}'
 * temporary files in the directory and its sub-directories.
 *
 * <h2>Links and concurrency</h2>
 * Nothing here follows a symbolic link: staging is created with {@code createDirectory} (which
 * fails on anything already there), a sub-directory in the target that is a link (or a file, or a
 * directory where a file goes) is refused before the commit rename, so the previous set stays, a
 * {@code .peft4j-commit} that is not a real directory is refused, and cleaning deletes links
 * themselves, never what they point to. One save at a time per directory: a second
 * {@link #begin} on the same directory while a save is in progress deletes that save's staging
 * directory (it counts as left over), so the first save then fails with an {@link IOException};
 * neither leaves a mixed set. A reader that reads several files while a save commits can see
 * files of two saves if the save completes between its reads; the digests adapter configs record
 * detect that.
 *
 * <p>Thread-safety: an instance belongs to the thread that began it; the static methods are
 * stateless.
 */
public final class DirectoryTransaction implements Closeable {

    private static final Logger LOG = LoggerFactory.getLogger(DirectoryTransaction.class);

    /** Names of this class's own entries start with this; readers listing a directory skip them. */
    public static final String INTERNAL_PREFIX = ".peft4j-";
    /** The committed save whose files are being moved into place. */
    static final String COMMIT = INTERNAL_PREFIX + "commit";
    private static final String STAGING = INTERNAL_PREFIX + "staging-";

    /** The points of a save a crash test stops at, in order. */
    enum Step {
        /** After recovery, with the staging directory created and empty. */
        STAGING_CREATED,
        /** All staged files and directories flushed, before the commit rename. */
        STAGED,
        /** Right after the commit rename. */
        COMMITTED,
        /** After one file was moved into place (once per file). */
        FILE_MOVED,
        /** Every file moved and flushed, before {@code .peft4j-commit} is removed. */
        ALL_MOVED,
        /** The save is complete. */
        DONE
    }

    /** Lets tests observe (or stop at) each {@link Step}. */
    @FunctionalInterface
    interface StepListener {
        StepListener NONE = step -> { };

        void reached(Step step) throws IOException;
    }

    private final Path dir;
    private final Path staging;
    private final StepListener listener;
    private boolean finished;

    private DirectoryTransaction(Path dir, Path staging, StepListener listener) {
        this.dir = dir;
        this.staging = staging;
        this.listener = listener;
    }

    /**
     * Starts replacing the files of {@code dir}: creates {@code dir} if missing, recovers it
     * ({@link #recover}) and creates an empty staging directory.
     *
     * @throws IOException if {@code dir} cannot be created or recovered
     */
    public static DirectoryTransaction begin(Path dir) throws IOException {
        return begin(dir, StepListener.NONE);
    }

    static DirectoryTransaction begin(Path dir, StepListener listener) throws IOException {
        Objects.requireNonNull(dir, "dir");
        Files.createDirectories(dir);
        recover(dir);
        Path staging = dir.resolve(STAGING + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong()));
        Files.createDirectory(staging);
        DirectoryTransaction t = new DirectoryTransaction(dir, staging, listener);
        listener.reached(Step.STAGING_CREATED);
        return t;
    }

    /** The directory to write the new set into, laid out as it must be in the target directory. */
    public Path staging() {
        return staging;
    }

    /**
     * Makes the staged files the directory's files: flush, the commit rename, then the moves into
     * place. Files of the previous set that the new one does not have are left as they were.
     *
     * @throws IllegalStateException if called twice, or after {@link #close()}
     * @throws IOException if a step fails; before the commit rename the previous set stays, after it
     *     the new set is what {@link #resolve} reads and the next {@link #begin} completes it
     */
    public void commit() throws IOException {
        if (finished) {
            throw new IllegalStateException("this transaction was already committed or closed");
        }
        finished = true;
        List<Path> files;
        try {
            files = stagedFiles(staging);
            for (Path f : files) {
                force(f);
            }
            forceDirectories(staging);
            checkTargets(files);
            listener.reached(Step.STAGED);
            Files.move(staging, dir.resolve(COMMIT), StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException | Error e) {
            deleteTree(staging, e);
            throw e;
        }
        syncDirectory(dir);
        listener.reached(Step.COMMITTED);
        rollForward(dir, listener);
        listener.reached(Step.DONE);
    }

    /** Abandons an uncommitted save: deletes the staging directory. Does nothing after {@link #commit}. */
    @Override
    public void close() throws IOException {
        if (!finished) {
            finished = true;
            deleteTree(staging, null);
        }
    }

    /**
     * The file a reader reads for {@code relative} (e.g. {@code "second/adapter_config.json"}): the
     * committed version still waiting in {@code .peft4j-commit} if there is one, else the file in
     * {@code dir}. Writes nothing.
     *
     * @throws IllegalArgumentException if {@code relative} is absolute, empty or leaves {@code dir}
     */
    public static Path resolve(Path dir, String relative) {
        Path rel = dir.getFileSystem().getPath(relative).normalize();
        if (relative.isEmpty() || rel.isAbsolute() || rel.toString().isEmpty() || rel.startsWith("..")) {
            throw new IllegalArgumentException("\"" + relative + "\" is not a path inside the directory");
        }
        Path committed = dir.resolve(COMMIT);
        if (Files.isDirectory(committed, LinkOption.NOFOLLOW_LINKS)) {
            Path c = committed.resolve(rel);
            if (Files.exists(c, LinkOption.NOFOLLOW_LINKS)) {
                return c;
            }
        }
        return dir.resolve(rel);
    }

    /**
     * The file {@code fileName} of {@code member} as a reader must read it, where {@code member} is
     * a directory saved into as a whole (the root of a transaction) or a direct sub-directory of
     * one: the committed version waiting in the member's own {@code .peft4j-commit}, else the one
     * waiting in its parent's {@code .peft4j-commit/<member name>/}, else {@code member/fileName}.
     * Writes nothing.
     *
     * @throws IllegalArgumentException if {@code fileName} is not one plain path element
     */
    public static Path resolveMember(Path member, String fileName) {
        Path element = member.getFileSystem().getPath(fileName);
        if (fileName.isEmpty() || element.getNameCount() != 1 || element.isAbsolute() || fileName.equals(".")
                || fileName.equals("..")) {
            throw new IllegalArgumentException("\"" + fileName + "\" is not one plain path element");
        }
        Path own = resolve(member, fileName);
        if (!own.equals(member.resolve(fileName))) {
            return own;
        }
        Path abs = member.toAbsolutePath().normalize();
        Path parent = abs.getParent();
        if (parent != null && abs.getFileName() != null) {
            Path committed = parent.resolve(COMMIT).resolve(abs.getFileName().toString()).resolve(fileName);
            if (Files.isDirectory(parent.resolve(COMMIT), LinkOption.NOFOLLOW_LINKS)
                    && Files.exists(committed, LinkOption.NOFOLLOW_LINKS)) {
                return committed;
            }
        }
        return own;
    }

    /**
     * Whether {@code fileName} names an entry of this class in a directory (staging, commit): a
     * reader that lists a directory skips these.
     */
    public static boolean isInternal(String fileName) {
        return fileName.startsWith(INTERNAL_PREFIX);
    }

    /**
     * Refuses, before the commit rename, a staged file whose place in the directory cannot take
     * it without following a link: a parent that is a symbolic link or not a directory, or a
     * directory (not a link) where the file goes.
     */
    private void checkTargets(List<Path> files) throws IOException {
        for (Path f : files) {
            Path rel = staging.relativize(f);
            Path target = dir;
            for (int i = 0; i < rel.getNameCount(); i++) {
                target = target.resolve(rel.getName(i).toString());
                BasicFileAttributes a;
                try {
                    a = Files.readAttributes(target, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                } catch (NoSuchFileException e) {
                    break; // created when the file moves in
                }
                boolean last = i == rel.getNameCount() - 1;
                if (!last && a.isSymbolicLink()) {
                    throw new FileSystemException(target.toString(), null, "is a symbolic link; files are written only "
                            + "inside the save directory and links there are not followed: remove the link, or save "
                            + "elsewhere");
                }
                if (!last && !a.isDirectory()) {
                    throw new FileSystemException(target.toString(), null, "exists and is not a directory; expected a "
                            + "directory to write into");
                }
                if (last && a.isDirectory()) {
                    throw new FileSystemException(target.toString(), null, "is a directory; expected a regular file "
                            + "to replace");
                }
            }
        }
    }

    /**
     * Brings {@code dir} back to one complete set after crashed saves: finishes the moves of a
     * committed save, then deletes staging directories of uncommitted saves and temporary files
     * {@link AtomicFiles} left in {@code dir} and its sub-directories. A missing {@code dir} is
     * left missing.
     *
     * @throws FileSystemException if {@code .peft4j-commit} is not a directory (a link, a file)
     * @throws IOException if moving or deleting fails
     */
    public static void recover(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return;
        }
        if (Files.exists(dir.resolve(COMMIT), LinkOption.NOFOLLOW_LINKS)) {
            LOG.info("completing a save into {} that stopped after its commit", dir);
            rollForward(dir, StepListener.NONE);
        }
        List<Path> leftovers = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                String name = p.getFileName().toString();
                if (name.startsWith(STAGING) || AtomicFiles.isTemporary(name)) {
                    leftovers.add(p);
                } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                    try (DirectoryStream<Path> sub = Files.newDirectoryStream(p)) {
                        for (Path q : sub) {
                            if (AtomicFiles.isTemporary(q.getFileName().toString())) {
                                leftovers.add(q);
                            }
                        }
                    }
                }
            }
        }
        for (Path p : leftovers) {
            LOG.debug("removing {}, left by a save that did not finish", p);
            deleteTree(p, null);
        }
    }

    /** Moves every file of {@code .peft4j-commit} into place, then removes it. */
    private static void rollForward(Path dir, StepListener listener) throws IOException {
        Path committed = dir.resolve(COMMIT);
        BasicFileAttributes a = Files.readAttributes(committed, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (!a.isDirectory()) {
            throw new FileSystemException(committed.toString(), null, "is not a directory; a save in progress "
                    + "leaves a directory here, so this was made otherwise: remove it");
        }
        List<Path> touched = new ArrayList<>();
        for (Path f : stagedFiles(committed)) {
            Path rel = committed.relativize(f);
            Path target = dir;
            for (int i = 0; i < rel.getNameCount() - 1; i++) {
                target = AtomicFiles.childDirectory(target, rel.getName(i).toString());
            }
            target = target.resolve(rel.getFileName().toString());
            try {
                Files.move(f, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (NoSuchFileException e) {
                if (Files.exists(f, LinkOption.NOFOLLOW_LINKS)) {
                    throw e;
                }
                continue; // moved meanwhile by a concurrent recovery
            }
            if (!touched.contains(target.getParent())) {
                touched.add(target.getParent());
            }
            listener.reached(Step.FILE_MOVED);
        }
        for (Path d : touched) {
            syncDirectory(d);
        }
        listener.reached(Step.ALL_MOVED);
        deleteTree(committed, null);
        syncDirectory(dir);
    }

    /** The regular files under {@code root}, sorted; anything that is neither file nor directory is refused. */
    private static List<Path> stagedFiles(Path root) throws IOException {
        List<Path> files = new ArrayList<>();
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                if (!attrs.isRegularFile()) {
                    throw new FileSystemException(file.toString(), null, "is neither a regular file nor a "
                            + "directory; a save writes only files and directories");
                }
                files.add(file);
                return FileVisitResult.CONTINUE;
            }
        });
        files.sort(null);
        return files;
    }

    private static void force(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    private static void forceDirectories(Path root) throws IOException {
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null) {
                    throw e;
                }
                syncDirectory(d);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    /** Makes renames in {@code d} durable where the platform lets a directory be opened and forced. */
    private static void syncDirectory(Path d) {
        try (FileChannel ch = FileChannel.open(d, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | RuntimeException e) {
            LOG.debug("could not flush directory {}: {}", d, e.toString());
        }
    }

    /** Deletes a file, a link or a directory tree without following links; adds failures to {@code cause}. */
    private static void deleteTree(Path root, Throwable cause) throws IOException {
        try {
            if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
                return;
            }
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.deleteIfExists(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                    if (e != null) {
                        throw e;
                    }
                    Files.deleteIfExists(d);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException | RuntimeException e) {
            if (cause == null) {
                throw e;
            }
            cause.addSuppressed(e);
        }
    }
}
