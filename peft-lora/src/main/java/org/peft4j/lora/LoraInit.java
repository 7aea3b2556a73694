package org.peft4j.lora;

/**
 * How the LoRA factor {@code A} is initialised ({@code B} always starts at zero, so a fresh
 * adapter changes nothing). Names as in Hugging Face PEFT's {@code init_lora_weights}.
 *
 * <ul>
 *   <li>{@link #KAIMING_UNIFORM} ({@code true} in PEFT, the default): {@code A ~ U(-1/√nIn, 1/√nIn)},
 *       PyTorch's {@code kaiming_uniform_(a=√5)} on a {@code [r, nIn]} weight.</li>
 *   <li>{@link #GAUSSIAN} ({@code "gaussian"}): {@code A ~ N(0, (1/r)²)}, as in the LoRA paper.</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public enum LoraInit {
    KAIMING_UNIFORM,
    GAUSSIAN
}
