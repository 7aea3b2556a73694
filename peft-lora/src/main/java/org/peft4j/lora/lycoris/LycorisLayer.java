package org.peft4j.lora.lycoris;

/**
 * A layer configuration that carries a {@link LycorisAdapter}: the family's layer for each kind of
 * target ({@link LycorisDenseLayer}, {@link LycorisConvolutionLayer}), and what their
 * implementations need to run it.
 *
 * <p>Thread-safety: as the implementing configuration.
 */
public interface LycorisLayer {

    /** The layer's adapter: its factors' layout, scaling and dropout settings. */
    LycorisAdapter adapter();
}
