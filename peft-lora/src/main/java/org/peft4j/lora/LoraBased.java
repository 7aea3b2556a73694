package org.peft4j.lora;

/**
 * A tuner config that is LoRA with something added (QLoRA's 4-bit base): its layers are LoRA
 * layers configured by {@link #lora()}.
 *
 * <p>Thread-safety: implementations are immutable.
 */
public interface LoraBased {

    /** The LoRA settings (rank, alpha, dropout, targets). */
    LoraConfig lora();
}
