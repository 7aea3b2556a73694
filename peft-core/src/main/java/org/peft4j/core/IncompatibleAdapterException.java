package org.peft4j.core;

/**
 * A well-formed adapter does not fit the base model it is loaded onto (other layer names,
 * shapes or base-model fingerprint). The message lists what differs. Nothing was changed when
 * this is thrown.
 *
 * <p>Thread-safety: immutable.
 */
public class IncompatibleAdapterException extends PeftException {
    private static final long serialVersionUID = 1L;

    public IncompatibleAdapterException(String message) {
        super(message);
    }

    public IncompatibleAdapterException(String message, Throwable cause) {
        super(message, cause);
    }
}
