#!/usr/bin/env python3
"""Writes a LoRA adapter for sentence-transformers/all-MiniLM-L6-v2 in Hugging Face PEFT's files and names,
without PEFT, torch or peft4j: the independent writer of the fixture in
peft-examples/src/test/resources/minilm-peft-adapter/.

What PEFT writes for LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
task_type="FEATURE_EXTRACTION") around the BertModel of all-MiniLM-L6-v2 (get_peft_model, then
save_pretrained; sentence-transformers' add_adapter saves the same names, because transformers prepends
"base_model.model." when it saves an adapter in PEFT's format):

  adapter_model.safetensors
    base_model.model.encoder.layer.{i}.attention.self.query.lora_A.weight  F32 [r, 384]
    base_model.model.encoder.layer.{i}.attention.self.query.lora_B.weight  F32 [384, r]
    base_model.model.encoder.layer.{i}.attention.self.value.lora_A.weight  F32 [r, 384]
    base_model.model.encoder.layer.{i}.attention.self.value.lora_B.weight  F32 [384, r]
    for i = 0..5, metadata {"format": "pt"}
  adapter_config.json
    every field of PEFT 0.20.0's LoraConfig (and its base classes) at its default, except r,
    lora_alpha, lora_dropout, target_modules, task_type, base_model_name_or_path, inference_mode (true
    on save) and peft_version; json.dumps(indent=2, sort_keys=True) as PeftConfigMixin.save_pretrained.

PyTorch's nn.Linear computes y = x W^T + b with weight W [out, in]; LoRA adds (alpha / r) * B A to W, so the
merged PyTorch weight is W + (alpha / r) * B @ A. PEFT leaves B zero at init; here B is random so the update
is visible. expected-delta.json holds, for every target, numbers of delta = (alpha / r) * B @ A computed here
in float64 from the float32 values written: its Frobenius norm, the sum of its entries and eight entries
delta[row][col] in PyTorch orientation [out, in], so that a reader cannot transpose A, B or delta unnoticed.

Safetensors layout (the format's own definition): 8-byte little-endian header length N, N bytes of JSON
(tensor name -> dtype, shape, data_offsets relative to the data section; "__metadata__" -> str map), padded
with spaces to a multiple of 8 as the reference writer does, then the raw little-endian tensor data.

Usage: python3 write_minilm_peft_adapter.py OUTPUT_DIR   (numpy only; deterministic)
"""
import json
import os
import struct
import sys

import numpy as np

BASE = "sentence-transformers/all-MiniLM-L6-v2"
LAYERS = 6
D = 384
R = 4
ALPHA = 8
TARGETS = ("query", "value")
SEED = 20260826
# Entries of delta (PyTorch orientation [out, in]) recorded for every target: corners, diagonal, off-diagonal.
ENTRIES = ((0, 0), (0, 1), (1, 0), (5, 17), (17, 5), (200, 3), (383, 0), (383, 383))


def tensor_name(layer, target, factor):
    return "base_model.model.encoder.layer.%d.attention.self.%s.lora_%s.weight" % (layer, target, factor)


def make_tensors():
    rng = np.random.default_rng(SEED)
    tensors = {}
    for layer in range(LAYERS):
        for target in TARGETS:
            # A as PyTorch's kaiming_uniform_(a=sqrt(5)) would draw it for a [r, in] weight: U(-1/sqrt(in), 1/sqrt(in)).
            bound = 1.0 / np.sqrt(D)
            a = rng.uniform(-bound, bound, size=(R, D)).astype("<f4")
            # B non-zero (a trained adapter): N(0, 0.05^2).
            b = (rng.standard_normal(size=(D, R)) * 0.05).astype("<f4")
            tensors[tensor_name(layer, target, "A")] = a
            tensors[tensor_name(layer, target, "B")] = b
    return tensors


def safetensors_bytes(tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    order = sorted(tensors)
    for name in order:
        t = tensors[name]
        assert t.dtype == np.dtype("<f4") and t.flags["C_CONTIGUOUS"]
        size = t.nbytes
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    data = b"".join(tensors[name].tobytes(order="C") for name in order)
    return struct.pack("<Q", len(text)) + text + data


def adapter_config():
    # PEFT 0.20.0 LoraConfig, PeftConfig and PeftConfigMixin fields with their defaults (runtime_config is
    # dropped by LoraConfig.to_dict), then the values this adapter sets.
    config = {
        "alora_invocation_tokens": None, "alpha_pattern": {}, "arrow_config": None, "auto_mapping": None,
        "base_model_name_or_path": None, "bias": "none", "corda_config": None, "ensure_weight_tying": False,
        "eva_config": None, "exclude_modules": None, "fan_in_fan_out": False, "inference_mode": False,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None, "layers_to_transform": None,
        "loftq_config": {}, "lora_alpha": 8, "lora_bias": False, "lora_dropout": 0.0, "lora_ga_config": None,
        "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None,
        "monteclora_config": None, "peft_type": "LORA", "peft_version": None, "qalora_group_size": 16, "r": 8,
        "rank_pattern": {}, "revision": None, "target_modules": None, "target_parameters": None,
        "task_type": None, "trainable_token_indices": None, "use_bdlora": None, "use_dora": False,
        "use_qalora": False, "use_rslora": False, "velora_config": None,
    }
    config.update({
        "base_model_name_or_path": BASE, "inference_mode": True, "lora_alpha": ALPHA, "lora_dropout": 0.1,
        "peft_version": "0.20.0", "r": R, "target_modules": list(TARGETS), "task_type": "FEATURE_EXTRACTION",
    })
    return json.dumps(config, indent=2, sort_keys=True)


def expected_deltas(tensors):
    scale = ALPHA / R
    out = {"scale": scale, "orientation": "PyTorch [out, in]: delta = (lora_alpha / r) * lora_B @ lora_A",
           "targets": {}}
    for layer in range(LAYERS):
        for target in TARGETS:
            a = tensors[tensor_name(layer, target, "A")].astype(np.float64)
            b = tensors[tensor_name(layer, target, "B")].astype(np.float64)
            delta = scale * (b @ a)
            module = "encoder.layer.%d.attention.self.%s" % (layer, target)
            out["targets"][module] = {
                "frobenius": float(np.linalg.norm(delta)),
                "sum": float(delta.sum()),
                "entries": [[r, c, float(delta[r, c])] for r, c in ENTRIES],
            }
    return json.dumps(out, indent=2, sort_keys=True)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    tensors = make_tensors()
    with open(os.path.join(out_dir, "adapter_model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors, {"format": "pt"}))
    with open(os.path.join(out_dir, "adapter_config.json"), "w", encoding="utf-8") as f:
        f.write(adapter_config())
    with open(os.path.join(out_dir, "expected-delta.json"), "w", encoding="utf-8") as f:
        f.write(expected_deltas(tensors))
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: write_minilm_peft_adapter.py OUTPUT_DIR")
    main(sys.argv[1])
