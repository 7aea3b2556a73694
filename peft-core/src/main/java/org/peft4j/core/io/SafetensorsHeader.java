package org.peft4j.core.io;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The validated header of one safetensors file, read without touching its data buffer
 * ({@link Safetensors#readHeader}): the tensors' names, dtypes, shapes and offsets in header
 * order, the {@code __metadata__} map, and the sizes that were checked against the file. A
 * caller checks what it expects (names, shapes, dtypes, how many bytes it is prepared to hold)
 * here, then reads the data with {@link Safetensors#readData}, which verifies that the file's
 * header bytes are still the ones parsed here.
 *
 * <p>Thread-safety: immutable, safe to share between threads.
 */
public final class SafetensorsHeader {

    private final String source;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private final long headerLength;
    private final long fileSize;
    private final byte[] prefixSha256;

    SafetensorsHeader(String source, List<TensorInfo> tensors, Map<String, String> metadata,
            long headerLength, long fileSize, byte[] prefixSha256) {
        this.source = source;
        Map<String, TensorInfo> m = new LinkedHashMap<>();
        for (TensorInfo t : tensors) {
            m.put(t.name(), t);
        }
        this.tensors = Collections.unmodifiableMap(m);
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        this.headerLength = headerLength;
        this.fileSize = fileSize;
        this.prefixSha256 = prefixSha256;
    }

    /** What was read, for messages: the file's path or "safetensors data". */
    public String source() {
        return source;
    }

    /** The tensors by name in header order; unmodifiable. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** The {@code __metadata__} entries in header order; unmodifiable, empty if absent or null. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** N, the length of the JSON header in bytes (padding included). */
    public long headerLength() {
        return headerLength;
    }

    /** The size of the file the header was read from, in bytes: 8 + N + data bytes. */
    public long fileSize() {
        return fileSize;
    }

    /** The size of the data buffer: the sum of every tensor's bytes. */
    public long dataLength() {
        return fileSize - 8 - headerLength;
    }

    /** SHA-256 of the first {@code 8 + N} bytes of the file, for {@link Safetensors#readData}. */
    byte[] prefixSha256() {
        return prefixSha256.clone();
    }

    /** The tensors in the order of their data in the file. */
    List<TensorInfo> inFileOrder() {
        List<TensorInfo> l = new ArrayList<>(tensors.values());
        l.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        return l;
    }

    /** For example {@code SafetensorsHeader[a.safetensors: 2 tensors, 48 data bytes]}. */
    @Override
    public String toString() {
        return "SafetensorsHeader[" + source + ": " + tensors.size() + " tensors, " + dataLength()
                + " data bytes]";
    }
}
