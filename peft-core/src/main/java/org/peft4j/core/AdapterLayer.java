package org.peft4j.core;

import java.util.List;

/**
 * A layer configuration that carries adapter parameters and knows how they are written to an
 * adapter file. Implemented by {@link FrozenDenseLayer} (LoRA, IA3 and the trained bias of frozen
 * dense layers) and by tuners that add layers of their own.
 *
 * <p>Thread-safety: as the implementing configuration.
 */
public interface AdapterLayer {

    /** The base model's name for the layer the tensors belong to. */
    String baseLayerName();

    /** The trainable parameters written to the adapter file, with their file names. */
    List<FrozenDenseLayer.SavedTensor> savedTensors();
}
