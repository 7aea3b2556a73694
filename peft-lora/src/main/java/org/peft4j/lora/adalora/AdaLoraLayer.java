package org.peft4j.lora.adalora;

import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What the AdaLoRA layers of each kind ({@link AdaLoraDenseLayer}, {@link AdaLoraConvolutionLayer})
 * have in common: an update in SVD form {@code ΔW = κ·B·diag(E)·A} with {@code A [r, n]},
 * {@code E [r]}, {@code B [out, r]} (parameters {@link #LORA_A}, {@link #LORA_E}, {@link #LORA_B},
 * in Hugging Face PEFT's orientation, {@code n} the layer's input features or, for a convolution,
 * input channels times kernel positions) and {@code κ = lora_alpha / (init_r + 1e-5)}.
 *
 * <p>Thread-safety: see the implementing layer configuration.
 */
public interface AdaLoraLayer {

    /** Parameter key of {@code A [r, n]} (file: {@code lora_A}). */
    String LORA_A = "loraA";
    /** Parameter key of the singular values {@code E [r]} (file: {@code lora_E [r, 1]}). */
    String LORA_E = "loraE";
    /** Parameter key of {@code B [out, r]} (file: {@code lora_B}). */
    String LORA_B = "loraB";

    /** The base model's name of the layer. */
    String baseLayerName();

    /** Triplets the layer holds: {@code init_r}, or the number kept by the rank pattern it was loaded with. */
    int rank();

    /** {@code init_r}, Hugging Face PEFT's {@code ranknum}. */
    int initRank();

    /** {@code κ = lora_alpha / (init_r + 1e-5)}, also after pruning. */
    double scaling();

    /**
     * Which of the {@code init_r} triplets are kept, as the config's {@code rank_pattern} records
     * it ({@code "<layer>.lora_E": [...]}): set by the rank allocator while training or read from
     * the adapter's config; empty when no allocation was made yet.
     */
    List<Boolean> rankPattern();

    /** {@code ΔW = κ·B·diag(E)·A [out, n]} for this layer's parameters {@code params}, PEFT's orientation. */
    INDArray deltaWeight(Map<String, INDArray> params);
}
