package org.peft4j.core.spi;

/**
 * Keys of peft4j's own extension object in {@code adapter_config.json}, the map under
 * {@value #EXTENSION}, that tuner configs write through {@link org.peft4j.core.PeftConfig#toAdapterConfig()}
 * (Hugging Face PEFT ignores that object; every other key of the file is one of PEFT's).
 *
 * <p>Thread-safety: constants only.
 */
public final class AdapterFileKeys {

    /** The key of peft4j's extension object. */
    public static final String EXTENSION = "peft4j";

    /**
     * Key in the extension object: how the wrapped model held its frozen base when not as floats,
     * written by configs that hold it otherwise (QLoRA: its 4-bit spec). An adapter file needs no
     * such base (it applies to the float base too), but training resumed from a checkpoint must go
     * on over the base it started on, so resuming compares this entry of the saved config with the
     * one of the config it resumes with.
     */
    public static final String BASE_FORM = "quantized_base";

    private AdapterFileKeys() {
    }
}
