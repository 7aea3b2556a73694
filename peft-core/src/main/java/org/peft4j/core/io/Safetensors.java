package org.peft4j.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.shade.jackson.core.JsonParser;
import org.nd4j.shade.jackson.databind.DeserializationFeature;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.nd4j.shade.jackson.databind.node.ArrayNode;
import org.nd4j.shade.jackson.databind.node.JsonNodeFactory;
import org.nd4j.shade.jackson.databind.node.ObjectNode;
import org.peft4j.core.AdapterFormatException;

/**
 * Reads and writes the safetensors format: an 8-byte little-endian header length {@code N}, {@code N}
 * bytes of UTF-8 JSON ({@code {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}}, offsets relative to the data buffer), then the data buffer of
 * raw little-endian tensors.
 *
 * <p>Writing lays tensors out contiguously in the map's order, pads the header with spaces so the
 * data starts at a multiple of 8, and is deterministic. Reading applies the reference reader's
 * rules before returning anything: header at most 100,000,000 bytes and within the file (checked
 * before allocating), starting with {@code {}, valid UTF-8 JSON without duplicate keys, known
 * dtypes, non-negative integer shapes, byte lengths equal to element count × dtype size
 * (overflow-checked), tensors tiling the data buffer from 0 without holes or overlaps, and the
 * buffer ending at the end of the file. Every violation is an {@link AdapterFormatException} that
 * says what was found and what was expected. No Java object deserialization is involved.
 *
 * <p>Thread-safety: stateless.
 */
public final class Safetensors {

    /** The reference reader's limit on the JSON header. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;
    /** Largest file this reader loads (it reads the file into one array). */
    public static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 64L;

    private static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final Set<String> ENTRY_KEYS = Set.of("dtype", "shape", "data_offsets");

    private Safetensors() {
    }

    /** The bytes of a safetensors file holding {@code tensors} (in map order) and {@code metadata}. */
    public static byte[] toBytes(Map<String, SafeTensor> tensors, Map<String, String> metadata) {
        ObjectNode header = JsonNodeFactory.instance.objectNode();
        Map<String, String> meta = new LinkedHashMap<>();
        if (metadata != null) {
            metadata.forEach((k, v) -> meta.put(java.util.Objects.requireNonNull(k, "metadata key"),
                    java.util.Objects.requireNonNull(v, "metadata value of " + k)));
        }
        meta.putIfAbsent("format", "pt");
        ObjectNode metaNode = header.putObject("__metadata__");
        meta.forEach(metaNode::put);
        long offset = 0;
        for (Map.Entry<String, SafeTensor> e : tensors.entrySet()) {
            String name = e.getKey();
            if (name == null || name.isEmpty() || "__metadata__".equals(name)) {
                throw new IllegalArgumentException("tensor names must be non-empty and not __metadata__; got " + name);
            }
            SafeTensor t = e.getValue();
            ObjectNode entry = header.putObject(name);
            entry.put("dtype", t.dtype().name());
            ArrayNode shape = entry.putArray("shape");
            for (long s : t.shape()) {
                shape.add(s);
            }
            ArrayNode offsets = entry.putArray("data_offsets");
            offsets.add(offset);
            offset += t.byteLength();
            offsets.add(offset);
        }
        byte[] json;
        try {
            json = MAPPER.writeValueAsBytes(header);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write safetensors header", e);
        }
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(8 + padded + offset)).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(padded);
        out.put(json);
        for (int i = json.length; i < padded; i++) {
            out.put((byte) ' ');
        }
        for (SafeTensor t : tensors.values()) {
            out.put(t.rawBytesNoCopy());
        }
        return out.array();
    }

    /** Writes a safetensors file atomically (see {@link AtomicFiles#write}). */
    public static void write(Path file, Map<String, SafeTensor> tensors, Map<String, String> metadata) throws IOException {
        AtomicFiles.write(file, toBytes(tensors, metadata));
    }

    /**
     * Reads and validates a safetensors file.
     *
     * @throws AdapterFormatException if the content breaks a rule of the format
     * @throws IOException if the file cannot be read
     */
    public static SafetensorsFile read(Path file) throws IOException {
        long size = Files.size(file);
        if (size > MAX_FILE_BYTES) {
            throw new AdapterFormatException(file + " is " + size + " bytes; this reader loads files of at most "
                    + MAX_FILE_BYTES + " bytes");
        }
        try {
            return fromBytes(Files.readAllBytes(file));
        } catch (AdapterFormatException e) {
            throw new AdapterFormatException(file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Parses and validates the bytes of a safetensors file.
     *
     * @throws AdapterFormatException if they break a rule of the format
     */
    public static SafetensorsFile fromBytes(byte[] file) {
        if (file.length < 8) {
            throw new AdapterFormatException("truncated safetensors file: " + file.length
                    + " bytes, fewer than the 8-byte header length");
        }
        long n = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (n < 0 || n > MAX_HEADER_BYTES) {
            throw new AdapterFormatException("header length " + Long.toUnsignedString(n) + " exceeds the limit of "
                    + MAX_HEADER_BYTES + " bytes");
        }
        if (n > file.length - 8L) {
            throw new AdapterFormatException("truncated safetensors file: header claims " + n + " bytes but only "
                    + (file.length - 8L) + " follow");
        }
        int headerLen = (int) n;
        if (headerLen == 0 || file[8] != '{') {
            throw new AdapterFormatException("header must start with '{'");
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(file, 8, headerLen)).toString();
        } catch (CharacterCodingException e) {
            throw new AdapterFormatException("header is not valid UTF-8");
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (IOException e) {
            throw new AdapterFormatException("header is not valid JSON: " + e.getMessage().split("\n")[0]);
        }
        if (root == null || !root.isObject()) {
            throw new AdapterFormatException("header must be a JSON object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> entries = new ArrayList<>();
        Iterator<Map.Entry<String, JsonNode>> it = root.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> f = it.next();
            if ("__metadata__".equals(f.getKey())) {
                readMetadata(f.getValue(), metadata);
            } else {
                entries.add(entry(f.getKey(), f.getValue()));
            }
        }
        long dataLen = file.length - 8L - headerLen;
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong((Entry e) -> e.begin).thenComparingLong(e -> e.end));
        long expectedBegin = 0;
        for (Entry e : sorted) {
            if (e.begin != expectedBegin) {
                throw new AdapterFormatException("tensor \"" + e.name + "\" starts at " + e.begin + " but the previous "
                        + "tensor ends at " + expectedBegin + (e.begin > expectedBegin ? " (a hole in the data buffer)"
                        : " (overlapping tensors)"));
            }
            expectedBegin = e.end;
        }
        if (expectedBegin != dataLen) {
            throw new AdapterFormatException("the tensors cover " + expectedBegin + " bytes but the data buffer holds "
                    + dataLen + " bytes" + (expectedBegin < dataLen ? " (trailing bytes)" : " (truncated file)"));
        }
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        int base = 8 + headerLen;
        for (Entry e : entries) {
            byte[] bytes = java.util.Arrays.copyOfRange(file, base + (int) e.begin, base + (int) e.end);
            tensors.put(e.name, SafeTensor.ofBytes(e.dtype, e.shape, bytes));
        }
        return new SafetensorsFile(tensors, metadata);
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    }

    private static void readMetadata(JsonNode node, Map<String, String> out) {
        if (!node.isObject()) {
            throw new AdapterFormatException("__metadata__ must be an object of strings");
        }
        Iterator<Map.Entry<String, JsonNode>> it = node.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> m = it.next();
            if (!m.getValue().isTextual()) {
                throw new AdapterFormatException("__metadata__ value of \"" + m.getKey() + "\" must be a string; got "
                        + m.getValue().getNodeType());
            }
            out.put(m.getKey(), m.getValue().textValue());
        }
    }

    private static Entry entry(String name, JsonNode node) {
        if (!node.isObject()) {
            throw new AdapterFormatException("entry of tensor \"" + name + "\" must be an object");
        }
        Iterator<String> keys = node.fieldNames();
        while (keys.hasNext()) {
            String k = keys.next();
            if (!ENTRY_KEYS.contains(k)) {
                throw new AdapterFormatException("tensor \"" + name + "\" has unknown key \"" + k
                        + "\"; expected dtype, shape, data_offsets");
            }
        }
        JsonNode dt = node.get("dtype");
        if (dt == null || !dt.isTextual()) {
            throw new AdapterFormatException("tensor \"" + name + "\" needs a string dtype");
        }
        DType dtype;
        try {
            dtype = DType.valueOf(dt.textValue());
        } catch (IllegalArgumentException e) {
            throw new AdapterFormatException("tensor \"" + name + "\" has unknown dtype \"" + dt.textValue()
                    + "\"; known: " + java.util.Arrays.toString(DType.values()));
        }
        JsonNode sh = node.get("shape");
        if (sh == null || !sh.isArray()) {
            throw new AdapterFormatException("tensor \"" + name + "\" needs a shape array");
        }
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new AdapterFormatException("tensor \"" + name + "\" has a shape that is not a list of non-negative "
                        + "integers: " + sh);
            }
            shape[i] = d.longValue();
        }
        JsonNode off = node.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber()
                || !off.get(1).isIntegralNumber() || !off.get(0).canConvertToLong() || !off.get(1).canConvertToLong()) {
            throw new AdapterFormatException("tensor \"" + name + "\" needs data_offsets [begin, end] of two integers");
        }
        long begin = off.get(0).longValue();
        long end = off.get(1).longValue();
        if (begin < 0 || end < begin) {
            throw new AdapterFormatException("tensor \"" + name + "\" has data_offsets [" + begin + ", " + end
                    + "]; expected 0 <= begin <= end");
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(SafeTensor.elementCount(shape), (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new AdapterFormatException("tensor \"" + name + "\" shape " + sh + " overflows: its byte size does not "
                    + "fit in 64 bits");
        }
        if (bytes != end - begin) {
            throw new AdapterFormatException("tensor \"" + name + "\" " + dtype + " " + sh + " needs " + bytes
                    + " bytes but data_offsets span " + (end - begin));
        }
        return new Entry(name, dtype, shape, begin, end);
    }
}
