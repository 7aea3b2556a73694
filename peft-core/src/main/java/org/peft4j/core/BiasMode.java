package org.peft4j.core;

import java.util.Locale;

/**
 * Which biases train alongside an adapter, with Hugging Face PEFT's meaning of the same names.
 *
 * <ul>
 *   <li>{@link #NONE} ({@code "none"}): every bias of the base model stays frozen.</li>
 *   <li>{@link #ALL} ({@code "all"}): the biases of every dense-type layer (dense, output, RNN
 *       output) train, targeted or not. Biases of other layer types stay frozen.</li>
 *   <li>{@link #LORA_ONLY} ({@code "lora_only"}): only the biases of targeted layers train.</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public enum BiasMode {
    NONE("none"),
    ALL("all"),
    LORA_ONLY("lora_only");

    private final String jsonName;

    BiasMode(String jsonName) {
        this.jsonName = jsonName;
    }

    /** The name used in {@code adapter_config.json} ({@code "none"}, {@code "all"}, {@code "lora_only"}). */
    public String jsonName() {
        return jsonName;
    }

    /**
     * Parses the JSON name.
     *
     * @throws IllegalArgumentException naming the accepted values if {@code name} is none of them
     */
    public static BiasMode fromJsonName(String name) {
        if (name != null) {
            for (BiasMode m : values()) {
                if (m.jsonName.equals(name.toLowerCase(Locale.ROOT))) {
                    return m;
                }
            }
        }
        throw new IllegalArgumentException(
                "bias must be one of \"none\", \"all\", \"lora_only\"; got " + (name == null ? "null" : "\"" + name + "\""));
    }
}
