package org.peft4j.core.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.nd4j.shade.jackson.core.JsonFactory;
import org.nd4j.shade.jackson.core.JsonGenerator;
import org.nd4j.shade.jackson.core.JsonParser;
import org.nd4j.shade.jackson.core.JsonProcessingException;
import org.nd4j.shade.jackson.core.JsonToken;
import org.peft4j.core.AdapterFormatException;

/**
 * Reads and writes the <a href="https://huggingface.co/docs/safetensors">safetensors</a> format,
 * the tensor file of Hugging Face PEFT adapters ({@code adapter_model.safetensors}).
 *
 * <h2>Format</h2>
 * <pre>
 *   8 bytes    N, the header length, unsigned 64-bit little-endian
 *   N bytes    UTF-8 JSON object, padded with spaces:
 *              {"__metadata__":{"format":"pt", ...},
 *               "name":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}, ...}
 *   the rest   the data buffer: every tensor's elements, C order, little-endian;
 *              data_offsets are [begin, end) byte offsets into this buffer
 * </pre>
 *
 * <h2>Writing</h2>
 * Tensors are laid out contiguously in the map's iteration order and listed in the header in that
 * order, after {@code __metadata__}; {@code "format":"pt"} is added to the metadata unless the
 * caller gave a {@code format}. The header is compact JSON padded with spaces so that the data
 * buffer starts at a multiple of 8 bytes. The same input always gives the same bytes.
 *
 * <h2>Reading</h2>
 * Everything is checked before anything is returned, and every problem is reported as an
 * {@link AdapterFormatException} naming what was found and what was expected: the header length
 * (at most {@value #MAX_HEADER_LENGTH} bytes and within the file, checked before anything is
 * allocated from it), UTF-8, JSON syntax, the exact schema of each entry (only {@code dtype},
 * {@code shape}, {@code data_offsets}; no duplicate names or keys; a supported dtype; shape
 * entries non-negative integers, rank at most {@value #MAX_RANK}), overflow-checked byte sizes
 * that match the offsets, and offsets that tile the data buffer exactly from 0 to the end of the
 * file with no hole, overlap or trailing byte. {@code __metadata__}, if present, must map
 * strings to strings. Trailing whitespace in the header (padding) and empty tensors are
 * accepted. The header is parsed with a streaming JSON parser into a fixed schema, so no
 * input can make the parser recurse deeply or build arbitrary objects; no Java deserialization
 * is involved.
 *
 * <p>Thread-safety: stateless; all methods may be called concurrently.
 */
public final class Safetensors {

    /** Largest header accepted, as in the reference implementation. */
    public static final long MAX_HEADER_LENGTH = 100_000_000L;
    /** Largest file {@link #read(Path)} accepts: 2 GiB − 64 bytes (one Java array). */
    public static final long MAX_FILE_SIZE = (1L << 31) - 64;
    /** Largest tensor rank accepted; ND4J itself stops at 32. */
    public static final int MAX_RANK = 64;

    static final String METADATA_KEY = "__metadata__";
    private static final String DTYPE = "dtype";
    private static final String SHAPE = "shape";
    private static final String OFFSETS = "data_offsets";
    private static final int MAX_QUOTED = 80;

    /** Configured once, never changed: Jackson factories are thread-safe after configuration. */
    private static final JsonFactory JSON = new JsonFactory();

    private Safetensors() {
    }

    // ---------------------------------------------------------------- writing

    /**
     * Serializes tensors and metadata to safetensors bytes.
     *
     * @param tensors tensors by name, laid out in iteration order; names non-empty and not
     *     {@code __metadata__}
     * @param metadata string → string entries for {@code __metadata__}; may be {@code null} or
     *     empty; {@code "format":"pt"} is added first if it has no {@code format} key
     * @throws IllegalArgumentException for a null, empty or reserved name, a null tensor, a null
     *     metadata key or value, or a result larger than one Java array
     */
    public static byte[] toBytes(Map<String, SafeTensor> tensors, Map<String, String> metadata) {
        Objects.requireNonNull(tensors, "tensors");
        Map<String, String> meta = new LinkedHashMap<>();
        if (metadata == null || !metadata.containsKey("format")) {
            meta.put("format", "pt");
        }
        if (metadata != null) {
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                if (e.getKey() == null || e.getValue() == null) {
                    throw new IllegalArgumentException("metadata keys and values must not be null;"
                            + " found " + e.getKey() + " -> " + e.getValue());
                }
                meta.put(e.getKey(), e.getValue());
            }
        }
        List<Map.Entry<String, SafeTensor>> entries = new ArrayList<>(tensors.entrySet());
        for (Map.Entry<String, SafeTensor> e : entries) {
            String name = e.getKey();
            if (name == null || name.isEmpty()) {
                throw new IllegalArgumentException("tensor names must be non-empty; found "
                        + (name == null ? "null" : "an empty name"));
            }
            if (name.equals(METADATA_KEY)) {
                throw new IllegalArgumentException("'" + METADATA_KEY
                        + "' is reserved for metadata and cannot name a tensor");
            }
            if (e.getValue() == null) {
                throw new IllegalArgumentException("tensor '" + name + "' is null");
            }
        }

        byte[] header = headerJson(entries, meta);
        int pad = (8 - (8 + header.length) % 8) % 8;
        long headerLength = (long) header.length + pad;
        long total = 8 + headerLength;
        for (Map.Entry<String, SafeTensor> e : entries) {
            total += e.getValue().byteLength();
        }
        if (total > MAX_FILE_SIZE) {
            throw new IllegalArgumentException("safetensors file would be " + total
                    + " bytes; at most " + MAX_FILE_SIZE + " fit in one Java array");
        }
        byte[] out = new byte[(int) total];
        ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).putLong(0, headerLength);
        System.arraycopy(header, 0, out, 8, header.length);
        Arrays.fill(out, 8 + header.length, 8 + (int) headerLength, (byte) ' ');
        int pos = 8 + (int) headerLength;
        for (Map.Entry<String, SafeTensor> e : entries) {
            byte[] d = e.getValue().internalBytes();
            System.arraycopy(d, 0, out, pos, d.length);
            pos += d.length;
        }
        return out;
    }

    private static byte[] headerJson(List<Map.Entry<String, SafeTensor>> entries,
            Map<String, String> meta) {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(bos)) {
            g.writeStartObject();
            g.writeObjectFieldStart(METADATA_KEY);
            for (Map.Entry<String, String> m : meta.entrySet()) {
                g.writeStringField(m.getKey(), m.getValue());
            }
            g.writeEndObject();
            long offset = 0;
            for (Map.Entry<String, SafeTensor> e : entries) {
                SafeTensor t = e.getValue();
                g.writeObjectFieldStart(e.getKey());
                g.writeStringField(DTYPE, t.dtype().name());
                g.writeArrayFieldStart(SHAPE);
                for (long d : t.shape()) {
                    g.writeNumber(d);
                }
                g.writeEndArray();
                g.writeArrayFieldStart(OFFSETS);
                g.writeNumber(offset);
                offset += t.byteLength();
                g.writeNumber(offset);
                g.writeEndArray();
                g.writeEndObject();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing JSON to memory failed", e); // cannot happen
        }
        return bos.toByteArray();
    }

    /**
     * Writes tensors and metadata to {@code file} atomically (see {@link AtomicFiles}). The
     * arguments are validated and serialized before the file system is touched.
     *
     * @throws IllegalArgumentException as {@link #toBytes}
     * @throws IOException if writing fails; an existing file is then left unchanged
     */
    public static void write(Path file, Map<String, SafeTensor> tensors,
            Map<String, String> metadata) throws IOException {
        Objects.requireNonNull(file, "file");
        AtomicFiles.write(file, toBytes(tensors, metadata));
    }

    // ---------------------------------------------------------------- reading

    /**
     * Parses and validates safetensors bytes. The returned tensors hold copies of the data.
     *
     * @throws AdapterFormatException if the bytes are not a valid safetensors file (see the
     *     class documentation for every rule)
     */
    public static SafetensorsFile fromBytes(byte[] file) {
        Objects.requireNonNull(file, "file");
        return parse(file, "safetensors data");
    }

    /**
     * Reads and validates a safetensors file. The file is read once, whole, into memory.
     *
     * @throws AdapterFormatException if the content is not a valid safetensors file or the file
     *     is larger than {@value #MAX_FILE_SIZE} bytes; the message names the file
     * @throws IOException if reading fails (missing file, permissions, ...)
     */
    public static SafetensorsFile read(Path file) throws IOException {
        return parse(readBytes(file), file.toString());
    }

    /**
     * Parses and validates safetensors bytes read from {@code file} (by {@link #readBytes});
     * messages name the file.
     *
     * @throws AdapterFormatException if the bytes are not a valid safetensors file
     */
    public static SafetensorsFile fromBytes(byte[] bytes, Path file) {
        Objects.requireNonNull(bytes, "bytes");
        return parse(bytes, file.toString());
    }

    /**
     * The bytes of a file no larger than {@value #MAX_FILE_SIZE}, read once, whole: for a caller
     * that must hash exactly the bytes it parses ({@link #fromBytes(byte[], Path)}).
     *
     * @throws AdapterFormatException if the file is larger, or grew while it was read
     * @throws IOException if reading fails
     */
    public static byte[] readBytes(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        byte[] bytes;
        try (SeekableByteChannel ch = Files.newByteChannel(file)) {
            long size = ch.size();
            if (size > MAX_FILE_SIZE) {
                throw new AdapterFormatException(file + ": file is " + size
                        + " bytes; expected at most " + MAX_FILE_SIZE
                        + " (2 GiB - 64), the largest file read into memory at once");
            }
            bytes = new byte[(int) size];
            ByteBuffer buf = ByteBuffer.wrap(bytes);
            while (buf.hasRemaining()) {
                if (ch.read(buf) < 0) {
                    break; // the file shrank; the checks below will report what is missing
                }
            }
            if (buf.hasRemaining()) {
                bytes = Arrays.copyOf(bytes, buf.position());
            } else if (ch.read(ByteBuffer.allocate(1)) > 0) {
                throw new AdapterFormatException(file + ": file grew while it was being read"
                        + " (expected " + size + " bytes); is another process writing it?");
            }
        }
        return bytes;
    }

    /** One header entry, before the data is checked. */
    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    }

    private static SafetensorsFile parse(byte[] file, String source) {
        if (file.length < 8) {
            throw fail(source, "file too short: " + file.length + " bytes; expected at least 8"
                    + " (the header length field), truncated file?");
        }
        long n = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        if (n < 0 || n > MAX_HEADER_LENGTH) {
            throw fail(source, "header length " + Long.toUnsignedString(n)
                    + " exceeds the limit of " + MAX_HEADER_LENGTH + " bytes");
        }
        long available = file.length - 8L;
        if (n > available) {
            throw fail(source, "header length " + n + " is more than the " + available
                    + " bytes that follow the length field (truncated file?)");
        }
        int headerLength = (int) n;
        if (headerLength == 0 || file[8] != '{') {
            throw fail(source, "header must start with '{' but "
                    + (headerLength == 0 ? "is empty" : String.format(
                            "starts with byte 0x%02x", file[8] & 0xFF)));
        }
        String header = decodeUtf8(file, headerLength, source);
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> entries = parseHeader(header, metadata, source);

        // Sizes: count × dtype size, overflow-checked, must equal end - begin.
        for (Entry e : entries) {
            long nbytes;
            try {
                nbytes = Math.multiplyExact(SafeTensor.elementCount(e.shape),
                        e.dtype.byteSize());
            } catch (ArithmeticException ex) {
                throw fail(source, "tensor " + quote(e.name) + ": shape "
                        + Arrays.toString(e.shape) + " of " + e.dtype
                        + " overflows: its byte size exceeds 2^63-1; expected a size that fits"
                        + " the file");
            }
            if (nbytes != e.end - e.begin) {
                throw fail(source, "tensor " + quote(e.name) + ": dtype " + e.dtype + " and shape "
                        + Arrays.toString(e.shape) + " need " + nbytes + " bytes but data_offsets ["
                        + e.begin + ", " + e.end + "] span " + (e.end - e.begin) + " bytes");
            }
        }

        // Layout: sorted by begin, the tensors tile [0, data length) exactly.
        long dataLength = available - headerLength;
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : sorted) {
            if (e.begin > expected) {
                throw fail(source, "hole in the data buffer: bytes [" + expected + ", " + e.begin
                        + ") belong to no tensor; expected tensor " + quote(e.name)
                        + " to start at " + expected + ", not " + e.begin);
            }
            if (e.begin < expected) {
                throw fail(source, "tensors " + quote(previous.name) + " [" + previous.begin
                        + ", " + previous.end + ") and " + quote(e.name) + " [" + e.begin + ", "
                        + e.end + ") overlap; expected each tensor to start where the previous"
                        + " one ends");
            }
            expected = e.end;
            previous = e;
        }
        if (expected > dataLength) {
            throw fail(source, "tensor " + quote(previous.name) + " ends at byte " + expected
                    + " of the data buffer, beyond its end at " + dataLength
                    + " (truncated file?)");
        }
        if (expected < dataLength) {
            throw fail(source, (dataLength - expected) + " trailing bytes after the last tensor:"
                    + " tensors end at byte " + expected + " of the data buffer but it holds "
                    + dataLength + " bytes; expected the last tensor to end at the end of file");
        }

        int dataStart = 8 + headerLength;
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        for (Entry e : entries) {
            byte[] data = Arrays.copyOfRange(file, dataStart + (int) e.begin,
                    dataStart + (int) e.end);
            tensors.put(e.name, SafeTensor.ofOwnedBytes(e.dtype, e.shape, data));
        }
        return new SafetensorsFile(tensors, metadata);
    }

    private static String decodeUtf8(byte[] file, int headerLength, String source) {
        try {
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(file, 8, headerLength));
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw fail(source, "header is not valid UTF-8 (" + e + "); expected UTF-8 JSON");
        }
    }

    private static List<Entry> parseHeader(String header, Map<String, String> metadata,
            String source) {
        List<Entry> entries = new ArrayList<>();
        Set<String> names = new HashSet<>();
        boolean sawMetadata = false;
        try (JsonParser p = JSON.createParser(header)) {
            JsonToken t = p.nextToken();
            if (t != JsonToken.START_OBJECT) {
                throw fail(source, "header must be a JSON object, found " + describe(t));
            }
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.getCurrentName();
                JsonToken value = p.nextToken();
                if (METADATA_KEY.equals(name)) {
                    if (sawMetadata) {
                        throw fail(source, "duplicate key " + quote(METADATA_KEY)
                                + " in header; expected it at most once");
                    }
                    sawMetadata = true;
                    parseMetadata(p, value, metadata, source);
                } else {
                    if (name.isEmpty()) {
                        throw fail(source, "empty tensor name in header; expected non-empty names");
                    }
                    if (!names.add(name)) {
                        throw fail(source, "duplicate tensor name " + quote(name)
                                + " in header; expected unique names");
                    }
                    entries.add(parseEntry(p, name, value, source));
                }
            }
            if (t != JsonToken.END_OBJECT) {
                throw fail(source, "header JSON ended early: found " + describe(t)
                        + ", expected a tensor name or '}'");
            }
            JsonToken after = p.nextToken();
            if (after != null) {
                throw fail(source, "found " + describe(after) + " after the header object;"
                        + " expected only space padding");
            }
        } catch (AdapterFormatException e) {
            throw e;
        } catch (JsonProcessingException e) {
            throw new AdapterFormatException(source + ": header is not valid JSON: "
                    + e.getOriginalMessage() + " at " + location(e), e);
        } catch (IOException | RuntimeException e) {
            throw new AdapterFormatException(source + ": header is not valid JSON: " + e, e);
        }
        return entries;
    }

    private static void parseMetadata(JsonParser p, JsonToken value, Map<String, String> metadata,
            String source) throws IOException {
        if (value != JsonToken.START_OBJECT) {
            throw fail(source, quote(METADATA_KEY) + " must be a JSON object of string values,"
                    + " found " + describe(value));
        }
        JsonToken t;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
            String key = p.getCurrentName();
            JsonToken v = p.nextToken();
            if (v != JsonToken.VALUE_STRING) {
                throw fail(source, quote(METADATA_KEY) + " value for key " + quote(key)
                        + " must be a string, found " + describe(v));
            }
            if (metadata.put(key, p.getText()) != null) {
                throw fail(source, "duplicate key " + quote(key) + " in " + quote(METADATA_KEY)
                        + "; expected unique keys");
            }
        }
        if (t != JsonToken.END_OBJECT) {
            throw fail(source, "malformed " + quote(METADATA_KEY) + ": found " + describe(t));
        }
    }

    private static Entry parseEntry(JsonParser p, String name, JsonToken value, String source)
            throws IOException {
        if (value != JsonToken.START_OBJECT) {
            throw fail(source, "entry " + quote(name) + " must be a JSON object with dtype, shape"
                    + " and data_offsets, found " + describe(value));
        }
        DType dtype = null;
        long[] shape = null;
        long[] offsets = null;
        JsonToken t;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
            String key = p.getCurrentName();
            JsonToken v = p.nextToken();
            switch (key) {
                case DTYPE -> {
                    if (dtype != null) {
                        throw duplicateKey(source, name, key);
                    }
                    if (v != JsonToken.VALUE_STRING) {
                        throw fail(source, "tensor " + quote(name) + ": dtype must be a string,"
                                + " found " + describe(v));
                    }
                    String s = p.getText();
                    dtype = DType.fromName(s);
                    if (dtype == null) {
                        throw fail(source, "tensor " + quote(name) + " has unknown dtype "
                                + quote(s) + "; expected one of " + DType.supportedNames());
                    }
                }
                case SHAPE -> {
                    if (shape != null) {
                        throw duplicateKey(source, name, key);
                    }
                    shape = readLongArray(p, v, name, SHAPE, MAX_RANK, source);
                }
                case OFFSETS -> {
                    if (offsets != null) {
                        throw duplicateKey(source, name, key);
                    }
                    offsets = readLongArray(p, v, name, OFFSETS, 2, source);
                    if (offsets.length != 2) {
                        throw fail(source, "tensor " + quote(name) + ": data_offsets must be two"
                                + " integers [begin, end], found " + offsets.length);
                    }
                    if (offsets[0] > offsets[1]) {
                        throw fail(source, "tensor " + quote(name) + ": data_offsets begin "
                                + offsets[0] + " > end " + offsets[1] + "; expected begin <= end");
                    }
                }
                default -> throw fail(source, "tensor " + quote(name) + " has unknown key "
                        + quote(key) + "; expected only dtype, shape and data_offsets");
            }
        }
        if (t != JsonToken.END_OBJECT) {
            throw fail(source, "malformed entry " + quote(name) + ": found " + describe(t));
        }
        for (Object[] required : new Object[][] {{DTYPE, dtype}, {SHAPE, shape},
                {OFFSETS, offsets}}) {
            if (required[1] == null) {
                throw fail(source, "tensor " + quote(name) + " lacks the required key "
                        + quote((String) required[0]) + "; expected dtype, shape and"
                        + " data_offsets");
            }
        }
        return new Entry(name, dtype, shape, offsets[0], offsets[1]);
    }

    /** A JSON array of at most {@code max} non-negative 64-bit integers. */
    private static long[] readLongArray(JsonParser p, JsonToken v, String name, String key,
            int max, String source) throws IOException {
        String what = "tensor " + quote(name) + ": " + key;
        if (v != JsonToken.START_ARRAY) {
            throw fail(source, what + " must be an array of non-negative integers, found "
                    + describe(v));
        }
        long[] values = new long[Math.min(max, 8)];
        int count = 0;
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            if (t != JsonToken.VALUE_NUMBER_INT) {
                throw fail(source, what + " must be an array of non-negative integers, found "
                        + describe(t));
            }
            // Check the digit count before asking for the value: Jackson would otherwise parse
            // an arbitrarily long number as a BigInteger (quadratic time).
            if (p.getTextLength() > 20 || p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                throw fail(source, what + " has an integer that does not fit in 64 bits;"
                        + " expected at most " + Long.MAX_VALUE);
            }
            long x = p.getLongValue();
            if (x < 0) {
                throw fail(source, what + " has negative value " + x
                        + "; expected non-negative integers");
            }
            if (count == max) {
                throw fail(source, what + " has more than " + max + " entries");
            }
            if (count == values.length) {
                values = Arrays.copyOf(values, Math.min(max, count * 2));
            }
            values[count++] = x;
        }
        return Arrays.copyOf(values, count);
    }

    private static AdapterFormatException duplicateKey(String source, String name, String key) {
        return fail(source, "tensor " + quote(name) + " has duplicate key " + quote(key)
                + "; expected each of dtype, shape and data_offsets once");
    }

    private static AdapterFormatException fail(String source, String message) {
        return new AdapterFormatException(source + ": " + message);
    }

    private static String describe(JsonToken t) {
        if (t == null) {
            return "end of header";
        }
        return switch (t) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "an array";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT -> "an integer";
            case VALUE_NUMBER_FLOAT -> "a non-integer number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> t.toString();
        };
    }

    private static String location(JsonProcessingException e) {
        return e.getLocation() == null ? "unknown position"
                : "header character " + e.getLocation().getCharOffset();
    }

    /** A name for a message: quoted, control characters replaced, long names shortened. */
    static String quote(String s) {
        StringBuilder b = new StringBuilder("'");
        int limit = Math.min(s.length(), MAX_QUOTED);
        for (int i = 0; i < limit; i++) {
            char c = s.charAt(i);
            b.append(Character.isISOControl(c) ? '?' : c);
        }
        if (s.length() > MAX_QUOTED) {
            b.append("...");
        }
        return b.append('\'').toString();
    }
}
