#!/usr/bin/env python3
"""A multitask prompt tuning adapter in Hugging Face PEFT's layout, with its task prompts computed
independently in numpy, as a small committed fixture.

Read from PEFT v0.20.0 (src/peft/tuners/multitask_prompt_tuning/{config,model}.py and
src/peft/utils/save_and_load.py), written here from scratch with numpy only:
  adapter_model.safetensors   prompt_embeddings [p, d]   (MultitaskPromptEmbedding.embedding.weight = P*)
                              prefix_task_cols  [n, p, r] (u_k)
                              prefix_task_rows  [n, r, d] (v_k)
                              F32, bare names (PEFT's get_peft_model_state_dict for prompt learning)
  adapter_config.json         every key PEFT 0.20 writes for MultitaskPromptTuningConfig
                              (PeftConfig, PromptLearningConfig, PromptTuningConfig and MPT fields),
                              sort_keys, indent 2
  reference.safetensors       task_prompts [n, p, d] = P* * (u_k @ v_k)   (F64, from the F32 values)

Output: peft-core/src/test/resources/org/peft4j/core/mpt/peft-adapter/ and .../mpt/reference.safetensors.
Run from anywhere:  python3 peft-core/src/test/python/mpt_reference.py   (deterministic; committed)
"""

import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "resources", "org", "peft4j", "core", "mpt"))
P, N, R, D = 3, 3, 2, 8


def write_safetensors(path, tensors):
    """tensors: list of (name, 'F32' | 'F64', ndarray)."""
    header = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name, dtype, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype={"F32": "<f4", "F64": "<f8"}[dtype]).tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def main():
    rng = np.random.default_rng(2303)
    prompt = rng.standard_normal((P, D)).astype(np.float32)
    cols = (0.7 * rng.standard_normal((N, P, R))).astype(np.float32)
    rows = (0.7 * rng.standard_normal((N, R, D))).astype(np.float32)
    task_prompts = np.zeros((N, P, D))
    for k in range(N):
        w = np.zeros((P, D))
        for i in range(P):
            for c in range(D):
                w[i, c] = sum(float(cols[k, i, j]) * float(rows[k, j, c]) for j in range(R))
        task_prompts[k] = prompt.astype(np.float64) * w
    config = {
        "auto_mapping": None,
        "base_model_name_or_path": "tiny-decoder",
        "inference_mode": True,
        "modules_to_save": None,
        "num_attention_heads": 2,
        "num_layers": 1,
        "num_ranks": R,
        "num_tasks": N,
        "num_transformer_submodules": 1,
        "num_virtual_tokens": P,
        "peft_type": "MULTITASK_PROMPT_TUNING",
        "peft_version": "0.20.0",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_state_dict_path": None,
        "prompt_tuning_init_task": 0,
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": "CAUSAL_LM",
        "token_dim": D,
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }
    adapter = os.path.join(OUT, "peft-adapter")
    os.makedirs(adapter, exist_ok=True)
    with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(adapter, "adapter_model.safetensors"),
                      [("prefix_task_cols", "F32", cols), ("prefix_task_rows", "F32", rows),
                       ("prompt_embeddings", "F32", prompt)])
    write_safetensors(os.path.join(OUT, "reference.safetensors"), [("task_prompts", "F64", task_prompts)])
    print("wrote", adapter, "and", os.path.join(OUT, "reference.safetensors"))


if __name__ == "__main__":
    main()
