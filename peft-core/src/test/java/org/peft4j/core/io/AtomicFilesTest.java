package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AtomicFilesTest {

    @TempDir
    Path dir;

    private List<Path> listDir() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.sorted().toList();
        }
    }

    /** Passes {@code limit} bytes to the file, then fails like a full disk would. */
    private static AtomicFiles.WriteInterceptor failAfter(long limit) {
        return ch -> new WritableByteChannel() {
            long written;

            @Override
            public int write(ByteBuffer src) throws IOException {
                long room = limit - written;
                if (room <= 0) {
                    throw new IOException("simulated failure after " + written + " bytes");
                }
                ByteBuffer part = src.duplicate();
                part.limit((int) Math.min(src.limit(), src.position() + room));
                int n = ch.write(part);
                src.position(src.position() + n);
                written += n;
                return n;
            }

            @Override
            public boolean isOpen() {
                return ch.isOpen();
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    }

    @Test
    void writeCreatesThenReplacesTheFileAndLeavesNoTempFile() throws IOException {
        Path target = dir.resolve("adapter_config.json");
        AtomicFiles.write(target, new byte[] {1, 2, 3});
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(target));
        AtomicFiles.write(target, new byte[] {4});
        assertArrayEquals(new byte[] {4}, Files.readAllBytes(target));
        assertEquals(List.of(target), listDir());
    }

    @Test
    void failureMidWriteLeavesOldFileByteIdenticalAndNoTempFile() throws IOException {
        Path target = dir.resolve("adapter_model.safetensors");
        byte[] old = new byte[3000];
        for (int i = 0; i < old.length; i++) {
            old[i] = (byte) (i * 31);
        }
        Files.write(target, old);
        byte[] replacement = new byte[5000];
        java.util.Arrays.fill(replacement, (byte) 7);

        // Check the hook really lets bytes through before failing: a temp file with 1000
        // bytes must exist at the moment of failure.
        long[] tempSizeAtFailure = {-1};
        AtomicFiles.WriteInterceptor observing = ch -> {
            WritableByteChannel inner = failAfter(1000).wrap(ch);
            return new WritableByteChannel() {
                @Override
                public int write(ByteBuffer src) throws IOException {
                    try {
                        return inner.write(src);
                    } catch (IOException e) {
                        try (Stream<Path> s = Files.list(dir)) {
                            Path tmp = s.filter(p -> p.getFileName().toString()
                                    .startsWith(".adapter_model.safetensors.tmp-"))
                                    .findFirst().orElseThrow();
                            tempSizeAtFailure[0] = Files.size(tmp);
                        }
                        throw e;
                    }
                }

                @Override
                public boolean isOpen() {
                    return inner.isOpen();
                }

                @Override
                public void close() throws IOException {
                    inner.close();
                }
            };
        };

        IOException e = assertThrows(IOException.class,
                () -> AtomicFiles.write(target, replacement, observing));
        assertTrue(e.getMessage().contains("simulated failure after 1000 bytes"), e.getMessage());
        assertEquals(1000, tempSizeAtFailure[0]);
        assertArrayEquals(old, Files.readAllBytes(target));
        assertEquals(List.of(target), listDir());
    }

    @Test
    void failureBeforeAnyFileExistedLeavesNothingBehind() throws IOException {
        Path target = dir.resolve("new.bin");
        assertThrows(IOException.class, () -> AtomicFiles.write(target, new byte[10],
                failAfter(0)));
        assertEquals(List.of(), listDir());
    }

    @Test
    void targetThatIsADirectoryIsRefused() throws IOException {
        Path sub = Files.createDirectory(dir.resolve("sub"));
        assertThrows(IOException.class, () -> AtomicFiles.write(sub, new byte[1]));
        assertTrue(Files.isDirectory(sub));
        assertEquals(List.of(sub), listDir());
    }

    @Test
    void missingParentDirectoryIsAnIoException() {
        assertThrows(IOException.class,
                () -> AtomicFiles.write(dir.resolve("no/such/dir/f.bin"), new byte[1]));
    }
}
