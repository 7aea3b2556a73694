package org.peft4j.lora.lycoris;

/**
 * A layer configuration that carries a {@link LycorisAdapter} (LoHa's and LoKr's layers for each
 * kind of target): what the shared implementations ({@link LycorisDenseLayerImpl}) need to run it.
 *
 * <p>Thread-safety: as the implementing configuration.
 */
public interface LycorisLayer {

    /** The layer's adapter: its factors' layout, scaling and dropout settings. */
    LycorisAdapter adapter();
}
