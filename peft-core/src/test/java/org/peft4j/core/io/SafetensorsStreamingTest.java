package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.peft4j.core.io.TestFiles.entry;
import static org.peft4j.core.io.TestFiles.withHeader;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.core.AdapterFormatException;

/** The two-step reader: header first (checked, no data touched), then the data in chunks, hashed. */
class SafetensorsStreamingTest {

    @TempDir
    Path dir;

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    @Test
    void headerDescribingFarLessDataThanTheFileIsRefusedAfterReadingOnlyTheHeader() {
        byte[] head = withHeader("{" + entry("w", "F32", "[112]", 0, 448) + "}", 0);
        VirtualFile file = new VirtualFile(head, 1_900_000_000L);
        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> Safetensors.readHeader(file, "big.safetensors", Integer.MAX_VALUE, null));
        assertTrue(e.getMessage().startsWith("big.safetensors: ") && e.getMessage().contains(
                "trailing bytes after the last tensor"), e.getMessage());
        assertTrue(e.getMessage().contains("tensors end at byte 448 of the data buffer"), e.getMessage());
        assertEquals(head.length, file.bytesRead, "only the length field and the header are read");
    }

    @Test
    void headerIsReadWithoutTouchingTheData() throws Exception {
        byte[] head = withHeader("{" + entry("big", "U8", "[1500000000]", 0, 1_500_000_000L) + "}", 0);
        VirtualFile file = new VirtualFile(head, head.length + 1_500_000_000L);
        SafetensorsHeader h = Safetensors.readHeader(file, "f", Integer.MAX_VALUE, null);
        assertEquals(1_500_000_000L, h.tensors().get("big").byteLength());
        assertEquals(1_500_000_000L, h.dataLength());
        assertEquals(head.length, file.bytesRead);
    }

    @Test
    void dataIsReadInOffsetOrderWithTheWholeFileHashed() throws Exception {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        float[] big = new float[900_000]; // 3.6 MB: several read chunks
        for (int i = 0; i < big.length; i++) {
            big[i] = i * 0.5f - 7f;
        }
        tensors.put("small", SafeTensor.ofFloats(new long[] {2}, new float[] {1f, 2f}));
        tensors.put("big", SafeTensor.ofFloats(new long[] {900, 1000}, big));
        tensors.put("empty", SafeTensor.ofFloats(new long[] {0}, new float[0]));
        byte[] bytes = Safetensors.toBytes(tensors, Map.of("k", "v"));
        Path file = Files.write(dir.resolve("a.safetensors"), bytes);

        SafetensorsHeader header = Safetensors.readHeader(file);
        assertEquals(List.of("small", "big", "empty"), List.copyOf(header.tensors().keySet()));
        assertArrayEquals(new long[] {900, 1000}, header.tensors().get("big").shape());
        assertEquals(Map.of("format", "pt", "k", "v"), header.metadata());
        SafetensorsFile read = Safetensors.readData(file, header);
        assertEquals(tensors, read.tensors());
        assertEquals(sha256(bytes), read.sha256());
        assertEquals(sha256(bytes), Safetensors.fromBytes(bytes).sha256());
        assertEquals(sha256(bytes), Safetensors.read(file).sha256());
    }

    @Test
    void dataOfAFileReplacedAfterItsHeaderWasReadIsRefused() throws Exception {
        Path file = dir.resolve("a.safetensors");
        Map<String, SafeTensor> first = Map.of("w", SafeTensor.ofFloats(new long[] {2}, new float[] {1f, 2f}));
        Safetensors.write(file, first, Map.of());
        SafetensorsHeader header = Safetensors.readHeader(file);

        // Same size, another header (a different name of the same length).
        Safetensors.write(file, Map.of("v", SafeTensor.ofFloats(new long[] {2}, new float[] {1f, 2f})),
                Map.of());
        AdapterFormatException changed = assertThrows(AdapterFormatException.class,
                () -> Safetensors.readData(file, header));
        assertTrue(changed.getMessage().contains("its header changed since it was read"),
                changed.getMessage());

        Safetensors.write(file, Map.of("w", SafeTensor.ofFloats(new long[] {3}, new float[] {1f, 2f, 3f})),
                Map.of());
        AdapterFormatException resized = assertThrows(AdapterFormatException.class,
                () -> Safetensors.readData(file, header));
        assertTrue(resized.getMessage().contains("but its header was read from a file of"),
                resized.getMessage());

        // New data under the same header is read, and the digest shows it.
        Safetensors.write(file, Map.of("w", SafeTensor.ofFloats(new long[] {2}, new float[] {5f, 6f})), Map.of());
        SafetensorsFile now = Safetensors.readData(file, header);
        assertArrayEquals(new float[] {5f, 6f}, now.get("w").toFloats());
        assertEquals(sha256(Files.readAllBytes(file)), now.sha256());
    }

    @Test
    void headerListingMoreTensorsThanTheCallerAcceptsIsRefusedWithAShortMessage() throws Exception {
        // 500,000 empty tensors with long names: a 30 MB header.
        StringBuilder json = new StringBuilder("{");
        String pad = "x".repeat(20);
        for (int i = 0; i < 500_000; i++) {
            json.append(i == 0 ? "" : ",").append(entry("unknown." + pad + i, "F32", "[0]", 0, 0));
        }
        byte[] bytes = withHeader(json.append('}').toString(), 0);
        assertTrue(bytes.length > 30_000_000, "header of " + bytes.length + " bytes");
        Path file = Files.write(dir.resolve("many.safetensors"), bytes);

        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> Safetensors.readHeader(file, 96, "an adapter for this base holds at most 96"));
        assertEquals(file + ": header lists more than 96 tensors; an adapter for this base holds at most 96",
                e.getMessage());
        // Without a limit the header is valid; its tensors are all there.
        assertEquals(500_000, Safetensors.readHeader(file).tensors().size());
    }

    @Test
    void missingTensorMessageListsABoundedNumberOfNames() {
        StringBuilder json = new StringBuilder("{");
        for (int i = 0; i < 1000; i++) {
            json.append(i == 0 ? "" : ",").append(entry("t" + i, "F32", "[0]", 0, 0));
        }
        SafetensorsFile f = Safetensors.fromBytes(withHeader(json.append('}').toString(), 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.get("nope"));
        assertTrue(e.getMessage().endsWith("its 1000 tensors are: [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10,"
                + " t11, t12, t13, t14, t15, t16, t17, t18, t19, and 980 more]"), e.getMessage());
    }

    @Test
    void headerHashedForTheChangeCheckIncludesItsPadding() throws Exception {
        // Changing only a padding space after the JSON changes the header bytes: refused.
        byte[] bytes = withHeader(("{" + entry("w", "U8", "[1]", 0, 1) + "}  ")
                .getBytes(StandardCharsets.UTF_8), new byte[] {9});
        Path file = Files.write(dir.resolve("p.safetensors"), bytes);
        SafetensorsHeader header = Safetensors.readHeader(file);
        bytes[bytes.length - 2] = '\n';
        Files.write(file, bytes);
        assertThrows(AdapterFormatException.class, () -> Safetensors.readData(file, header));
    }

    @Test
    void closedOrUnreadableFilesAreIoExceptions() {
        assertThrows(IOException.class, () -> Safetensors.readHeader(dir.resolve("none")));
        assertThrows(IOException.class, () -> Safetensors.readHeader(dir));
    }
}
