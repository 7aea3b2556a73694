package org.peft4j.core;

/**
 * Root of the exceptions peft4j throws for problems with files and models (as opposed to bad
 * arguments, which get {@link IllegalArgumentException}, and calls in the wrong order, which get
 * {@link IllegalStateException}).
 *
 * <p>Thread-safety: immutable.
 */
public class PeftException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public PeftException(String message) {
        super(message);
    }

    public PeftException(String message, Throwable cause) {
        super(message, cause);
    }
}
