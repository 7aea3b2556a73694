package org.peft4j.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes a file so that readers see either the old content or the whole new content: the bytes go
 * to a temporary file in the same directory, are forced to disk, then the temporary file is moved
 * over the target (atomically where the file system allows). On any failure the temporary file is
 * deleted and the target is left as it was.
 *
 * <p>Thread-safety: stateless; concurrent writers of one target end with one of their contents.
 */
public final class AtomicFiles {

    /** Called after each chunk written to the temporary file (tests use it to fail mid-write). */
    interface ChunkListener {
        void written(long bytesSoFar) throws IOException;
    }

    private static final int CHUNK = 1 << 16;

    private AtomicFiles() {
    }

    public static void write(Path target, byte[] bytes) throws IOException {
        write(target, bytes, null);
    }

    static void write(Path target, byte[] bytes, ChunkListener listener) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = dir.resolve("." + target.getFileName() + ".tmp-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
        boolean moved = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                long done = 0;
                while (done < bytes.length) {
                    int len = (int) Math.min(CHUNK, bytes.length - done);
                    ByteBuffer b = ByteBuffer.wrap(bytes, (int) done, len);
                    while (b.hasRemaining()) {
                        ch.write(b);
                    }
                    done += len;
                    if (listener != null) {
                        listener.written(done);
                    }
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } finally {
            if (!moved) {
                Files.deleteIfExists(tmp);
            }
        }
    }
}
