package org.peft4j.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.HexFormat;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes whole files atomically: a reader sees either the old contents or the new ones, never a
 * mix, and a failure (exception, full disk, crash) leaves an existing file as it was.
 *
 * <p>How: the bytes go to a temporary file {@code .<name>.tmp-<random>} in the target's directory,
 * are flushed to the device ({@link FileChannel#force(boolean) force(true)}), and the temporary
 * file is then renamed over the target with {@link StandardCopyOption#ATOMIC_MOVE} (falling back
 * to a plain replacing move on file systems without atomic rename). The directory is then
 * flushed where the platform allows it. On any failure the temporary file is deleted.
 *
 * <p>Thread-safety: stateless; concurrent writes to different targets are independent.
 * Concurrent writes to the same target each succeed atomically and the last rename wins.
 */
public final class AtomicFiles {

    private static final Logger LOG = LoggerFactory.getLogger(AtomicFiles.class);
    private static final int CHUNK = 1 << 20;
    private static final String TEMPORARY_INFIX = ".tmp-";
    private static final Pattern TEMPORARY = Pattern.compile("\\..+\\.tmp-[0-9a-f]{16}");

    /**
     * Lets tests stand between the writer and the temporary file's channel, e.g. to fail after
     * some bytes have been written. Production code uses {@link #NONE}.
     */
    @FunctionalInterface
    interface WriteInterceptor {
        /** No interception: write straight to the file. */
        WriteInterceptor NONE = channel -> channel;

        /** The channel the bytes are written through; it must write to {@code fileChannel}. */
        WritableByteChannel wrap(WritableByteChannel fileChannel) throws IOException;
    }

    private AtomicFiles() {
    }

    /**
     * Replaces (or creates) {@code target} with exactly {@code bytes}, atomically.
     *
     * @throws IOException if the directory does not exist or is not writable, the target is a
     *     directory, or writing fails; {@code target} is then unchanged and no temporary file
     *     remains
     */
    public static void write(Path target, byte[] bytes) throws IOException {
        write(target, bytes, WriteInterceptor.NONE);
    }

    static void write(Path target, byte[] bytes, WriteInterceptor interceptor)
            throws IOException {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(bytes, "bytes");
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir == null || abs.getFileName() == null) {
            throw new IOException("cannot write " + target + ": it has no parent directory");
        }
        if (Files.isDirectory(abs)) {
            throw new FileSystemException(abs.toString(), null,
                    "is a directory; expected a regular file to replace");
        }
        Path tmp = dir.resolve("." + abs.getFileName() + TEMPORARY_INFIX
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong()));
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                WritableByteChannel out = interceptor.wrap(ch);
                ByteBuffer buf = ByteBuffer.wrap(bytes);
                while (buf.hasRemaining()) {
                    int end = Math.min(buf.limit(), buf.position() + CHUNK);
                    ByteBuffer slice = buf.duplicate().limit(end);
                    while (slice.hasRemaining()) {
                        out.write(slice);
                    }
                    buf.position(end);
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE,
                        StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                LOG.debug("atomic move not supported for {}; using a replacing move", abs);
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException | RuntimeException | Error e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException | RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        syncDirectory(dir);
    }

    /**
     * {@code dir/name} as a directory to write into, created (with {@code dir}) if missing. A
     * symbolic link at {@code dir/name} is refused, not followed and not replaced: whatever a link
     * planted in a save directory points to is never written, and a link the user made on purpose is
     * never deleted. (A link as a file target is safe: {@link #write} renames over the link itself.)
     *
     * @param name one path element: no separator, not {@code .} or {@code ..}
     * @throws IllegalArgumentException if {@code name} is not one plain path element
     * @throws FileSystemException if {@code dir/name} is a symbolic link or exists and is not a
     *     directory
     * @throws IOException if the directories cannot be created
     */
    public static Path childDirectory(Path dir, String name) throws IOException {
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(name, "name");
        Path element = dir.getFileSystem().getPath(name);
        if (name.isEmpty() || element.getNameCount() != 1 || element.isAbsolute() || name.equals(".")
                || name.equals("..") || !element.getFileName().toString().equals(name)) {
            throw new IllegalArgumentException("\"" + name + "\" is not one plain path element");
        }
        Path child = dir.resolve(name);
        Files.createDirectories(dir);
        try {
            Files.createDirectory(child);
        } catch (FileAlreadyExistsException e) {
            // checked below, without following a link
        }
        BasicFileAttributes a = Files.readAttributes(child, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (a.isSymbolicLink()) {
            throw new FileSystemException(child.toString(), null, "is a symbolic link; adapters are written only "
                    + "inside the save directory and links there are not followed: remove the link, or save elsewhere");
        }
        if (!a.isDirectory()) {
            throw new FileSystemException(child.toString(), null, "exists and is not a directory; expected a "
                    + "directory to write into");
        }
        return child;
    }

    /**
     * Whether {@code fileName} is the name of a temporary file {@link #write} creates
     * ({@code .<name>.tmp-<16 hex digits>}): one that remains after a crash can be deleted.
     */
    public static boolean isTemporary(String fileName) {
        return TEMPORARY.matcher(fileName).matches();
    }

    /** Makes the rename durable where the platform lets a directory be opened and forced. */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | RuntimeException e) {
            LOG.debug("could not flush directory {} after rename: {}", dir, e.toString());
        }
    }
}
