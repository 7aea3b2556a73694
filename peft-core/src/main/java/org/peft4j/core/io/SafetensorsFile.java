package org.peft4j.core.io;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.peft4j.core.spi.Messages;

/**
 * The validated contents of one safetensors file: its tensors by name, in the order the header
 * lists them, the string → string {@code __metadata__} map (empty if the file had none), and the
 * SHA-256 of the file's bytes. Obtained from {@link Safetensors#fromBytes(byte[])},
 * {@link Safetensors#read} or {@link Safetensors#readData}.
 *
 * <p>Thread-safety: immutable, safe to share between threads.
 */
public final class SafetensorsFile {

    private final Map<String, SafeTensor> tensors;
    private final Map<String, String> metadata;
    private final String sha256;

    SafetensorsFile(Map<String, SafeTensor> tensors, Map<String, String> metadata, String sha256) {
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        this.sha256 = sha256;
    }

    /** The tensors by name in header order; unmodifiable. */
    public Map<String, SafeTensor> tensors() {
        return tensors;
    }

    /** The {@code __metadata__} entries in header order; unmodifiable, empty if absent. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** The SHA-256 of every byte of the file (length field, header, data), 64 lower-case hex digits. */
    public String sha256() {
        return sha256;
    }

    /**
     * The tensor with this name.
     *
     * @throws IllegalArgumentException naming (some of) the tensors the file does hold if there
     *     is none
     */
    public SafeTensor get(String name) {
        SafeTensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no tensor named '" + Messages.shorten(name)
                    + "' in this file; its " + tensors.size() + " tensors are: "
                    + Messages.list(tensors.keySet()));
        }
        return t;
    }

    /** For example <code>SafetensorsFile[tensors={w=SafeTensor[...]}, metadata={format=pt}]</code>. */
    @Override
    public String toString() {
        return "SafetensorsFile[tensors=" + tensors + ", metadata=" + metadata + "]";
    }
}
