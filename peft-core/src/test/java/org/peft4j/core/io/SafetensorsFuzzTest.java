package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import org.peft4j.core.AdapterFormatException;

/**
 * Coverage-guided fuzzing of the reader with Jazzer. In a normal build this runs in regression
 * mode on the seeds in {@code src/test/resources/org/peft4j/core/io/SafetensorsFuzzTestInputs/}
 * (valid files and broken ones, up to headers of thousands of entries);
 * {@code mvn -pl peft-core -Pfuzz test} fuzzes it for real.
 */
class SafetensorsFuzzTest {

    /** Messages quote names from the file shortened, so they stay short whatever the input. */
    private static final int MAX_MESSAGE_CHARS = 2000;
    /** Largest data buffer the virtual-file target reads. */
    private static final long MAX_DATA = 1 << 20;

    private static void assertBounded(AdapterFormatException e) {
        assertTrue(e.getMessage().length() <= MAX_MESSAGE_CHARS, () -> e.getMessage().length() + " characters: "
                + e.getMessage().substring(0, MAX_MESSAGE_CHARS));
    }

    /**
     * Any bytes either parse or fail with {@link AdapterFormatException} with a bounded message;
     * any other throwable (including OutOfMemoryError and StackOverflowError) is a finding. A file
     * that parses must also survive being written and read again with the same tensors.
     */
    @FuzzTest(maxDuration = "60s")
    void fromBytesThrowsOnlyAdapterFormatException(byte[] data) {
        SafetensorsFile file;
        try {
            file = Safetensors.fromBytes(data);
        } catch (AdapterFormatException expected) {
            assertBounded(expected);
            return;
        }
        SafetensorsFile again = Safetensors.fromBytes(
                Safetensors.toBytes(file.tensors(), file.metadata()));
        assertEquals(file.tensors(), again.tensors());
    }

    /**
     * Files far larger than the input: the first 5 bytes give a number of zero bytes (up to 1 TB)
     * that follow the rest of the input in a {@link VirtualFile}. Reading the header reads exactly
     * the length field and the header, whatever the header claims and however large the file; a
     * header that is valid leaves a data buffer the data reader then reads (when at most 1 MiB)
     * with the SHA-256 of the whole file.
     */
    @FuzzTest(maxDuration = "60s")
    void headerOfAnyFileSizeIsReadAlone(byte[] data) throws IOException, NoSuchAlgorithmException {
        if (data.length < 5) {
            return;
        }
        long zeros = ByteBuffer.wrap(Arrays.copyOf(data, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong() & 0xFF_FFFF_FFFFL;
        byte[] prefix = Arrays.copyOfRange(data, 5, data.length);
        VirtualFile file = new VirtualFile(prefix, prefix.length + zeros);
        SafetensorsHeader header;
        try {
            header = Safetensors.readHeader(file, "fuzz", 4096, "a fuzzed file may hold at most 4096");
        } catch (AdapterFormatException e) {
            assertBounded(e);
            assertTrue(file.bytesRead <= Math.min(file.size(), 8 + Safetensors.MAX_HEADER_LENGTH));
            return;
        }
        assertEquals(8 + header.headerLength(), file.bytesRead, "bytes read for the header");
        assertEquals(file.size(), 8 + header.headerLength() + header.dataLength());
        if (header.dataLength() > MAX_DATA) {
            return;
        }
        SafetensorsFile read = Safetensors.readData(file, header);
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(prefix, 0, (int) Math.min(prefix.length, file.size()));
        md.update(new byte[(int) Math.max(0, file.size() - prefix.length)]);
        assertEquals(HexFormat.of().formatHex(md.digest()), read.sha256());
        assertEquals(header.tensors().keySet(), read.tensors().keySet());
    }
}
