package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.peft4j.core.AdapterFormatException;

/** The safetensors reader and writer against hand-built bytes and the format's rules. */
class SafetensorsTest {

    /** A file from a header string and a data buffer, exactly as the format lays it out. */
    private static byte[] file(String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        return b.array();
    }

    private static AdapterFormatException rejects(byte[] bytes, String phrase) {
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Safetensors.fromBytes(bytes));
        assertTrue(e.getMessage().contains(phrase), "expected \"" + phrase + "\" in: " + e.getMessage());
        return e;
    }

    @Test
    void writesTheGoldenBytesOfATinyTensor() {
        Map<String, SafeTensor> t = new LinkedHashMap<>();
        t.put("w", SafeTensor.ofFloats(new long[] {2}, new float[] {1.0f, -2.0f}));
        byte[] actual = Safetensors.toBytes(t, Map.of());
        // header: 85 bytes of JSON padded with 3 spaces to 88 (8 + 88 = 96, a multiple of 8)
        String json = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertEquals(85, json.length());
        byte[] expected = new byte[8 + 88 + 8];
        expected[0] = 88; // little-endian u64 header length
        byte[] j = json.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(j, 0, expected, 8, j.length);
        java.util.Arrays.fill(expected, 8 + j.length, 8 + 88, (byte) ' ');
        // 1.0f = 0x3F800000, -2.0f = 0xC0000000, little-endian
        byte[] data = {0x00, 0x00, (byte) 0x80, 0x3F, 0x00, 0x00, 0x00, (byte) 0xC0};
        System.arraycopy(data, 0, expected, 96, 8);
        assertArrayEquals(expected, actual);
        SafetensorsFile back = Safetensors.fromBytes(actual);
        assertArrayEquals(new float[] {1.0f, -2.0f}, back.get("w").toFloats());
        assertEquals("pt", back.metadata().get("format"));
    }

    @Test
    void readsHalfAndBfloat16Exactly() {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 65504 = 0x7BFF; BF16: 3.140625 = 0x4049
        byte[] f16 = {0x00, 0x3C, 0x00, (byte) 0xC1, (byte) 0xFF, 0x7B};
        byte[] bf16 = {0x49, 0x40};
        String header = "{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[6,8]}}";
        SafetensorsFile f = Safetensors.fromBytes(file(header, concat(f16, bf16)));
        assertArrayEquals(new float[] {1.0f, -2.5f, 65504f}, f.get("a").toFloats());
        assertArrayEquals(new float[] {3.140625f}, f.get("b").toFloats());
        assertEquals((short) 0x3C00, SafeTensor.floatToHalf(1.0f));
        assertEquals((short) 0x7BFF, SafeTensor.floatToHalf(65504f));
        assertEquals((short) 0x7C00, SafeTensor.floatToHalf(65520f), "rounds to infinity past the largest half");
        assertEquals(5.9604645e-8f, SafeTensor.halfToFloat((short) 0x0001), "smallest subnormal");
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @Test
    void roundTripIsExactAndDeterministic() {
        Map<String, SafeTensor> t = new LinkedHashMap<>();
        Random r = new Random(1);
        float[] v = new float[35];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        t.put("x", SafeTensor.ofFloats(new long[] {5, 7}, v));
        t.put("empty", SafeTensor.ofFloats(new long[] {0, 3}, new float[0]));
        t.put("codes", SafeTensor.ofBytes(DType.U8, new long[] {3}, new byte[] {1, 2, (byte) 255}));
        byte[] once = Safetensors.toBytes(t, Map.of("k", "v"));
        assertArrayEquals(once, Safetensors.toBytes(t, Map.of("k", "v")));
        SafetensorsFile back = Safetensors.fromBytes(once);
        assertEquals(t, back.tensors());
        assertEquals(java.util.List.of("x", "empty", "codes"), java.util.List.copyOf(back.tensors().keySet()));
        assertEquals("v", back.metadata().get("k"));
    }

    @Test
    void malformedFilesAreRefusedWithTheRuleTheyBreak() {
        byte[] ok = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]);
        Safetensors.fromBytes(ok);
        rejects(new byte[5], "fewer than the 8-byte header length");
        rejects(java.util.Arrays.copyOf(ok, ok.length - 1), "truncated file");
        byte[] huge = ok.clone();
        ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 60);
        rejects(huge, "exceeds the limit of 100000000 bytes");
        byte[] longer = ok.clone();
        ByteBuffer.wrap(longer).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 5000);
        rejects(longer, "header claims 5000 bytes");
        rejects(file("[{\"a\":1}]", new byte[0]), "header must start with '{'");
        byte[] flipped = ok.clone();
        flipped[12] ^= 0x5A;
        rejects(flipped, "not valid JSON");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[12]), "trailing bytes");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]), "overlapping tensors");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]), "a hole");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}}",
                new byte[8]), "overflows");
        rejects(file("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]), "unknown dtype \"F33\"");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", new byte[8]), "non-negative integers");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]), "needs 12 bytes");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", new byte[8]), "unknown key");
        rejects(file("{\"__metadata__\":{\"format\":1}}", new byte[0]), "must be a string");
        rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{}}", new byte[8]), "not valid JSON");
        byte[] badUtf8 = file("{\"\u00e9\":1}", new byte[0]);
        badUtf8[10] = (byte) 0xC3;
        badUtf8[11] = (byte) 0x28;
        rejects(badUtf8, "not valid UTF-8");
    }

    @Test
    void randomDamageOnlyEverRaisesTheDeclaredException() {
        Map<String, SafeTensor> t = new LinkedHashMap<>();
        t.put("a", SafeTensor.ofFloats(new long[] {3, 2}, new float[] {1, 2, 3, 4, 5, 6}));
        t.put("b", SafeTensor.ofBytes(DType.F16, new long[] {2}, new byte[] {0, 0x3C, 0, 0x3C}));
        byte[] good = Safetensors.toBytes(t, Map.of());
        Random r = new Random(2024);
        for (int i = 0; i < 20_000; i++) {
            byte[] bad = good.clone();
            switch (r.nextInt(3)) {
                case 0:
                    bad[r.nextInt(bad.length)] ^= (byte) (1 << r.nextInt(8));
                    break;
                case 1:
                    bad = java.util.Arrays.copyOf(bad, r.nextInt(bad.length));
                    break;
                default:
                    bad[r.nextInt(8)] = (byte) r.nextInt(256);
            }
            try {
                Safetensors.fromBytes(bad);
            } catch (AdapterFormatException expected) {
                // the only exception allowed
            }
        }
    }

    @Test
    void aFailedWriteLeavesTheOldFileAndNoTemporaryFile(@TempDir Path dir) throws IOException {
        Path target = dir.resolve("adapter_model.safetensors");
        byte[] old = Safetensors.toBytes(Map.of("a", SafeTensor.ofFloats(new long[] {1}, new float[] {1})), Map.of());
        AtomicFiles.write(target, old);
        byte[] big = new byte[1 << 20];
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.write(target, big, done -> {
            if (done > 100_000) {
                throw new IOException("disk full (simulated)");
            }
        }));
        assertEquals("disk full (simulated)", e.getMessage());
        assertArrayEquals(old, Files.readAllBytes(target));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(java.util.List.of(target), s.toList());
        }
    }

    @Test
    void loadPathUsesNoJavaDeserialization() throws IOException {
        Path src = Path.of("src/main/java/org/peft4j/core");
        try (Stream<Path> files = Files.walk(src)) {
            for (Path p : files.filter(f -> f.toString().endsWith(".java")).toList()) {
                String code = Files.readString(p);
                assertTrue(!code.contains("ObjectInputStream") && !code.contains("readObject("), p + " deserializes objects");
            }
        }
    }
}
