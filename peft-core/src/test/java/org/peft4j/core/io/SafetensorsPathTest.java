package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.core.AdapterFormatException;

class SafetensorsPathTest {

    @TempDir
    Path dir;

    @Test
    void writeThenReadRoundTripsThroughAFile() throws IOException {
        Path file = dir.resolve("adapter_model.safetensors");
        Map<String, SafeTensor> tensors =
                Map.of("w", SafeTensor.ofFloats(new long[] {1, 2}, new float[] {3f, 4f}));
        Safetensors.write(file, tensors, Map.of("peft_type", "LORA"));
        assertArrayEquals(Safetensors.toBytes(tensors, Map.of("peft_type", "LORA")),
                Files.readAllBytes(file));
        SafetensorsFile read = Safetensors.read(file);
        assertEquals(tensors, read.tensors());
        assertEquals(Map.of("format", "pt", "peft_type", "LORA"), read.metadata());
    }

    @Test
    void missingFileIsAnIoException() {
        assertThrows(NoSuchFileException.class, () -> Safetensors.read(dir.resolve("none")));
    }

    @Test
    void badContentIsAnAdapterFormatExceptionNamingTheFile() throws IOException {
        Path file = Files.write(dir.resolve("broken.safetensors"), new byte[] {1, 2, 3});
        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> Safetensors.read(file));
        assertTrue(e.getMessage().startsWith(file.toString() + ": file too short"),
                e.getMessage());
    }

    @Test
    void fileMuchLargerThanItsHeaderDescribesIsRefusedFromTheHeaderAlone() throws IOException {
        // The header describes 448 bytes of data; the file is 1.9 GB (sparse: no disk written).
        byte[] head = TestFiles.withHeader("{" + TestFiles.entry("w", "F32", "[112]", 0, 448) + "}",
                448);
        Path file = dir.resolve("huge.safetensors");
        Files.write(file, head);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(1_900_000_000L);
        }
        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> Safetensors.readHeader(file));
        assertTrue(e.getMessage().contains("trailing bytes after the last tensor: tensors end at"
                + " byte 448 of the data buffer"), e.getMessage());
        assertThrows(AdapterFormatException.class, () -> Safetensors.read(file));
    }
}
