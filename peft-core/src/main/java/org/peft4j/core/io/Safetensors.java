package org.peft4j.core.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PushbackReader;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
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
 * Reads and writes the <a href="https://github.com/huggingface/safetensors">safetensors</a> format,
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
 * In two steps, so that what a file claims is checked before its data is touched:
 * {@link #readHeader} reads the length field and the JSON header only, and {@link #readData}
 * then reads the tensors in the order they are stored, in chunks, allocating each tensor once and
 * hashing the whole file (SHA-256) on the way. A caller checks the header against what it
 * expects (names, shapes, dtypes, how many tensors) between the two steps, so memory is bounded
 * by what the caller accepts, not by the file's size. {@link #read} and {@link #fromBytes} do both
 * steps at once.
 *
 * <p>Everything is checked before anything is returned, and every problem is reported as an
 * {@link AdapterFormatException} naming what was found and what was expected: the header length
 * (at most {@value #MAX_HEADER_LENGTH} bytes and within the file, checked before anything is
 * allocated from it), UTF-8, JSON syntax, the exact schema of each entry (only {@code dtype},
 * {@code shape}, {@code data_offsets}; no duplicate names or keys; a supported dtype; shape
 * entries non-negative integers, rank at most {@value #MAX_RANK}), overflow-checked byte sizes
 * that match the offsets, and offsets that tile the data buffer exactly from 0 to the end of the
 * file with no hole, overlap or trailing byte (so a 2 GB file whose header describes 448 bytes is
 * refused after reading its header). {@code __metadata__}, if present and not {@code null}, must
 * map strings to strings. As in the reference reader, JSON whitespace before and after the
 * object is accepted (the format pads with spaces), {@code "__metadata__": null} means no
 * metadata, and empty tensors are accepted. The header is parsed with a streaming JSON parser
 * into a fixed schema, so no input can make the parser recurse deeply or build arbitrary objects;
 * no Java deserialization is involved.
 *
 * <p>Thread-safety: stateless; all methods may be called concurrently.
 */
public final class Safetensors {

    /** Largest header accepted, as in the reference implementation. */
    public static final long MAX_HEADER_LENGTH = 100_000_000L;
    /** Largest file {@link #toBytes} and {@link #write} produce: 2 GiB − 64 bytes (one Java array). */
    public static final long MAX_FILE_SIZE = (1L << 31) - 64;
    /** Largest tensor the reader holds: one Java array. */
    public static final int MAX_TENSOR_BYTES = Integer.MAX_VALUE - 8;
    /** Largest tensor rank accepted; ND4J itself stops at 32. */
    public static final int MAX_RANK = 64;

    static final String METADATA_KEY = "__metadata__";
    private static final String DTYPE = "dtype";
    private static final String SHAPE = "shape";
    private static final String OFFSETS = "data_offsets";
    private static final int MAX_QUOTED = 80;
    /** Bytes read from a channel at once. */
    private static final int CHUNK = 1 << 20;

    /**
     * Configured once, never changed: Jackson factories are thread-safe after configuration. Field
     * names (tensor names from the file) are neither interned nor kept in Jackson's shared symbol
     * table: a header of millions of names would otherwise fill both.
     */
    private static final JsonFactory JSON = new JsonFactory()
            .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
            .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES);

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
        return fromBytes(file, "safetensors data");
    }

    /**
     * Parses and validates safetensors bytes that were read from {@code file}; messages name the
     * file.
     *
     * @throws AdapterFormatException if the bytes are not a valid safetensors file
     */
    public static SafetensorsFile fromBytes(byte[] bytes, Path file) {
        Objects.requireNonNull(bytes, "bytes");
        return fromBytes(bytes, file.toString());
    }

    private static SafetensorsFile fromBytes(byte[] bytes, String source) {
        try (ByteArrayChannel ch = new ByteArrayChannel(bytes)) {
            return readData(ch, readHeader(ch, source, Integer.MAX_VALUE, null));
        } catch (IOException e) {
            throw new UncheckedIOException("reading an array failed", e); // cannot happen
        }
    }

    /**
     * Reads and validates a safetensors file: first its header ({@link #readHeader(Path)}), then
     * its data, tensor by tensor. Memory holds the tensors and a small buffer, never a copy of the
     * whole file.
     *
     * @throws AdapterFormatException if the content is not a valid safetensors file, or a tensor
     *     is larger than {@value #MAX_TENSOR_BYTES} bytes; the message names the file
     * @throws IOException if reading fails (missing file, permissions, ...)
     */
    public static SafetensorsFile read(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        try (SeekableByteChannel ch = Files.newByteChannel(file)) {
            return readData(ch, readHeader(ch, file.toString(), Integer.MAX_VALUE, null));
        }
    }

    /**
     * Reads and validates the header of a safetensors file without reading its data buffer:
     * the length field, the JSON and its schema, and that the tensors' offsets tile the rest of
     * the file exactly, so a header that describes fewer (or more) bytes than the file holds is
     * refused at once, whatever the file's size. Reads {@code 8 + N} bytes.
     *
     * @throws AdapterFormatException if the header is not valid (see the class documentation)
     * @throws IOException if reading fails
     */
    public static SafetensorsHeader readHeader(Path file) throws IOException {
        return readHeader(file, Integer.MAX_VALUE, null);
    }

    /**
     * As {@link #readHeader(Path)}, refusing a header that lists more than {@code maxTensors}
     * tensors as soon as the parser reaches one more, so that a header of millions of entries
     * costs no more memory than the caller expects to need.
     *
     * @param why said in the message when the limit is exceeded, e.g. "an adapter for a base
     *     model of 4 layers holds at most 96"
     * @throws AdapterFormatException if the header is not valid or lists too many tensors
     * @throws IOException if reading fails
     */
    public static SafetensorsHeader readHeader(Path file, int maxTensors, String why)
            throws IOException {
        Objects.requireNonNull(file, "file");
        if (maxTensors < 0) {
            throw new IllegalArgumentException("maxTensors must not be negative; got " + maxTensors);
        }
        try (SeekableByteChannel ch = Files.newByteChannel(file)) {
            return readHeader(ch, file.toString(), maxTensors, why);
        }
    }

    /**
     * Reads the data of the file whose header is {@code header}, in the order it is stored,
     * hashing the whole file (SHA-256, {@link SafetensorsFile#sha256()}) as it goes. Only the
     * tensors the header lists are allocated, each once. The file must still be the one the
     * header was read from: same size and same header bytes.
     *
     * @throws AdapterFormatException if the file changed since its header was read, or a tensor
     *     is larger than {@value #MAX_TENSOR_BYTES} bytes
     * @throws IOException if reading fails
     */
    public static SafetensorsFile readData(Path file, SafetensorsHeader header) throws IOException {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(header, "header");
        try (SeekableByteChannel ch = Files.newByteChannel(file)) {
            return readData(ch, header);
        }
    }

    /** {@link #readHeader(Path, int, String)} on an open channel, from its first byte. */
    static SafetensorsHeader readHeader(SeekableByteChannel ch, String source, int maxTensors,
            String why) throws IOException {
        long size = ch.size();
        if (size < 8) {
            throw fail(source, "file too short: " + size + " bytes; expected at least 8"
                    + " (the header length field), truncated file?");
        }
        ByteBuffer lengthField = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        ch.position(0);
        readFully(ch, lengthField, source);
        long n = lengthField.getLong(0);
        if (n < 0 || n > MAX_HEADER_LENGTH) {
            throw fail(source, "header length " + Long.toUnsignedString(n)
                    + " exceeds the limit of " + MAX_HEADER_LENGTH + " bytes");
        }
        long available = size - 8;
        if (n > available) {
            throw fail(source, "header length " + n + " is more than the " + available
                    + " bytes that follow the length field (truncated file?)");
        }
        MessageDigest prefix = sha256();
        prefix.update(lengthField.array());
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorInfo> entries;
        try (InputStream in = new DigestInputStream(new ChannelInput(ch, n, source), prefix)) {
            entries = parseHeader(in, metadata, source, maxTensors, why);
            // Whitespace after the object was consumed by the parser; hash whatever it left.
            in.transferTo(OutputStream.nullOutputStream());
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
        checkSizesAndLayout(entries, available - n, source);
        return new SafetensorsHeader(source, entries, metadata, n, size, prefix.digest());
    }

    /** Sizes (count × dtype size, overflow-checked, equal to end - begin) and tiling. */
    private static void checkSizesAndLayout(List<TensorInfo> entries, long dataLength,
            String source) {
        for (TensorInfo e : entries) {
            long nbytes;
            try {
                nbytes = Math.multiplyExact(SafeTensor.elementCount(e.shapeView()),
                        e.dtype().byteSize());
            } catch (ArithmeticException ex) {
                throw fail(source, "tensor " + quote(e.name()) + ": shape "
                        + Arrays.toString(e.shapeView()) + " of " + e.dtype()
                        + " overflows: its byte size exceeds 2^63-1; expected a size that fits"
                        + " the file");
            }
            if (nbytes != e.end() - e.begin()) {
                throw fail(source, "tensor " + quote(e.name()) + ": dtype " + e.dtype()
                        + " and shape " + Arrays.toString(e.shapeView()) + " need " + nbytes
                        + " bytes but data_offsets [" + e.begin() + ", " + e.end() + "] span "
                        + (e.end() - e.begin()) + " bytes");
            }
        }
        List<TensorInfo> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long expected = 0;
        TensorInfo previous = null;
        for (TensorInfo e : sorted) {
            if (e.begin() > expected) {
                throw fail(source, "hole in the data buffer: bytes [" + expected + ", " + e.begin()
                        + ") belong to no tensor; expected tensor " + quote(e.name())
                        + " to start at " + expected + ", not " + e.begin());
            }
            if (e.begin() < expected) {
                throw fail(source, "tensors " + quote(previous.name()) + " [" + previous.begin()
                        + ", " + previous.end() + ") and " + quote(e.name()) + " [" + e.begin()
                        + ", " + e.end() + ") overlap; expected each tensor to start where the"
                        + " previous one ends");
            }
            expected = e.end();
            previous = e;
        }
        if (expected > dataLength) {
            throw fail(source, "tensor " + quote(previous.name()) + " ends at byte " + expected
                    + " of the data buffer, beyond its end at " + dataLength
                    + " (truncated file?)");
        }
        if (expected < dataLength) {
            throw fail(source, (dataLength - expected) + " trailing bytes after the last tensor:"
                    + " tensors end at byte " + expected + " of the data buffer but it holds "
                    + dataLength + " bytes; expected the last tensor to end at the end of file");
        }
    }

    /** {@link #readData(Path, SafetensorsHeader)} on an open channel. */
    static SafetensorsFile readData(SeekableByteChannel ch, SafetensorsHeader header)
            throws IOException {
        String source = header.source();
        long size = ch.size();
        if (size != header.fileSize()) {
            throw fail(source, "file is " + size + " bytes now, but its header was read from a"
                    + " file of " + header.fileSize() + " bytes; was it replaced or written while"
                    + " being loaded?");
        }
        for (TensorInfo t : header.tensors().values()) {
            if (t.byteLength() > MAX_TENSOR_BYTES) {
                throw fail(source, "tensor " + quote(t.name()) + " holds " + t.byteLength()
                        + " bytes; at most " + MAX_TENSOR_BYTES + " fit in one Java array");
            }
        }
        MessageDigest prefix = sha256();
        MessageDigest whole = sha256();
        ch.position(0);
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(CHUNK, 8 + header.headerLength()));
        long left = 8 + header.headerLength();
        while (left > 0) {
            chunk.clear().limit((int) Math.min(chunk.capacity(), left));
            readFully(ch, chunk, source);
            prefix.update(chunk.array(), 0, chunk.limit());
            whole.update(chunk.array(), 0, chunk.limit());
            left -= chunk.limit();
        }
        if (!MessageDigest.isEqual(prefix.digest(), header.prefixSha256())) {
            throw fail(source, "its header changed since it was read; was the file replaced or"
                    + " written while being loaded?");
        }
        Map<String, byte[]> data = new HashMap<>();
        for (TensorInfo t : header.inFileOrder()) {
            byte[] b = new byte[(int) t.byteLength()];
            for (int off = 0; off < b.length; off += CHUNK) {
                // Slices: NIO copies a heap buffer through a direct one of the same size.
                readFully(ch, ByteBuffer.wrap(b, off, Math.min(CHUNK, b.length - off)), source);
            }
            whole.update(b);
            data.put(t.name(), b);
        }
        if (ch.read(ByteBuffer.allocate(1)) > 0) {
            throw fail(source, "file grew while it was being read (expected " + size
                    + " bytes); is another process writing it?");
        }
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        for (TensorInfo t : header.tensors().values()) {
            tensors.put(t.name(), SafeTensor.ofOwnedBytes(t.dtype(), t.shape(), data.get(t.name())));
        }
        return new SafetensorsFile(tensors, header.metadata(),
                HexFormat.of().formatHex(whole.digest()));
    }

    private static void readFully(SeekableByteChannel ch, ByteBuffer buf, String source)
            throws IOException {
        while (buf.hasRemaining()) {
            if (ch.read(buf) < 0) {
                throw fail(source, "file ended early (truncated, or being written while it was"
                        + " read?)");
            }
        }
        buf.flip();
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * The header bytes of a channel as a stream that ends after {@code n} bytes. A read error of
     * the channel comes out as {@link UncheckedIOException}, so that it is not mistaken for
     * malformed JSON; the end of the file before {@code n} bytes is an
     * {@link AdapterFormatException}.
     */
    private static final class ChannelInput extends InputStream {
        private final SeekableByteChannel ch;
        private final String source;
        private long left;

        ChannelInput(SeekableByteChannel ch, long n, String source) {
            this.ch = ch;
            this.left = n;
            this.source = source;
        }

        @Override
        public int read() {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xFF;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (left == 0) {
                return -1;
            }
            if (len == 0) {
                return 0;
            }
            int n;
            try {
                n = ch.read(ByteBuffer.wrap(b, off, (int) Math.min(len, left)));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            if (n < 0) {
                throw fail(source, "file ended inside the header, " + left + " bytes before its"
                        + " end (truncated, or being written while it was read?)");
            }
            left -= n;
            return n;
        }
    }

    private static List<TensorInfo> parseHeader(InputStream bytes, Map<String, String> metadata,
            String source, int maxTensors, String why) throws IOException {
        Reader text = new InputStreamReader(bytes, StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT));
        List<TensorInfo> entries = new ArrayList<>();
        Set<String> names = new HashSet<>();
        boolean sawMetadata = false;
        try {
            // As the reference reader: JSON whitespace may precede the object, nothing else.
            PushbackReader start = new PushbackReader(text, 1);
            int first = start.read();
            while (first == ' ' || first == '\t' || first == '\n' || first == '\r') {
                first = start.read();
            }
            if (first != '{') {
                throw fail(source, "header must start with '{' (after optional whitespace) but "
                        + (first < 0 ? "is empty" : "starts with " + describeChar(first)));
            }
            start.unread(first);
            try (JsonParser p = JSON.createParser(start)) {
                p.nextToken(); // START_OBJECT, checked above
                JsonToken t;
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
                            throw fail(source, "empty tensor name in header; expected non-empty"
                                    + " names");
                        }
                        if (!names.add(name)) {
                            throw fail(source, "duplicate tensor name " + quote(name)
                                    + " in header; expected unique names");
                        }
                        if (entries.size() == maxTensors) {
                            throw fail(source, "header lists more than " + maxTensors
                                    + " tensors" + (why == null ? "" : "; " + why));
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
            }
        } catch (AdapterFormatException | UncheckedIOException e) {
            throw e;
        } catch (CharacterCodingException e) {
            throw fail(source, "header is not valid UTF-8 (" + e + "); expected UTF-8 JSON");
        } catch (JsonProcessingException e) {
            throw new AdapterFormatException(source + ": header is not valid JSON: "
                    + e.getOriginalMessage() + " at " + location(e), e);
        } catch (IOException | RuntimeException e) {
            throw new AdapterFormatException(source + ": header is not valid JSON: " + e, e);
        }
        return entries;
    }

    private static String describeChar(int c) {
        String code = String.format("U+%04X", c);
        return c >= 0x21 && c < 0x7F ? "'" + (char) c + "' (" + code + ")" : code;
    }

    private static void parseMetadata(JsonParser p, JsonToken value, Map<String, String> metadata,
            String source) throws IOException {
        if (value == JsonToken.VALUE_NULL) {
            return; // the reference reader treats null as no metadata
        }
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

    private static TensorInfo parseEntry(JsonParser p, String name, JsonToken value, String source)
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
        return new TensorInfo(name, dtype, shape, offsets[0], offsets[1]);
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
