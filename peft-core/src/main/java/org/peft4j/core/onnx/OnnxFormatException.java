package org.peft4j.core.onnx;

import org.peft4j.core.PeftException;

/**
 * An ONNX file that cannot be read, or whose graph is not the structure an importer expects. The
 * message names what was found, what was expected and where.
 *
 * <p>Thread-safety: immutable.
 */
public class OnnxFormatException extends PeftException {
    private static final long serialVersionUID = 1L;

    public OnnxFormatException(String message) {
        super(message);
    }

    public OnnxFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
