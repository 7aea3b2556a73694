package org.peft4j.quant;

/**
 * The 8-bit codes of {@link Int8Tensor}.
 *
 * <p>Thread-safety: immutable.
 */
public enum Int8Scheme {
    /**
     * Symmetric linear int8: {@code q = clamp(round(x · 127 / absmax), -127, 127)},
     * {@code x ≈ q · absmax / 127}. Uniform error, simplest to reason about.
     */
    LINEAR,
    /**
     * bitsandbytes' signed dynamic map ({@code create_dynamic_map(signed=True)}): 256 sorted values
     * in [-0.993, 1] that are dense near zero (down to 5.5e-7), so small optimizer-state entries
     * keep their relative precision. The code is the map index of the nearest value to
     * {@code x / absmax}; {@code x ≈ map[code] · absmax}.
     */
    DYNAMIC
}
