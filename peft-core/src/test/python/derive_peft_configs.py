#!/usr/bin/env python3
"""Writes peft-core/src/test/resources/peft-configs/derived/*.json: configs for options that no collected file
exercises (see SOURCES.md there), each made from one collected file by changing the keys named below, and
written as PEFT's PeftConfigMixin.save_pretrained writes (json.dumps(indent=2, sort_keys=True), no newline at
the end). The values are those PEFT 0.20.0's dataclasses would hold (sub-configs as dicts, their fields at
PEFT's defaults unless named).

Usage: python3 derive_peft_configs.py   (run from any directory; rewrites derived/ in place)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "resources", "peft-configs")

BERT = "lora/bert-seqcls-duplicated-classifier-0.20.json"
GPT2_IA3_BASE = "ia3/llama32-mmqa-default.json"
PROMPT = "prompt_tuning/bloomz-random.json"
PREFIX = "prefix_tuning/llama32-mmqa.json"

EVA = {"adjust_scaling_factors": True, "label_mask_value": -100, "rho": 2.0, "tau": 0.99, "use_label_mask": True,
       "whiten": False}
CORDA = {"cache_file": None, "corda_method": "ipm", "covariance_file": None, "prune_temporary_fields": True,
         "use_float16_for_covariance": False, "verbose": False}

# name -> (source file, keys to set, what it exercises)
DERIVED = {
    "lora-exclude-modules-list": (BERT, {"exclude_modules": ["layer.11.attention.self.value"]},
                                  "exclude_modules as a list of names matched like target_modules (suffix)"),
    "lora-exclude-modules-regex": (BERT, {"exclude_modules": ".*layer\\.(0|1)\\..*"},
                                   "exclude_modules as a full-match regular expression"),
    "lora-rank-alpha-pattern": (BERT, {"rank_pattern": {"encoder.layer.0.attention.self.query": 16},
                                       "alpha_pattern": {"encoder.layer.0.attention.self.query": 32}},
                                "per-module rank and alpha"),
    "lora-layers-to-transform": (BERT, {"layers_to_transform": [0, 1, 2], "layers_pattern": "layer"},
                                 "layers_to_transform with layers_pattern"),
    "lora-layers-to-transform-int": (BERT, {"layers_to_transform": 5},
                                     "layers_to_transform as one integer, layers_pattern null"),
    "lora-use-rslora": (BERT, {"use_rslora": True}, "rank-stabilized scaling alpha / sqrt(r)"),
    "lora-init-false": (BERT, {"init_lora_weights": False}, "an init that leaves the base alone (random A and B)"),
    "lora-init-gaussian": (BERT, {"init_lora_weights": "gaussian"}, "gaussian init of A"),
    "lora-init-pissa-niter": (BERT, {"init_lora_weights": "pissa_niter_16"}, "fast-SVD PiSSA, changes the base"),
    "lora-init-corda": (BERT, {"init_lora_weights": "corda", "corda_config": CORDA}, "CorDA, changes the base"),
    "lora-init-loftq": (BERT, {"init_lora_weights": "loftq", "loftq_config": {"loftq_bits": 4, "loftq_iter": 1}},
                        "LoftQ, quantizes the base"),
    "lora-init-eva": (BERT, {"init_lora_weights": "eva", "eva_config": EVA},
                      "EVA: a data-driven init of A; the base is left alone"),
    "lora-loftq-config-without-loftq": (BERT, {"loftq_config": {"loftq_bits": 4, "loftq_iter": 1}},
                                        "loftq_config filled in while init_lora_weights is true (PEFT ignores it)"),
    "lora-bias": (BERT, {"lora_bias": True}, "a bias on lora_B"),
    "lora-trainable-token-indices": (BERT, {"trainable_token_indices": [0, 101, 102]},
                                     "trainable token rows of the embedding"),
    "lora-target-parameters": (BERT, {"target_parameters": ["attention.self.query.weight"]},
                               "LoRA on parameters instead of modules"),
    "lora-layer-replication": (BERT, {"layer_replication": [[0, 6], [6, 12]]}, "a base with replicated layers"),
    "lora-megatron-config": (BERT, {"megatron_config": {"tensor_model_parallel_size": 2}},
                             "Megatron tensor-parallel layers"),
    "lora-use-qalora": (BERT, {"use_qalora": True}, "QALoRA's pooled input"),
    "lora-alora": (BERT, {"alora_invocation_tokens": [2, 3], "task_type": "CAUSAL_LM"},
                   "activated LoRA: the update applies from the invocation tokens on"),
    "lora-velora": (BERT, {"velora_config": {"init_type": "batch_average", "num_groups": 64, "scale": 1.0}},
                    "VeLoRA: a training-memory trick, forward unchanged"),
    "lora-ensure-weight-tying": (BERT, {"ensure_weight_tying": True}, "tied adapters on tied weights"),
    "lora-future-key-default": (BERT, {"some_future_option": None},
                                "a key this PEFT does not have, at a default-like value"),
    "lora-future-key-set": (BERT, {"some_future_scaling": 2.0},
                            "a key this PEFT does not have, with a value that may change the math"),
    "ia3-exclude-modules": (GPT2_IA3_BASE, {"target_modules": ["k_proj", "v_proj", "down_proj"],
                                            "feedforward_modules": ["down_proj"],
                                            "exclude_modules": ["layers.0.self_attn.k_proj"]},
                            "IA3 with exclude_modules"),
    "ia3-fan-in-fan-out": (GPT2_IA3_BASE, {"target_modules": ["c_attn", "mlp.c_proj"],
                                           "feedforward_modules": ["mlp.c_proj"], "fan_in_fan_out": True,
                                           "base_model_name_or_path": "gpt2"},
                           "IA3 on GPT-2 Conv1D layers"),
    "prompt-tuning-text-init": (PROMPT, {"prompt_tuning_init": "TEXT",
                                         "prompt_tuning_init_text": "Classify if the tweet is a complaint or not:",
                                         "tokenizer_name_or_path": "bigscience/bloomz-560m"},
                                "TEXT init with the text and tokenizer PEFT requires"),
    "prefix-tuning-projection": (PREFIX, {"prefix_projection": True},
                                 "prefix_projection true (the file holds the folded prefixes)"),
}


def main():
    out_dir = os.path.join(CONFIGS, "derived")
    os.makedirs(out_dir, exist_ok=True)
    for name, (source, changes, _) in sorted(DERIVED.items()):
        with open(os.path.join(CONFIGS, source), encoding="utf-8") as f:
            config = json.load(f)
        config.update(changes)
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
