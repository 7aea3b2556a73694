package org.peft4j.core.io;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The validated contents of one safetensors file: its tensors by name, in the order the header
 * lists them, and the string → string {@code __metadata__} map (empty if the file had none).
 * Obtained from {@link Safetensors#fromBytes(byte[])} or {@link Safetensors#read}.
 *
 * <p>Thread-safety: immutable, safe to share between threads.
 */
public final class SafetensorsFile {

    private static final int MAX_NAMES_IN_MESSAGE = 50;

    private final Map<String, SafeTensor> tensors;
    private final Map<String, String> metadata;

    SafetensorsFile(Map<String, SafeTensor> tensors, Map<String, String> metadata) {
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
    }

    /** The tensors by name in header order; unmodifiable. */
    public Map<String, SafeTensor> tensors() {
        return tensors;
    }

    /** The {@code __metadata__} entries in header order; unmodifiable, empty if absent. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * The tensor with this name.
     *
     * @throws IllegalArgumentException naming the tensors the file does hold if there is none
     */
    public SafeTensor get(String name) {
        SafeTensor t = tensors.get(name);
        if (t == null) {
            String names = tensors.keySet().stream().limit(MAX_NAMES_IN_MESSAGE)
                    .collect(Collectors.joining(", "));
            if (tensors.size() > MAX_NAMES_IN_MESSAGE) {
                names += ", ... (" + (tensors.size() - MAX_NAMES_IN_MESSAGE) + " more)";
            }
            throw new IllegalArgumentException("no tensor named '" + name + "' in this file; its "
                    + tensors.size() + " tensors are: [" + names + "]");
        }
        return t;
    }

    /** For example {@code SafetensorsFile[tensors={w=SafeTensor[...]}, metadata={format=pt}]}. */
    @Override
    public String toString() {
        return "SafetensorsFile[tensors=" + tensors + ", metadata=" + metadata + "]";
    }
}
