package org.peft4j.core;

/**
 * A file (safetensors, adapter config, checkpoint) is malformed: truncated, corrupted, of an
 * unknown dtype, inconsistent with itself. The message names the file, what was found and what
 * was expected. Nothing was changed when this is thrown.
 *
 * <p>Thread-safety: immutable.
 */
public class AdapterFormatException extends PeftException {
    private static final long serialVersionUID = 1L;

    public AdapterFormatException(String message) {
        super(message);
    }

    public AdapterFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
