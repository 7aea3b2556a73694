package org.peft4j.core;

import java.util.Map;

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
     * Builds the config.
     *
     * @param json the parsed {@code adapter_config.json}
     * @throws AdapterFormatException naming the key, what was found and what was expected
     */
    PeftConfig fromAdapterConfig(Map<String, Object> json);
}
