package org.peft4j.lora;

import java.util.List;
import java.util.Map;
import org.peft4j.core.spi.KeyPolicy;

/**
 * What peft4j does with each key Hugging Face PEFT's {@code LoraConfig} writes, up to PEFT 0.20
 * (and the keys of PEFT 0.2 still found in published files): the table of
 * {@code docs/peft-key-policy.md}, checked by {@link org.peft4j.core.Peft#load} before
 * {@link LoraConfigFactory} reads a file.
 *
 * <p>Thread-safety: immutable constants only.
 */
final class LoraKeyPolicy {

    static final KeyPolicy POLICY = KeyPolicy.builder()
            .honoured("r").honoured("lora_alpha").honoured("lora_dropout").honoured("use_rslora")
            .honoured("target_modules").honoured("exclude_modules").honoured("modules_to_save").honoured("bias")
            .honoured("layers_to_transform").honoured("layers_pattern")
            .honoured("rank_pattern", KeyPolicy.Role.MODULE_PATTERNS)
            .honoured("alpha_pattern", KeyPolicy.Role.MODULE_PATTERNS)
            .honoured("init_lora_weights").honoured("use_dora")
            // fan_in_fan_out only says how the PyTorch base stores its weight (GPT-2's Conv1D); lora_A and
            // lora_B are saved [r, in] and [out, r] either way.
            .ignored("fan_in_fan_out", "loftq_config", "eva_config", "corda_config", "lora_ga_config", "megatron_core",
                    "qalora_group_size", "velora_config", "ensure_weight_tying", "merge_weights")
            .refusedUnless("megatron_config", "the adapter belongs to Megatron tensor-parallel layers, whose saved "
                    + "tensors may be shards")
            .refusedUnless("layer_replication", "PEFT built the base by repeating layers, and the adapter belongs to "
                    + "that larger model")
            .refusedUnless("trainable_token_indices", "it trains chosen rows of the embedding (extra "
                    + "trainable_tokens_delta tensors)", List.of(), Map.of())
            .refusedUnless("lora_bias", "lora_B carries a bias that the update adds", false)
            .refusedUnless("target_parameters", "LoRA is applied to raw parameters (mixture-of-experts weights) "
                    + "instead of layers", List.of())
            .refusedUnless("alora_invocation_tokens", "activated LoRA applies the update only from the invocation "
                    + "tokens on, and peft4j applies it to every token")
            .refusedUnless("use_qalora", "QALoRA pools the input in groups before lora_A", false)
            .refusedUnless("use_bdlora", "block-diagonal lora_A or lora_B are stored in another shape")
            .refusedUnless("monteclora_config", "MonteCLoRA adds sampled variational terms to the update")
            .refusedUnless("arrow_config", "Arrow routes between several adapters per token")
            .refusedUnless("enable_lora", "it gives LoRA to some slices of a fused projection only")
            .build();

    private LoraKeyPolicy() {
    }
}
