package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class SafetensorsWriterTest {

    /**
     * The expected bytes are written out by hand from the format description. The same 104 bytes
     * were also produced independently by Hugging Face's reference library (safetensors 0.8.0,
     * {@code safetensors.serialize({"w": float32 [1.0, -2.0]}, {"format": "pt"})}); no
     * maintained Java safetensors reader exists on Maven Central that works without a native
     * engine, so that cross-check and {@link SafetensorsReferenceFileTest} stand in for one.
     */
    @Test
    void tinyF32TensorSerializesToHandComputedBytes() {
        String json = "{\"__metadata__\":{\"format\":\"pt\"},"            // 32 bytes
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"; // 53 bytes
        assertEquals(85, json.length());
        // 8 + 85 = 93 -> padded with 3 spaces to 96, so N = 88 = 0x58.
        byte[] expected = new byte[104];
        int i = 0;
        for (byte b : new byte[] {0x58, 0, 0, 0, 0, 0, 0, 0}) {
            expected[i++] = b;
        }
        for (byte b : json.getBytes(StandardCharsets.US_ASCII)) {
            expected[i++] = b;
        }
        expected[i++] = ' ';
        expected[i++] = ' ';
        expected[i++] = ' ';
        // 1.0f = 0x3F800000, -2.0f = 0xC0000000, little-endian
        for (byte b : new byte[] {0, 0, (byte) 0x80, 0x3F, 0, 0, 0, (byte) 0xC0}) {
            expected[i++] = b;
        }
        assertEquals(104, i);

        byte[] actual = Safetensors.toBytes(
                Map.of("w", SafeTensor.ofFloats(new long[] {2}, new float[] {1.0f, -2.0f})),
                Map.of());
        assertArrayEquals(expected, actual);
    }

    @Test
    void sameInputGivesIdenticalBytesOnSecondSave() {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        tensors.put("b", SafeTensor.ofFloats(new long[] {2, 2}, new float[] {1, 2, 3, 4}));
        tensors.put("a", SafeTensor.ofBytes(DType.I8, new long[] {3}, new byte[] {1, -2, 3}));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("zeta", "1");
        meta.put("alpha", "2");
        byte[] first = Safetensors.toBytes(tensors, meta);
        byte[] second = Safetensors.toBytes(new LinkedHashMap<>(tensors), new LinkedHashMap<>(meta));
        assertArrayEquals(first, second);
    }

    @Test
    void tensorsAreLaidOutInMapOrderAndHeaderIsPaddedToEightBytes() {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        tensors.put("second", SafeTensor.ofBytes(DType.U8, new long[] {3}, new byte[] {7, 8, 9}));
        tensors.put("first", SafeTensor.ofFloats(new long[] {1}, new float[] {5f}));
        byte[] bytes = Safetensors.toBytes(tensors, null);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, (8 + n) % 8);
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(header.indexOf("\"second\"") < header.indexOf("\"first\""), header);
        assertTrue(header.contains("\"second\":{\"dtype\":\"U8\",\"shape\":[3],"
                + "\"data_offsets\":[0,3]}"), header);
        assertTrue(header.contains("\"first\":{\"dtype\":\"F32\",\"shape\":[1],"
                + "\"data_offsets\":[3,7]}"), header);
        assertEquals(8 + n + 7, bytes.length);
        assertArrayEquals(new byte[] {7, 8, 9}, java.util.Arrays.copyOfRange(bytes,
                (int) (8 + n), (int) (8 + n + 3)));
    }

    @Test
    void formatPtIsAddedUnlessCallerGaveAFormat() {
        byte[] defaulted = Safetensors.toBytes(Map.of(), Map.of("k", "v"));
        assertEquals(Map.of("format", "pt", "k", "v"),
                Safetensors.fromBytes(defaulted).metadata());
        byte[] given = Safetensors.toBytes(Map.of(), Map.of("format", "np"));
        assertEquals(Map.of("format", "np"), Safetensors.fromBytes(given).metadata());
    }

    @Test
    void metadataStringsAreEscapedAndSurviveRoundTrip() {
        Map<String, String> meta = Map.of("note", "quote \" backslash \\ newline \n ünïcødé ✓");
        byte[] bytes = Safetensors.toBytes(Map.of(), meta);
        assertEquals(meta.get("note"), Safetensors.fromBytes(bytes).metadata().get("note"));
    }

    @Test
    void emptyOrReservedTensorNamesAreRejected() {
        SafeTensor t = SafeTensor.ofFloats(new long[] {1}, new float[] {1});
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
                () -> Safetensors.toBytes(Map.of("", t), Map.of()));
        assertTrue(empty.getMessage().contains("non-empty"), empty.getMessage());
        IllegalArgumentException reserved = assertThrows(IllegalArgumentException.class,
                () -> Safetensors.toBytes(Map.of("__metadata__", t), Map.of()));
        assertTrue(reserved.getMessage().contains("reserved"), reserved.getMessage());
    }

    @Test
    void nullMetadataValueIsRejected() {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("k", null);
        assertThrows(IllegalArgumentException.class, () -> Safetensors.toBytes(Map.of(), meta));
    }
}
