package org.peft4j.core.io;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The validated content of a safetensors file: tensors in header order, and the
 * {@code __metadata__} strings.
 *
 * <p>Thread-safety: immutable.
 */
public final class SafetensorsFile {

    private final Map<String, SafeTensor> tensors;
    private final Map<String, String> metadata;

    SafetensorsFile(Map<String, SafeTensor> tensors, Map<String, String> metadata) {
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
    }

    public Map<String, SafeTensor> tensors() {
        return tensors;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * @throws IllegalArgumentException naming the tensors there are if {@code name} is not one
     */
    public SafeTensor get(String name) {
        SafeTensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no tensor named \"" + name + "\"; tensors are " + tensors.keySet());
        }
        return t;
    }
}
