#!/usr/bin/env python3
"""Independent numpy reference of shifted sparse attention (S²-Attn, LongLoRA arXiv 2309.12307 §3.2)
as peft4j defines it, written as a small committed fixture.

The reference works position by position, the way the paper describes the pattern, with no
reshaping tricks: for every batch row, head and query position p it finds the group that holds p
for that head, takes the keys of that group that are allowed, and computes softmax attention over
them with plain loops.

  groups of size G over the positions 0 … T'-1, T' = ceil(T / G)·G (positions ≥ T are padding)
  heads 0 … h/2-1      group i = { i·G + a                : a = 0 … G-1 }
  heads h/2 … h-1      group i = { (i·G + a + G/2) mod T' : a = 0 … G-1 }   (shifted by half a group)
  query p attends to key c in its group when c < T, mask[c] = 1 and, if causal, c ≤ p
  (a query with no allowed key outputs 0)

Output: peft-core/src/test/resources/org/peft4j/core/blocks/s2_attention_reference.safetensors,
F64 tensors per case <name>: <name>.q [b,h,T,d], <name>.k, <name>.v [b,h,T,dv], <name>.mask [b,T]
(all ones when the case has none), <name>.out [b,h,T,dv], and <name>.meta [4] = (G, causal,
has_mask, scale); plus the full causal attention <one_group>.full for the one-group case.

The safetensors file is written by hand: 8-byte little-endian header length, a JSON header padded
with spaces to a multiple of 8 bytes, then the raw little-endian data in header order.

Run from anywhere:  python3 peft-core/src/test/python/s2_attention_reference.py
The output is deterministic (fixed seed); the file is committed.
"""

import json
import math
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "resources", "org", "peft4j", "core", "blocks",
                                    "s2_attention_reference.safetensors"))


def write_safetensors(path, tensors):
    """tensors: list of (name, float64 ndarray)."""
    header = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype="<f8").tobytes(order="C")
        header[name] = {"dtype": "F64", "shape": [int(s) for s in arr.shape],
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


def group_of(p, head, h, T, G):
    """The positions (< T) of the group that holds position p for this head."""
    tp = int(math.ceil(T / G)) * G
    shift = G // 2 if head >= h // 2 else 0
    # place of p in the (possibly rolled) order, then the group of that place
    place = (p - shift) % tp
    first = (place // G) * G
    members = [(first + a + shift) % tp for a in range(G)]
    return [c for c in members if c < T]


def attend(qp, keys, k, v, scale):
    if not keys:
        return np.zeros(v.shape[-1])
    s = np.array([scale * float(np.dot(qp, k[c])) for c in keys])
    e = np.exp(s - s.max())
    w = e / e.sum()
    out = np.zeros(v.shape[-1])
    for wi, c in zip(w, keys):
        out += wi * v[c]
    return out


def s2_attention(q, k, v, mask, G, causal, scale):
    b, h, T, _ = q.shape
    out = np.zeros((b, h, T, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            for p in range(T):
                keys = [c for c in group_of(p, hi, h, T, G)
                        if mask[bi, c] != 0 and (not causal or c <= p)]
                out[bi, hi, p] = attend(q[bi, hi, p], keys, k[bi, hi], v[bi, hi], scale)
    return out


def full_attention(q, k, v, mask, causal, scale):
    b, h, T, _ = q.shape
    out = np.zeros((b, h, T, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            for p in range(T):
                keys = [c for c in range(T) if mask[bi, c] != 0 and (not causal or c <= p)]
                out[bi, hi, p] = attend(q[bi, hi, p], keys, k[bi, hi], v[bi, hi], scale)
    return out


def main():
    rng = np.random.default_rng(20240607)
    cases = [
        # name, b, h, T, d, dv, G, causal, padded rows (last n positions masked per batch row)
        ("causal_two_groups", 2, 4, 8, 3, 2, 4, True, None),
        ("bidirectional_masked", 2, 4, 8, 3, 2, 4, False, [0, 2]),
        ("causal_padded_length_masked", 2, 4, 10, 3, 2, 4, True, [3, 0]),
        ("causal_two_heads_three_groups", 1, 2, 12, 2, 3, 4, True, None),
        ("causal_one_group", 2, 4, 8, 3, 2, 8, True, None),
    ]
    tensors = []
    for name, b, h, T, d, dv, G, causal, pad in cases:
        q = rng.standard_normal((b, h, T, d))
        k = rng.standard_normal((b, h, T, d))
        v = rng.standard_normal((b, h, T, dv))
        mask = np.ones((b, T))
        if pad is not None:
            for bi, n in enumerate(pad):
                if n:
                    mask[bi, T - n:] = 0
        scale = 1.0 / math.sqrt(d)
        out = s2_attention(q, k, v, mask, G, causal, scale)
        tensors += [(name + ".q", q), (name + ".k", k), (name + ".v", v), (name + ".mask", mask),
                    (name + ".out", out),
                    (name + ".meta", np.array([G, 1.0 if causal else 0.0, 0.0 if pad is None else 1.0, scale]))]
        if T <= G:
            full = full_attention(q, k, v, mask, causal, scale)
            assert np.allclose(out, full, rtol=0, atol=1e-12), "one group must be full attention"
            tensors.append((name + ".full", full))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    write_safetensors(OUT, tensors)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
