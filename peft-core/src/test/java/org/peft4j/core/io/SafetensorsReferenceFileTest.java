package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Reads a file written by Hugging Face's reference implementation (safetensors 0.8.0, see
 * {@code make_reference_fixture.py} beside the fixture). It lays tensors out by dtype alignment,
 * not by name, and places a zero-element tensor at the same offset as a non-empty one.
 */
class SafetensorsReferenceFileTest {

    private static byte[] fixture() throws IOException {
        try (InputStream in = SafetensorsReferenceFileTest.class
                .getResourceAsStream("reference-written.safetensors")) {
            assertNotNull(in, "fixture reference-written.safetensors missing");
            return in.readAllBytes();
        }
    }

    @Test
    void fileWrittenByTheReferenceLibraryReadsWithExpectedValues() throws IOException {
        SafetensorsFile file = Safetensors.fromBytes(fixture());
        assertEquals(Map.of("format", "pt", "writer", "safetensors 0.8.0"), file.metadata());
        assertEquals(List.of("f64", "empty", "f32", "i32", "bf16", "f16", "u8"),
                List.copyOf(file.tensors().keySet()));
        assertArrayEquals(new float[] {1.0f, 2.0f, 3.0f, -4.5f}, file.get("f32").toFloats());
        assertArrayEquals(new long[] {2, 2}, file.get("f32").shape());
        assertArrayEquals(new float[] {1.0f, -2.5f, 65504f}, file.get("f16").toFloats());
        assertArrayEquals(new float[] {3.140625f}, file.get("bf16").toFloats());
        assertArrayEquals(new long[] {}, file.get("f64").shape());
        assertArrayEquals(new float[] {0.1f}, file.get("f64").toFloats());
        assertEquals(DType.I32, file.get("i32").dtype());
        assertArrayEquals(new byte[] {(byte) 0xF9, -1, -1, -1, -1, -1, -1, 0x7F},
                file.get("i32").rawBytes());
        assertArrayEquals(new byte[] {(byte) 255, 0}, file.get("u8").rawBytes());
        assertArrayEquals(new long[] {0, 3}, file.get("empty").shape());
    }

    @Test
    void rewritingTheReferenceFileKeepsEveryTensorBitForBit() throws IOException {
        SafetensorsFile original = Safetensors.fromBytes(fixture());
        SafetensorsFile again = Safetensors.fromBytes(
                Safetensors.toBytes(original.tensors(), original.metadata()));
        assertEquals(original.tensors(), again.tensors());
        assertEquals(original.metadata(), again.metadata());
    }
}
