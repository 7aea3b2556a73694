package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.peft4j.core.io.TestFiles.entry;
import static org.peft4j.core.io.TestFiles.withClaimedLength;
import static org.peft4j.core.io.TestFiles.withHeader;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.peft4j.core.AdapterFormatException;

class SafetensorsReaderTest {

    private static final Map<String, SafeTensor> ONE_TENSOR =
            Map.of("w", SafeTensor.ofFloats(new long[] {2}, new float[] {1.0f, -2.0f}));

    private static AdapterFormatException rejects(byte[] file, String phrase) {
        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> Safetensors.fromBytes(file));
        assertTrue(e.getMessage().contains(phrase),
                () -> "expected the message to contain \"" + phrase + "\" but was: "
                        + e.getMessage());
        return e;
    }

    // ------------------------------------------------------------ valid input

    @Test
    void f32TensorsRoundTripExactly() {
        float[] values = {0f, -0f, 1.5f, -2.25e-38f, Float.MIN_VALUE, Float.MAX_VALUE,
            Float.NEGATIVE_INFINITY, Float.NaN, 3.14159265f, 1e-7f, -123456.78f, 42f};
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        tensors.put("layer.0.loraA", SafeTensor.ofFloats(new long[] {3, 4}, values));
        tensors.put("scalar", SafeTensor.ofFloats(new long[] {}, new float[] {7f}));
        SafetensorsFile file = Safetensors.fromBytes(Safetensors.toBytes(tensors, Map.of()));
        SafeTensor back = file.get("layer.0.loraA");
        assertEquals(DType.F32, back.dtype());
        assertArrayEquals(new long[] {3, 4}, back.shape());
        float[] read = back.toFloats();
        for (int i = 0; i < values.length; i++) {
            assertEquals(Float.floatToRawIntBits(values[i]), Float.floatToRawIntBits(read[i]),
                    "element " + i);
        }
        assertEquals(tensors, file.tensors());
        assertEquals(1, file.get("scalar").elementCount());
        assertEquals(List.of("layer.0.loraA", "scalar"), List.copyOf(file.tensors().keySet()));
    }

    @Test
    void handBuiltF16AndBf16BuffersConvertExactly() {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 65504 (largest finite) = 0x7BFF,
        // 2^-24 (smallest subnormal) = 0x0001, -inf = 0xFC00. BF16: 3.140625 = 0x4049.
        byte[] f16 = {0x00, 0x3C, 0x00, (byte) 0xC1, (byte) 0xFF, 0x7B, 0x01, 0x00, 0x00,
            (byte) 0xFC};
        byte[] bf16 = {0x49, 0x40};
        String header = "{" + entry("h", "F16", "[5]", 0, 10) + ","
                + entry("b", "BF16", "[1]", 10, 12) + "}";
        byte[] data = new byte[12];
        System.arraycopy(f16, 0, data, 0, 10);
        System.arraycopy(bf16, 0, data, 10, 2);
        SafetensorsFile file = Safetensors.fromBytes(
                withHeader(header.getBytes(StandardCharsets.UTF_8), data));
        assertArrayEquals(new float[] {1.0f, -2.5f, 65504f, 0x1p-24f, Float.NEGATIVE_INFINITY},
                file.get("h").toFloats());
        assertArrayEquals(new float[] {3.140625f}, file.get("b").toFloats());
        assertArrayEquals(f16, file.get("h").rawBytes());
    }

    @Test
    void paddingSpacesAndOtherTrailingWhitespaceInHeaderAreAccepted() {
        String header = "{" + entry("w", "U8", "[1]", 0, 1) + "}     \n\t  ";
        SafetensorsFile file = Safetensors.fromBytes(withHeader(header, 1));
        assertEquals(1, file.get("w").elementCount());
    }

    @Test
    void tensorsWithZeroElementsAreAccepted() {
        // Two empty tensors at offset 0, a real one, and an empty one at the very end.
        String header = "{" + entry("e1", "F32", "[0,3]", 0, 0) + ","
                + entry("e2", "F64", "[0]", 0, 0) + "," + entry("w", "I16", "[2]", 0, 4) + ","
                + entry("e3", "BOOL", "[5,0]", 4, 4) + "}";
        SafetensorsFile file = Safetensors.fromBytes(withHeader(header, 4));
        assertEquals(0, file.get("e1").elementCount());
        assertArrayEquals(new long[] {0, 3}, file.get("e1").shape());
        assertEquals(0, file.get("e3").rawBytes().length);
        assertEquals(0, file.get("e1").toFloats().length);
        assertEquals(List.of("e1", "e2", "w", "e3"), List.copyOf(file.tensors().keySet()));
    }

    @Test
    void headerOrderIsKeptEvenWhenOffsetsRunTheOtherWay() {
        String header = "{" + entry("late", "U8", "[1]", 1, 2) + ","
                + entry("early", "U8", "[1]", 0, 1) + "}";
        byte[] file = withHeader(header.getBytes(StandardCharsets.UTF_8), new byte[] {10, 20});
        SafetensorsFile parsed = Safetensors.fromBytes(file);
        assertEquals(List.of("late", "early"), List.copyOf(parsed.tensors().keySet()));
        assertArrayEquals(new byte[] {20}, parsed.get("late").rawBytes());
        assertArrayEquals(new byte[] {10}, parsed.get("early").rawBytes());
    }

    @Test
    void emptyHeaderObjectWithoutMetadataIsAnEmptyFile() {
        SafetensorsFile file = Safetensors.fromBytes(withHeader("{}", 0));
        assertTrue(file.tensors().isEmpty());
        assertTrue(file.metadata().isEmpty());
    }

    @Test
    void missingTensorNameListsTheNamesThatExist() {
        SafetensorsFile file = Safetensors.fromBytes(Safetensors.toBytes(ONE_TENSOR, Map.of()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> file.get("nope"));
        assertTrue(e.getMessage().contains("'nope'") && e.getMessage().contains("[w]"),
                e.getMessage());
    }

    @Test
    void returnedTensorsAreCopiesThatCallersCannotChange() {
        byte[] bytes = Safetensors.toBytes(ONE_TENSOR, Map.of());
        SafetensorsFile file = Safetensors.fromBytes(bytes);
        Arrays.fill(bytes, (byte) 0);
        file.get("w").rawBytes()[0] = 9;
        file.get("w").shape()[0] = 9;
        assertArrayEquals(new float[] {1.0f, -2.0f}, file.get("w").toFloats());
        assertArrayEquals(new long[] {2}, file.get("w").shape());
        assertThrows(UnsupportedOperationException.class, () -> file.tensors().clear());
        assertThrows(UnsupportedOperationException.class, () -> file.metadata().clear());
    }

    // ------------------------------------------------------------ length field

    @Test
    void fileShorterThanEightBytesIsRejected() {
        rejects(new byte[] {1, 0, 0, 0, 0}, "file too short: 5 bytes");
    }

    @Test
    void headerClaimingTwoToTheSixtyBytesIsRejectedBeforeAllocating() {
        rejects(withClaimedLength(1L << 60, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]),
                "header length 1152921504606846976 exceeds the limit of 100000000");
        rejects(withClaimedLength(-1L, new byte[0], new byte[0]),
                "header length 18446744073709551615 exceeds the limit");
    }

    @Test
    void headerLongerThanTheFileIsRejectedAsTruncated() {
        byte[] valid = Safetensors.toBytes(ONE_TENSOR, Map.of());
        byte[] cut = Arrays.copyOf(valid, 50);
        rejects(cut, "truncated file");
        rejects(withClaimedLength(100_000_000L, "{}".getBytes(StandardCharsets.UTF_8),
                new byte[0]), "more than the 2 bytes that follow");
    }

    @Test
    void truncatedDataBufferIsRejected() {
        byte[] valid = Safetensors.toBytes(ONE_TENSOR, Map.of());
        rejects(Arrays.copyOf(valid, valid.length - 3), "beyond its end at 5 (truncated file?)");
    }

    // ------------------------------------------------------------ header text

    @Test
    void headerNotStartingWithBraceIsRejected() {
        rejects(withHeader("[1,2]", 0), "must start with '{' (after optional whitespace) but starts"
                + " with '[' (U+005B)");
        rejects(withHeader("\uFEFF{}", 0), "starts with U+FEFF"); // a byte-order mark is not JSON space
        rejects(withHeader("\u000B{}", 0), "starts with U+000B"); // nor is a vertical tab
        rejects(withHeader("", 0), "must start with '{' (after optional whitespace) but is empty");
        rejects(withHeader(" \n ", 0), "but is empty");
    }

    @Test
    void leadingJsonWhitespaceIsAcceptedAsTheReferenceReaderAcceptsIt() {
        // safetensors' Rust reader hands the header to serde_json, which skips space, tab, CR and LF.
        String header = " \t\r\n{" + entry("w", "U8", "[1]", 0, 1) + "}";
        SafetensorsFile file = Safetensors.fromBytes(withHeader(header, 1));
        assertArrayEquals(new byte[] {0}, file.get("w").rawBytes());
    }

    @Test
    void nullMetadataIsAcceptedAsNoMetadata() {
        // The reference reader's __metadata__ is an Option: null deserializes to None.
        String header = "{\"__metadata__\":null," + entry("w", "U8", "[1]", 0, 1) + "}";
        SafetensorsFile file = Safetensors.fromBytes(withHeader(header, 1));
        assertTrue(file.metadata().isEmpty());
        assertEquals(List.of("w"), List.copyOf(file.tensors().keySet()));
        rejects(withHeader("{\"__metadata__\":null,\"__metadata__\":null}", 0),
                "duplicate key '__metadata__'");
    }

    @Test
    void invalidUtf8InHeaderIsRejected() {
        byte[] header = {'{', '"', (byte) 0xC3, (byte) 0x28, '"', ':', '1', '}'};
        rejects(withHeader(header, new byte[0]), "not valid UTF-8");
    }

    @Test
    void flippedByteInHeaderJsonIsRejectedAsInvalidJson() {
        byte[] valid = Safetensors.toBytes(ONE_TENSOR, Map.of());
        String text = new String(valid, StandardCharsets.ISO_8859_1);
        int colon = text.indexOf("\"w\":") + 3;
        valid[colon] ^= 0x01; // ':' (0x3A) becomes ';' (0x3B)
        rejects(valid, "header is not valid JSON");
    }

    @Test
    void unterminatedAndTrailingJsonAreRejected() {
        rejects(withHeader("{\"w\":{\"dtype\":\"F32\"", 0), "header is not valid JSON");
        rejects(withHeader("{}{}", 0), "found an object after the header object");
    }

    @Test
    void deeplyNestedJsonIsRejectedWithoutRecursion() {
        String deep = "{\"w\":{\"shape\":" + "[".repeat(2_000_000) + "}}";
        assertTimeoutPreemptively(Duration.ofSeconds(10),
                () -> rejects(withHeader(deep, 0), "shape must be an array of non-negative"
                        + " integers, found an array"));
        String deepMeta = "{\"__metadata__\":{\"k\":" + "{\"a\":".repeat(1_000_000) + "}";
        assertTimeoutPreemptively(Duration.ofSeconds(10),
                () -> rejects(withHeader(deepMeta, 0), "value for key 'k' must be a string"));
    }

    // ------------------------------------------------------------ schema

    @Test
    void entryThatIsNotAnObjectIsRejected() {
        rejects(withHeader("{\"w\":[0,4]}", 4), "entry 'w' must be a JSON object");
    }

    @Test
    void unknownKeyInTensorEntryIsRejected() {
        String header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
                + "\"offsets\":[0,1]}}";
        rejects(withHeader(header, 1), "unknown key 'offsets'; expected only dtype, shape and"
                + " data_offsets");
    }

    @Test
    void missingOrDuplicateKeysAreRejected() {
        rejects(withHeader("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1),
                "lacks the required key 'shape'");
        rejects(withHeader("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[1],"
                + "\"data_offsets\":[0,1]}}", 1), "duplicate key 'dtype'");
        rejects(withHeader("{" + entry("w", "U8", "[1]", 0, 1) + ","
                + entry("w", "U8", "[1]", 1, 2) + "}", 2), "duplicate tensor name 'w'");
        rejects(withHeader("{" + entry("", "U8", "[1]", 0, 1) + "}", 1), "empty tensor name");
    }

    @Test
    void unknownDtypeIsRejected() {
        rejects(withHeader("{" + entry("w", "F8_E4M3", "[1]", 0, 1) + "}", 1),
                "unknown dtype 'F8_E4M3'; expected one of F64, F32, F16, BF16");
        rejects(withHeader("{" + entry("w", "f32", "[1]", 0, 4) + "}", 4), "unknown dtype 'f32'");
    }

    @Test
    void wrongJsonTypesAreRejected() {
        rejects(withHeader("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
                "dtype must be a string, found an integer");
        rejects(withHeader("{" + entry("w", "U8", "\"1\"", 0, 1) + "}", 1),
                "shape must be an array of non-negative integers, found a string");
        rejects(withHeader("{" + entry("w", "U8", "[1.0]", 0, 1) + "}", 1),
                "shape must be an array of non-negative integers, found a non-integer number");
        rejects(withHeader("{" + entry("w", "U8", "[true]", 0, 1) + "}", 1), "found a boolean");
        rejects(withHeader("{" + entry("w", "U8", "[-1]", 0, 1) + "}", 1),
                "shape has negative value -1");
        rejects(withHeader("{" + entry("w", "U8", "[18446744073709551616]", 0, 1) + "}", 1),
                "does not fit in 64 bits");
        rejects(withHeader("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{}}}", 1),
                "data_offsets must be an array of non-negative integers, found an object");
        rejects(withHeader("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1),
                "data_offsets must be two integers [begin, end], found 1");
        rejects(withHeader("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}",
                1), "data_offsets has more than 2 entries");
        rejects(withHeader("{" + entry("w", "U8", "[0]", 8, 4) + "}", 8),
                "data_offsets begin 8 > end 4");
    }

    @Test
    void hugeIntegerLiteralIsRejectedQuickly() {
        String header = "{" + entry("w", "U8", "[" + "9".repeat(5_000_000) + "]", 0, 1) + "}";
        assertTimeoutPreemptively(Duration.ofSeconds(10),
                () -> rejects(withHeader(header, 1), "does not fit in 64 bits"));
    }

    @Test
    void rankAboveTheLimitIsRejected() {
        String shape = "[" + "1,".repeat(Safetensors.MAX_RANK) + "1]";
        rejects(withHeader("{" + entry("w", "U8", shape, 0, 1) + "}", 1),
                "shape has more than 64 entries");
    }

    @Test
    void metadataMustMapStringsToStrings() {
        rejects(withHeader("{\"__metadata__\":[\"pt\"]}", 0),
                "'__metadata__' must be a JSON object of string values, found an array");
        rejects(withHeader("{\"__metadata__\":{\"format\":\"pt\",\"n\":3}}", 0),
                "value for key 'n' must be a string, found an integer");
        rejects(withHeader("{\"__metadata__\":{},\"__metadata__\":{}}", 0),
                "duplicate key '__metadata__'");
    }

    // ------------------------------------------------------------ sizes and layout

    @Test
    void elementCountTimesSizeOverflowIsRejected() {
        long big = 1L << 40;
        rejects(withHeader("{" + entry("w", "F32", "[" + big + "," + big + "]", 0, 4) + "}", 4),
                "shape [1099511627776, 1099511627776] of F32 overflows");
        // The count fits in a long, but count × 4 bytes does not.
        rejects(withHeader("{" + entry("w", "F32", "[" + (1L << 62) + "]", 0, 4) + "}", 4),
                "overflows");
    }

    @Test
    void offsetsThatDisagreeWithShapeAndDtypeAreRejected() {
        rejects(withHeader("{" + entry("w", "F32", "[2]", 0, 12) + "}", 12),
                "dtype F32 and shape [2] need 8 bytes but data_offsets [0, 12] span 12 bytes");
    }

    @Test
    void overlappingTensorsAreRejected() {
        String header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12)
                + "}";
        rejects(withHeader(header, 12), "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
        String same = "{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[4]", 0, 4)
                + "}";
        rejects(withHeader(same, 4), "overlap");
    }

    @Test
    void holeBetweenTensorsIsRejected() {
        String header = "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12)
                + "}";
        rejects(withHeader(header, 12), "hole in the data buffer: bytes [4, 8) belong to no tensor");
        rejects(withHeader("{" + entry("a", "U8", "[1]", 3, 4) + "}", 4),
                "hole in the data buffer: bytes [0, 3)");
    }

    @Test
    void trailingBytesAfterTheLastTensorAreRejected() {
        byte[] valid = Safetensors.toBytes(ONE_TENSOR, Map.of());
        byte[] longer = Arrays.copyOf(valid, valid.length + 4);
        rejects(longer, "4 trailing bytes after the last tensor");
        rejects(withHeader("{}", 1), "1 trailing bytes");
    }

    @Test
    void tensorBeyondTheEndOfFileIsRejected() {
        rejects(withHeader("{" + entry("w", "I64", "[1]", 0, 8) + "}", 4),
                "tensor 'w' ends at byte 8 of the data buffer, beyond its end at 4");
    }

    @Test
    void lengthFieldIsLittleEndian() {
        byte[] file = Safetensors.toBytes(ONE_TENSOR, Map.of());
        long n = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        ByteBuffer.wrap(file).order(ByteOrder.BIG_ENDIAN).putLong(0, n);
        rejects(file, "exceeds the limit");
    }
}
