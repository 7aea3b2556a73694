package org.peft4j.core;

import java.util.Map;
import org.peft4j.core.spi.KeyPolicy;

/**
 * Reads a {@link PeftConfig} back from the keys of an {@code adapter_config.json}. Each tuner
 * module registers one per {@code peft_type} through {@link java.util.ServiceLoader} (a
 * {@code META-INF/services/org.peft4j.core.PeftConfigFactory} file), so that {@link Peft#load}
 * in the core can read every kind of adapter without depending on the tuner modules.
 *
 * <p>Thread-safety: implementations must be stateless.
 */
public interface PeftConfigFactory {

    /** The {@code peft_type} this factory reads, e.g. {@code "LORA"}. */
    String peftType();

    /**
     * What peft4j does with each key of this type's files ({@link KeyPolicy}). {@link Peft#load}
     * checks a file against it before calling {@link #fromAdapterConfig}, so a key that changes the
     * math in a way the tuner does not implement is refused by name rather than dropped. Default:
     * {@link KeyPolicy#none()}, every key handed to {@link #fromAdapterConfig} unchecked.
     */
    default KeyPolicy keyPolicy() {
        return KeyPolicy.none();
    }

    /**
     * Builds the config. Messages name the key but not the file: {@link Peft#load} puts the file's
     * path in front of them.
     *
     * @param json the parsed {@code adapter_config.json}; peft4j's own records for the tuner (what its
     *     config wrote under {@value org.peft4j.core.spi.AdapterFileKeys#EXTENSION}) are under that key
     * @throws AdapterFormatException naming the key, what was found and what was expected
     */
    PeftConfig fromAdapterConfig(Map<String, Object> json);
}
