#!/usr/bin/env python3
"""Independent numpy references for the LoRA family (LoHa, LoKr, AdaLoRA, DoRA, LoRA on
embeddings and convolutions), written as small committed fixtures.

Every formula below was read from Hugging Face PEFT v0.20.0 (file and function named next to it)
and the papers, then written here from scratch with numpy only: no torch, no PEFT, no einsum
strings copied. Convolutions are direct loops. Tensors are in PEFT's (PyTorch) orientation:
dense W [out, in], conv W [out, in, kH, kW] / [out, in, k], embedding W [num_embeddings, dim],
conv inputs NCHW / NCW.

Output, for each case, under peft-lora/src/test/resources/family/<method>/<case>/:
  adapter_config.json        the config as PEFT writes it (PEFT's keys, sort_keys, indent 2)
  adapter_model.safetensors  the adapter tensors, F32, named base_model.model.<module>.<suffix>
                             exactly as PEFT's get_peft_model_state_dict names them
  reference.safetensors      inputs and expected values: x (F32 values), base_weight and
                             base_bias (F32), delta_weight, output, merged_weight (F64, computed in
                             float64 from the F32 values above)
  case.json                  scalars (r, alpha, scaling, geometry) and every tensor's shape
plus family/index.json (all case directories), family/lokr/factorization.json and
family/adalora/budget_schedule.json.

The safetensors files are written by hand: 8-byte little-endian header length, a JSON header
padded with spaces to a multiple of 8 bytes, then the raw little-endian data in header order.

Run from anywhere:  python3 peft-lora/src/test/python/family_reference.py
The output is deterministic (fixed seeds); the files are committed.
"""

import json
import math
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "resources", "family"))
PREFIX = "base_model.model."
PEFT_VERSION = "0.20.0"
CASES = []


# ----------------------------------------------------------------------------- file writing

def f32(a):
    """Round to float32 and back to float64: the values a float32 file holds, exactly."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype in {'F32','F64','I64'}, ndarray)."""
    header = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name, dtype, arr in tensors:
        arr = np.asarray(arr)
        np_type = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[dtype]
        raw = np.ascontiguousarray(arr, dtype=np_type).tobytes(order="C")
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


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def emit(method, case, config, adapter, reference, scalars):
    """adapter: {suffix-with-module: array} (F32); reference: list of (name, dtype, array)."""
    d = os.path.join(OUT, method, case)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "adapter_config.json"), config)
    adapter_list = [(PREFIX + k, "F32", v) for k, v in adapter.items()]
    write_safetensors(os.path.join(d, "adapter_model.safetensors"), adapter_list)
    write_safetensors(os.path.join(d, "reference.safetensors"), reference)
    info = dict(scalars)
    info["method"] = method
    info["case"] = case
    info["peft_type"] = config["peft_type"]
    info["adapter_tensors"] = {n: list(np.shape(a)) for n, _, a in adapter_list}
    info["reference_tensors"] = {n: {"dtype": t, "shape": list(np.shape(a))} for n, t, a in reference}
    write_json(os.path.join(d, "case.json"), info)
    CASES.append(method + "/" + case)


def ref(name, arr, dtype="F64"):
    return (name, dtype, np.asarray(arr))


# ----------------------------------------------------------------------------- common math

def kaiming_bound(shape):
    """torch.nn.init.kaiming_uniform_(a=sqrt(5)) bound: gain*sqrt(3/fan_in) = 1/sqrt(fan_in),
    fan_in = shape[1] * prod(shape[2:]). Used only to draw plausible magnitudes."""
    fan_in = shape[1] * int(np.prod(shape[2:])) if len(shape) > 1 else shape[0]
    return 1.0 / math.sqrt(fan_in)


def uniform(rng, shape, bound=None):
    b = kaiming_bound(shape) if bound is None else bound
    return f32(rng.uniform(-b, b, size=shape))


def normal(rng, shape, std):
    return f32(rng.normal(0.0, std, size=shape))


def linear(x, w, b=None):
    """PyTorch F.linear: x [N, in], w [out, in] -> x w^T (+ b)."""
    y = x @ w.T
    return y if b is None else y + b


def conv2d_loop(x, w, stride, padding):
    """Direct 2D cross-correlation, zero padding, dilation 1, groups 1.
    x [N, C, H, W], w [O, C, KH, KW] -> [N, O, OH, OW], OH = (H + 2p - KH) // s + 1."""
    n_, c_, h_, w_ = x.shape
    o_, c2, kh_, kw_ = w.shape
    assert c_ == c2
    sh, sw = stride
    ph, pw = padding
    oh_ = (h_ + 2 * ph - kh_) // sh + 1
    ow_ = (w_ + 2 * pw - kw_) // sw + 1
    y = np.zeros((n_, o_, oh_, ow_))
    for n in range(n_):
        for o in range(o_):
            for i in range(oh_):
                for j in range(ow_):
                    acc = 0.0
                    for c in range(c_):
                        for u in range(kh_):
                            hh = i * sh - ph + u
                            if hh < 0 or hh >= h_:
                                continue
                            for v in range(kw_):
                                ww = j * sw - pw + v
                                if ww < 0 or ww >= w_:
                                    continue
                                acc += x[n, c, hh, ww] * w[o, c, u, v]
                    y[n, o, i, j] = acc
    return y


def conv1d_loop(x, w, stride, padding):
    """Direct 1D cross-correlation: x [N, C, L], w [O, C, K] -> [N, O, OL]."""
    n_, c_, l_ = x.shape
    o_, c2, k_ = w.shape
    assert c_ == c2
    ol_ = (l_ + 2 * padding - k_) // stride + 1
    y = np.zeros((n_, o_, ol_))
    for n in range(n_):
        for o in range(o_):
            for i in range(ol_):
                acc = 0.0
                for c in range(c_):
                    for u in range(k_):
                        t = i * stride - padding + u
                        if 0 <= t < l_:
                            acc += x[n, c, t] * w[o, c, u]
                y[n, o, i] = acc
    return y


def add_channel_bias(y, b):
    shape = (1, -1) + (1,) * (y.ndim - 2)
    return y + b.reshape(shape)


def kron2(a, b):
    """Kronecker product of two matrices by its definition:
    K[i*p + k, j*q + l] = a[i, j] * b[k, l], with b of shape [p, q]."""
    m, n = a.shape
    p, q = b.shape
    k = np.zeros((m * p, n * q))
    for i in range(m):
        for j in range(n):
            k[i * p:(i + 1) * p, j * q:(j + 1) * q] = a[i, j] * b
    return k


def check_gradients(loss, args, grads, what, h=1e-6):
    """Central finite differences of loss(*args) against the analytic gradients, every entry."""
    for k, (arg, grad) in enumerate(zip(args, grads)):
        for idx in np.ndindex(arg.shape):
            up = [a.copy() for a in args]
            dn = [a.copy() for a in args]
            up[k][idx] += h
            dn[k][idx] -= h
            fd = (loss(*up) - loss(*dn)) / (2 * h)
            assert abs(fd - grad[idx]) < 1e-6 * max(1.0, abs(fd)), (what, k, idx, fd, grad[idx])


def assert_close(a, b, what, tol=1e-12):
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    err = np.max(np.abs(a - b)) if a.size else 0.0
    scale = max(1.0, np.max(np.abs(b)) if b.size else 1.0)
    assert err <= tol * scale, (what, err)


# ----------------------------------------------------------------------------- configs

def base_config(peft_type, targets):
    return {
        "auto_mapping": None,
        "base_model_name_or_path": None,
        "inference_mode": True,
        "peft_type": peft_type,
        "peft_version": PEFT_VERSION,
        "revision": None,
        "target_modules": targets,
        "task_type": None,
    }


def lycoris_config(peft_type, targets, r, alpha, **extra):
    # loha/config.py LoHaConfig and lokr/config.py LoKrConfig fields with their defaults
    c = base_config(peft_type, targets)
    c.update({
        "alpha": alpha,
        "alpha_pattern": {},
        "exclude_modules": None,
        "init_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "module_dropout": 0.0,
        "modules_to_save": None,
        "r": r,
        "rank_dropout": 0.0,
        "rank_pattern": {},
        "use_effective_conv2d": False,
    })
    if peft_type == "LOKR":
        c.update({"decompose_both": False, "decompose_factor": -1, "rank_dropout_scale": False})
    c.update(extra)
    return c


def lora_config(targets, r, alpha, peft_type="LORA", **extra):
    # lora/config.py LoraConfig: the keys that carry meaning for these cases, PEFT's defaults
    c = base_config(peft_type, targets)
    c.update({
        "alpha_pattern": {},
        "bias": "none",
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_bias": False,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "r": r,
        "rank_pattern": {},
        "use_dora": False,
        "use_rslora": False,
    })
    c.update(extra)
    return c


# ============================================================================ LoHa (FedPara)
# loha/layer.py LoHaLayer.update_layer: scaling = alpha / r; a Linear uses shape (out, in), a
#   Conv2d without use_effective_conv2d uses (out, in*kH*kW) and reshapes the result to the
#   conv weight; create_adapter_parameters: hada_w1_a [out, r], hada_w1_b [r, in'] (likewise
#   w2); with use_effective_conv2d: hada_t1 [r, r, kH, kW], hada_w1_a [r, out], hada_w1_b [r, in].
# loha/layer.py HadaWeight.forward (make_weight): dW = ((w1a @ w1b) * (w2a @ w2b)) * scale.
# loha/layer.py HadaWeightCP.forward (make_weight_cp): rebuild1[o, c, h, w] =
#   sum_{i,j} t1[i, j, h, w] * w1a[i, o] * w1b[j, c]; dW = rebuild1 * rebuild2 * scale.
# loha/layer.py get_delta_weight: in training with rank_dropout, rows (output features) of dW
#   are multiplied by drop / mean(drop), drop[o] = 1 if rand > rank_dropout else 0.
# loha/layer.py Linear._get_delta_activations: F.linear(x, dW), added to the base output;
#   Conv2d: F.conv2d(x, dW, base stride/padding/dilation/groups).
# The FedPara paper (arXiv 2108.06098) defines W = (X1 Y1^T) o (X2 Y2^T), rank up to r^2.

def loha_dense():
    rng = np.random.default_rng(101)
    n_in, n_out, r, alpha = 6, 4, 2, 3.0
    s = alpha / r
    w1a, w1b = uniform(rng, (n_out, r)), uniform(rng, (r, n_in))
    w2a, w2b = uniform(rng, (n_out, r)), uniform(rng, (r, n_in))  # trained: w2b no longer zero
    W, b = uniform(rng, (n_out, n_in)), uniform(rng, (n_out,))
    x = f32(rng.normal(size=(3, n_in)))
    dW = ((w1a @ w1b) * (w2a @ w2b)) * s
    y = linear(x, W, b) + linear(x, dW)
    merged = W + dW
    assert_close(linear(x, merged, b), y, "loha dense merge")
    drop = np.array([1.0, 0.0, 1.0, 1.0])  # rows kept by an injected rank-dropout draw
    dW_drop = dW * (drop / drop.mean())[:, None]
    emit("loha", "dense",
         lycoris_config("LOHA", ["dense"], r, alpha),
         {"dense.hada_w1_a": w1a, "dense.hada_w1_b": w1b, "dense.hada_w2_a": w2a, "dense.hada_w2_b": w2b},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", merged),
          ref("rank_dropout_keep", drop), ref("delta_weight_rank_dropped", dW_drop)],
         {"layer": "dense", "module": "dense", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_features": n_in, "out_features": n_out,
          "source": "loha/layer.py: LoHaLayer.update_layer, create_adapter_parameters, get_delta_weight,"
                    " HadaWeight.forward, Linear._get_delta_activations"})


def loha_conv2d():
    rng = np.random.default_rng(102)
    c_in, c_out, kh, kw, r, alpha = 3, 4, 3, 3, 2, 4.0
    s = alpha / r
    flat = c_in * kh * kw
    w1a, w1b = uniform(rng, (c_out, r)), uniform(rng, (r, flat))
    w2a, w2b = uniform(rng, (c_out, r)), uniform(rng, (r, flat))
    W, b = uniform(rng, (c_out, c_in, kh, kw)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 5, 5)))
    dW = (((w1a @ w1b) * (w2a @ w2b)) * s).reshape(c_out, c_in, kh, kw)
    stride, pad = (1, 1), (1, 1)
    y = add_channel_bias(conv2d_loop(x, W, stride, pad), b) + conv2d_loop(x, dW, stride, pad)
    merged = W + dW
    assert_close(add_channel_bias(conv2d_loop(x, merged, stride, pad), b), y, "loha conv merge")
    emit("loha", "conv2d",
         lycoris_config("LOHA", ["conv"], r, alpha),
         {"conv.hada_w1_a": w1a, "conv.hada_w1_b": w1b, "conv.hada_w2_a": w2a, "conv.hada_w2_b": w2b},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", merged)],
         {"layer": "conv2d", "module": "conv", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [kh, kw], "stride": list(stride),
          "padding": list(pad), "use_effective_conv2d": False,
          "source": "loha/layer.py: LoHaLayer.update_layer (Conv2d shape (out, in*kH*kW)), get_delta_weight"
                    " (reshape to the conv weight), Conv2d._get_delta_activations"})


def cp_rebuild(t, wa, wb):
    """LoHa/LoKr effective-conv rebuild: R[o, c, h, w] = sum_{i,j} t[i, j, h, w] * wa[i, o] * wb[j, c]."""
    rr, rr2, kh, kw = t.shape
    out = np.zeros((wa.shape[1], wb.shape[1], kh, kw))
    for o in range(wa.shape[1]):
        for c in range(wb.shape[1]):
            for h in range(kh):
                for w in range(kw):
                    acc = 0.0
                    for i in range(rr):
                        for j in range(rr2):
                            acc += t[i, j, h, w] * wa[i, o] * wb[j, c]
                    out[o, c, h, w] = acc
    return out


def loha_conv2d_effective():
    rng = np.random.default_rng(103)
    c_in, c_out, kh, kw, r, alpha = 3, 4, 3, 3, 2, 2.0
    s = alpha / r
    t1, t2 = uniform(rng, (r, r, kh, kw)), uniform(rng, (r, r, kh, kw))
    w1a, w1b = uniform(rng, (r, c_out)), uniform(rng, (r, c_in))
    w2a, w2b = uniform(rng, (r, c_out)), uniform(rng, (r, c_in))
    W, b = uniform(rng, (c_out, c_in, kh, kw)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 5, 5)))
    dW = cp_rebuild(t1, w1a, w1b) * cp_rebuild(t2, w2a, w2b) * s
    assert_close(dW, np.einsum("ijhw,io,jc->ochw", t1, w1a, w1b) * np.einsum("ijhw,io,jc->ochw", t2, w2a, w2b) * s,
                 "cp rebuild")
    stride, pad = (1, 1), (1, 1)
    y = add_channel_bias(conv2d_loop(x, W, stride, pad), b) + conv2d_loop(x, dW, stride, pad)
    merged = W + dW
    emit("loha", "conv2d_effective",
         lycoris_config("LOHA", ["conv"], r, alpha, use_effective_conv2d=True),
         {"conv.hada_t1": t1, "conv.hada_w1_a": w1a, "conv.hada_w1_b": w1b,
          "conv.hada_t2": t2, "conv.hada_w2_a": w2a, "conv.hada_w2_b": w2b},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", merged)],
         {"layer": "conv2d", "module": "conv", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [kh, kw], "stride": list(stride),
          "padding": list(pad), "use_effective_conv2d": True,
          "source": "loha/layer.py: create_adapter_parameters (len(shape) == 4), HadaWeightCP.forward"})


# ============================================================================ LoKr (LyCORIS)
# lokr/layer.py factorization(dimension, factor): if factor > 0 divides dimension, return
#   (factor, dimension // factor) as is (not reordered); otherwise walk divisors m = 2, 3, ...
#   while m < n, stop before a divisor whose m exceeds factor (factor -1 means no limit), keep the
#   last (m, n) and return it ordered (smaller, larger).
# lokr/layer.py LoKrLayer.update_layer (Linear): (in_m, in_n) = factorization(in, f),
#   (out_l, out_k) = factorization(out, f); lokr_w1 [out_l, in_m] (or lokr_w1_a [out_l, r] @
#   lokr_w1_b [r, in_m] when decompose_both and r < max(out_l, in_m) / 2); lokr_w2 [out_k, in_n]
#   (or lokr_w2_a [out_k, r] @ lokr_w2_b [r, in_n] when r < max(out_k, in_n) / 2);
#   scaling = alpha / r whichever factors are full.
# lokr/layer.py get_delta_weight / make_kron: dW = kron(w1, w2) * scaling, reshaped to the base
#   weight; a 4-d w2 (Conv2d full or effective) gets w1 unsqueezed to [out_l, in_m, 1, 1].
#   A Conv1d with a full 3-d lokr_w2 [out_k, in_n, k] meets a 2-d w1: torch.kron then prepends a
#   unit axis to w1 ([1, out_l, in_m]) and the [out_k, out_l*in_n, in_m*k] result is reshaped to
#   [out, in, k] -- a different element order than the Conv2d case (case conv1d_full_w2).
# lokr/layer.py rank dropout: rows of dW times drop, divided by mean(drop) only with
#   rank_dropout_scale.
# The LyCORIS paper (arXiv 2309.14859) defines LoKr as dW = W1 (x) W2, W2 optionally low-rank.

def factorization(dim, factor=-1):
    if factor > 0 and dim % factor == 0:
        return factor, dim // factor
    limit = dim if factor == -1 else factor
    m, n = 1, dim
    while m < n:
        cand = m + 1
        while dim % cand != 0:
            cand += 1
        if cand > limit:
            break
        m, n = cand, dim // cand
    return (m, n) if m <= n else (n, m)


FACTORIZATION_TABLE = [
    (1, -1), (2, -1), (7, -1), (12, -1), (16, -1), (24, -1), (36, -1), (48, -1), (64, -1), (100, -1),
    (127, -1), (128, -1), (256, -1), (384, -1), (768, -1), (1000, -1), (3072, -1), (4096, -1), (11008, -1),
    (128, 4), (128, 32), (12, 5), (24, 5), (25, 5), (10, 5), (100, 3), (1000, 8), (7, 2), (64, 64), (64, 3),
    (96, 7), (4096, 16), (3072, 24),
]


def lokr_factorization_table():
    rows = []
    for dim, factor in FACTORIZATION_TABLE:
        m, n = factorization(dim, factor)
        assert m * n == dim
        rows.append({"dimension": dim, "factor": factor, "m": m, "n": n})
    # the docstring examples of lokr/layer.py factorization
    assert factorization(256) == (16, 16) and factorization(128) == (8, 16)
    assert factorization(127) == (1, 127) and factorization(128, 4) == (4, 32)
    d = os.path.join(OUT, "lokr")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "factorization.json"), {
        "source": "lokr/layer.py factorization(dimension, factor)",
        "note": "a factor that divides the dimension is returned first as is, so m > n is possible "
                "(128, 32 -> 32, 4)",
        "rows": rows})


def lokr_dense_case(case, seed, n_in, n_out, r, alpha, decompose_both, factor):
    rng = np.random.default_rng(seed)
    s = alpha / r
    in_m, in_n = factorization(n_in, factor)
    out_l, out_k = factorization(n_out, factor)
    use_w1 = not (decompose_both and r < max(out_l, in_m) / 2)
    use_w2 = not (r < max(out_k, in_n) / 2)
    adapter = {}
    if use_w1:
        w1 = uniform(rng, (out_l, in_m))
        adapter["dense.lokr_w1"] = w1
    else:
        w1a, w1b = uniform(rng, (out_l, r)), uniform(rng, (r, in_m))
        adapter["dense.lokr_w1_a"], adapter["dense.lokr_w1_b"] = w1a, w1b
        w1 = w1a @ w1b
    if use_w2:
        w2 = uniform(rng, (out_k, in_n))
        adapter["dense.lokr_w2"] = w2
    else:
        w2a, w2b = uniform(rng, (out_k, r)), uniform(rng, (r, in_n))
        adapter["dense.lokr_w2_a"], adapter["dense.lokr_w2_b"] = w2a, w2b
        w2 = w2a @ w2b
    W, b = uniform(rng, (n_out, n_in)), uniform(rng, (n_out,))
    x = f32(rng.normal(size=(2, n_in)))
    dW = kron2(w1, w2) * s
    assert_close(dW, np.kron(w1, w2) * s, "kron")
    y = linear(x, W, b) + linear(x, dW)
    merged = W + dW
    extra = {"decompose_both": decompose_both, "decompose_factor": factor}
    emit("lokr", case, lycoris_config("LOKR", ["dense"], r, alpha, **extra), adapter,
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", merged)],
         {"layer": "dense", "module": "dense", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_features": n_in, "out_features": n_out, "in_factors": [in_m, in_n],
          "out_factors": [out_l, out_k], "use_w1": use_w1, "use_w2": use_w2,
          "decompose_both": decompose_both, "decompose_factor": factor,
          "source": "lokr/layer.py: LoKrLayer.update_layer (Linear), create_adapter_parameters,"
                    " get_delta_weight, make_kron, factorization"})


def lokr_conv2d():
    # Conv2d 4 -> 6 channels, 3x3, r = 1: (in_m, in_n) = (2, 2), (out_l, out_k) = (2, 3);
    # use_w2 = r >= max(3, 2) / 2 is false, so w2 = lokr_w2_a [3, 1] @ lokr_w2_b [1, 2*3*3].
    rng = np.random.default_rng(204)
    c_in, c_out, kh, kw, r, alpha = 4, 6, 3, 3, 1, 1.0
    s = alpha / r
    in_m, in_n = factorization(c_in)
    out_l, out_k = factorization(c_out)
    assert (in_m, in_n, out_l, out_k) == (2, 2, 2, 3)
    w1 = uniform(rng, (out_l, in_m))
    w2a, w2b = uniform(rng, (out_k, r)), uniform(rng, (r, in_n * kh * kw))
    w2 = w2a @ w2b
    dW = (kron2(w1, w2) * s).reshape(c_out, c_in, kh, kw)
    # the same by index: dW[i*out_k + a, j*in_n + jj, h, w] = w1[i, j] * w2[a, (jj*kh + h)*kw + w]
    check = np.zeros_like(dW)
    for i in range(out_l):
        for a in range(out_k):
            for j in range(in_m):
                for jj in range(in_n):
                    for h in range(kh):
                        for w in range(kw):
                            check[i * out_k + a, j * in_n + jj, h, w] = w1[i, j] * w2[a, (jj * kh + h) * kw + w] * s
    assert_close(dW, check, "lokr conv layout")
    W, b = uniform(rng, (c_out, c_in, kh, kw)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 4, 4)))
    stride, pad = (1, 1), (0, 0)
    y = add_channel_bias(conv2d_loop(x, W, stride, pad), b) + conv2d_loop(x, dW, stride, pad)
    emit("lokr", "conv2d", lycoris_config("LOKR", ["conv"], r, alpha),
         {"conv.lokr_w1": w1, "conv.lokr_w2_a": w2a, "conv.lokr_w2_b": w2b},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", W + dW)],
         {"layer": "conv2d", "module": "conv", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [kh, kw], "stride": list(stride),
          "padding": list(pad), "in_factors": [in_m, in_n], "out_factors": [out_l, out_k],
          "use_w1": True, "use_w2": False, "use_effective_conv2d": False,
          "source": "lokr/layer.py: update_layer (Conv2d), create_adapter_parameters (len(shape) == 4),"
                    " get_delta_weight, make_kron"})


def lokr_conv1d_full_w2():
    # Conv1d 4 -> 4 channels, kernel 3, r = 2: factors (2, 2) both ways; use_w2 = 2 >= 1, so
    # lokr_w2 is a full [2, 2, 3] tensor and w1 stays 2-d: the torch.kron quirk applies.
    rng = np.random.default_rng(205)
    c_in, c_out, k, r, alpha = 4, 4, 3, 2, 2.0
    s = alpha / r
    in_m, in_n = factorization(c_in)
    out_l, out_k = factorization(c_out)
    w1 = uniform(rng, (out_l, in_m))
    w2 = uniform(rng, (out_k, in_n, k))
    # PEFT's element order, by index: dW[a*out_l + i, jj*in_m + j, t] = w1[i, j] * w2[a, jj, t]
    dW = np.zeros((c_out, c_in, k))
    for a in range(out_k):
        for i in range(out_l):
            for jj in range(in_n):
                for j in range(in_m):
                    for t in range(k):
                        dW[a * out_l + i, jj * in_m + j, t] = w1[i, j] * w2[a, jj, t] * s
    # numpy's kron, like torch.kron, prepends unit axes to the lower-rank operand
    assert_close(dW, (np.kron(w1, w2) * s).reshape(c_out, c_in, k), "lokr conv1d quirk")
    W, b = uniform(rng, (c_out, c_in, k)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 6)))
    y = add_channel_bias(conv1d_loop(x, W, 1, 1), b) + conv1d_loop(x, dW, 1, 1)
    emit("lokr", "conv1d_full_w2", lycoris_config("LOKR", ["conv"], r, alpha),
         {"conv.lokr_w1": w1, "conv.lokr_w2": w2},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", W + dW)],
         {"layer": "conv1d", "module": "conv", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [k], "stride": [1], "padding": [1],
          "in_factors": [in_m, in_n], "out_factors": [out_l, out_k], "use_w1": True, "use_w2": True,
          "source": "lokr/layer.py: create_adapter_parameters (len(shape) == 3, use_w2), make_kron"
                    " (w1 2-d, w2 3-d: torch.kron prepends a unit axis to w1)"})


# ============================================================================ AdaLoRA
# adalora/layer.py AdaLoraLayer.update_layer: lora_A [r, in], lora_E [r, 1], lora_B [out, r]
#   (ParameterDicts: file keys have no ".weight"), ranknum = float(r) = init_r (never saved: the
#   LoRA/AdaLoRA state dict keeps keys containing "lora_", see utils/save_and_load.py),
#   scaling = lora_alpha if lora_alpha > 0 else r; reset_lora_parameters: E = 0,
#   A, B ~ N(0, 0.02^2).
# adalora/layer.py SVDLinear.forward: out += (dropout(x) @ (A * E)^T @ B^T) * scaling / (ranknum + 1e-5)
# adalora/layer.py SVDLinear.get_delta_weight: B @ (A * E) * scaling / (ranknum + 1e-5).
# adalora/layer.py SVDConv2d: lora_A [r, in*kH*kW]; dW = (B @ (A * E) * scaling / (ranknum + 1e-5))
#   reshaped to the conv weight, applied with the base's stride/padding.
# adalora/model.py resize_modules_by_rank_pattern / resize_state_dict_by_rank_pattern: the saved
#   rank_pattern maps "<module>.lora_E" to a list of init_r booleans; saved A keeps the True rows,
#   E the True rows, B the True columns; on load the layer is rebuilt at that rank and ranknum is
#   copied back from the init_r layer, so the scaling stays lora_alpha / (init_r + 1e-5).

ADA_EPS = 1e-5


def adalora_dense_cases():
    rng = np.random.default_rng(301)
    n_in, n_out, init_r, lora_alpha = 6, 5, 3, 4.0
    ranknum = float(init_r)
    A, B = normal(rng, (init_r, n_in), 0.3), normal(rng, (n_out, init_r), 0.3)
    E = f32(np.array([[0.7], [0.0], [-1.2]]))  # triplet 1 masked by the allocator
    W, b = uniform(rng, (n_out, n_in)), uniform(rng, (n_out,))
    x = f32(rng.normal(size=(3, n_in)))
    factor = lora_alpha / (ranknum + ADA_EPS)
    dW = B @ (A * E) * factor
    y = linear(x, W, b) + (x @ (A * E).T @ B.T) * factor
    assert_close(linear(x, W + dW, b), y, "adalora merge")
    common = {"layer": "dense", "module": "dense", "init_r": init_r, "lora_alpha": lora_alpha,
              "ranknum": ranknum, "scaling": lora_alpha, "effective_factor": factor, "additive": True,
              "in_features": n_in, "out_features": n_out}
    cfg = lora_config(["dense"], 8, lora_alpha, peft_type="ADALORA", rank_pattern=None,
                      target_r=2, init_r=init_r, tinit=0, tfinal=0, deltaT=1, beta1=0.85, beta2=0.85,
                      orth_reg_weight=0.5, total_step=10)
    emit("adalora", "dense", cfg,
         {"dense.lora_A": A, "dense.lora_B": B, "dense.lora_E": E},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", W + dW)],
         dict(common, rank=init_r,
              source="adalora/layer.py: AdaLoraLayer.update_layer, SVDLinear.forward, SVDLinear.get_delta_weight"))
    # the same adapter after PEFT's save with rank_pattern: triplet 1 dropped, scaling unchanged
    keep = [True, False, True]
    idx = [i for i, k in enumerate(keep) if k]
    cfg2 = dict(cfg, rank_pattern={"dense.lora_E": keep})
    emit("adalora", "dense_rank_pattern", cfg2,
         {"dense.lora_A": A[idx], "dense.lora_B": B[:, idx], "dense.lora_E": E[idx]},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", W + dW)],
         dict(common, rank=len(idx), rank_pattern={"dense.lora_E": keep},
              source="adalora/model.py: resize_state_dict_by_rank_pattern, resize_modules_by_rank_pattern"))


def adalora_conv2d():
    rng = np.random.default_rng(302)
    c_in, c_out, kh, kw, init_r, lora_alpha = 2, 3, 2, 2, 2, 2.0
    ranknum = float(init_r)
    A, B = normal(rng, (init_r, c_in * kh * kw), 0.3), normal(rng, (c_out, init_r), 0.3)
    E = f32(np.array([[0.5], [-0.8]]))
    W, b = uniform(rng, (c_out, c_in, kh, kw)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 4, 4)))
    factor = lora_alpha / (ranknum + ADA_EPS)
    dW = (B @ (A * E) * factor).reshape(c_out, c_in, kh, kw)
    y = add_channel_bias(conv2d_loop(x, W, (1, 1), (0, 0)), b) + conv2d_loop(x, dW, (1, 1), (0, 0))
    cfg = lora_config(["conv"], 8, lora_alpha, peft_type="ADALORA", rank_pattern=None,
                      target_r=1, init_r=init_r, tinit=0, tfinal=0, deltaT=1, beta1=0.85, beta2=0.85,
                      orth_reg_weight=0.5, total_step=10)
    emit("adalora", "conv2d", cfg,
         {"conv.lora_A": A, "conv.lora_B": B, "conv.lora_E": E},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", W + dW)],
         {"layer": "conv2d", "module": "conv", "init_r": init_r, "rank": init_r, "lora_alpha": lora_alpha,
          "ranknum": ranknum, "scaling": lora_alpha, "effective_factor": factor, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [kh, kw], "stride": [1, 1], "padding": [0, 0],
          "source": "adalora/layer.py: SVDConv2d.update_layer, get_delta_weight, forward"})


# adalora/layer.py RankAllocator.update_ipt, for every lora_A/lora_B/lora_E tensor p of the
#   adapter, after loss.backward() and optimizer.step() (p holds the updated value, grad the
#   step's raw gradient):
#     ipt = |p * grad|;  avg_ipt = beta1 * avg_ipt + (1 - beta1) * ipt;
#     avg_unc = beta2 * avg_unc + (1 - beta2) * |ipt - avg_ipt|   (avg_ipt already updated)
#   both averages start at zero (no bias correction).
# RankAllocator._element_score: avg_ipt * avg_unc.
# RankAllocator.mask_to_budget: per layer, triplet score S_i = score(E)[i] + mean_j score(A)[i, j]
#   + mean_o score(B)[o, i]; threshold = the (init_bgt - budget)-th smallest of all layers'
#   S (torch.kthvalue, 1-based); E[i] = 0 where S_i <= threshold; rank_pattern[layer] =
#   [S_i > threshold].
# adalora/model.py AdaLoraModel.forward: loss += orth_reg_weight * (1/N) * sum over every lora_A
#   (||A A^T - I||_F) and lora_B (||B^T B - I||_F) of the adapter, N the number of such matrices
#   (2 per adapted layer); the Frobenius norm itself, not its square as in the paper's Eq. 4.

def adalora_allocator():
    rng = np.random.default_rng(303)
    n_in, n_out, init_r = 4, 5, 3
    beta1, beta2, orth_w = 0.85, 0.85, 0.5
    layers = ["q", "v"]
    shapes = {"lora_A": (init_r, n_in), "lora_E": (init_r, 1), "lora_B": (n_out, init_r)}
    refs = []
    state = {}
    for step in (1, 2):
        for L in layers:
            for t, shp in shapes.items():
                p = normal(rng, shp, 0.5)
                g = normal(rng, shp, 0.2)
                key = L + "." + t
                avg_ipt, avg_unc = state.get(key, (np.zeros(shp), np.zeros(shp)))
                ipt = np.abs(p * g)
                avg_ipt = beta1 * avg_ipt + (1 - beta1) * ipt
                avg_unc = beta2 * avg_unc + (1 - beta2) * np.abs(ipt - avg_ipt)
                state[key] = (avg_ipt, avg_unc)
                refs += [ref("step%d.param.%s" % (step, key), p, "F32"),
                         ref("step%d.grad.%s" % (step, key), g, "F32"),
                         ref("step%d.ipt.%s" % (step, key), ipt),
                         ref("step%d.exp_avg_ipt.%s" % (step, key), avg_ipt),
                         ref("step%d.exp_avg_unc.%s" % (step, key), avg_unc)]
                if step == 2:
                    state[key + ".param"] = p
    scores = {}
    for L in layers:
        s_e = np.prod(state[L + ".lora_E"], axis=0)[:, 0]
        s_a = np.prod(state[L + ".lora_A"], axis=0).mean(axis=1)
        s_b = np.prod(state[L + ".lora_B"], axis=0).mean(axis=0)
        scores[L] = s_e + s_a + s_b
        refs.append(ref("triplet_score." + L, scores[L]))
    init_bgt = init_r * len(layers)
    budget = 4
    k = init_bgt - budget
    flat = np.sort(np.concatenate([scores[L] for L in layers]))
    threshold = flat[k - 1]
    rank_pattern = {}
    for L in layers:
        keep = scores[L] > threshold
        rank_pattern[L + ".lora_E"] = [bool(v) for v in keep]
        refs.append(ref("masked_lora_E." + L, np.where(keep[:, None], state[L + ".lora_E.param"], 0.0)))
    assert sum(sum(v) for v in rank_pattern.values()) == budget
    # orthogonal regularization on the step-2 parameters, and its gradient
    n_mats = 2 * len(layers)
    reg = 0.0
    for L in layers:
        A, Bm = state[L + ".lora_A.param"], state[L + ".lora_B.param"]
        MA = A @ A.T - np.eye(init_r)
        MB = Bm.T @ Bm - np.eye(init_r)
        na, nb = np.linalg.norm(MA), np.linalg.norm(MB)
        reg += na + nb
        # d||M||_F / dA with M = A A^T - I (symmetric): 2 M A / ||M||_F; for B^T B - I: 2 B M / ||M||_F
        refs.append(ref("orth_reg_grad." + L + ".lora_A", orth_w * (2 * MA @ A / na) / n_mats))
        refs.append(ref("orth_reg_grad." + L + ".lora_B", orth_w * (2 * Bm @ MB / nb) / n_mats))
    reg /= n_mats
    # finite-difference check of one gradient entry, so the formula above is not taken on trust
    A0 = state["q.lora_A.param"].copy()

    def reg_q_a(a):
        m = a @ a.T - np.eye(init_r)
        return orth_w * np.linalg.norm(m) / n_mats

    h = 1e-6
    Ap, Am = A0.copy(), A0.copy()
    Ap[1, 2] += h
    Am[1, 2] -= h
    fd = (reg_q_a(Ap) - reg_q_a(Am)) / (2 * h)
    analytic = dict((n, a) for n, _, a in refs)["orth_reg_grad.q.lora_A"][1, 2]
    assert abs(fd - analytic) < 1e-7, (fd, analytic)
    d = os.path.join(OUT, "adalora", "allocator")
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "reference.safetensors"), refs)
    write_json(os.path.join(d, "case.json"), {
        "method": "adalora", "case": "allocator", "peft_type": "ADALORA", "layers": layers,
        "init_r": init_r, "beta1": beta1, "beta2": beta2, "init_bgt": init_bgt, "budget": budget,
        "kthvalue_k": k, "threshold": float(threshold), "rank_pattern": rank_pattern,
        "orth_reg_weight": orth_w, "orth_reg_matrices": n_mats, "orth_reg": float(reg),
        "orth_reg_loss_term": float(orth_w * reg),
        "reference_tensors": {n: {"dtype": t, "shape": list(np.shape(a))} for n, t, a in refs},
        "source": "adalora/layer.py RankAllocator.update_ipt, _element_score, _combine_ipt, mask_to_budget;"
                  " adalora/model.py AdaLoraModel.forward (orthogonal regularization)"})
    CASES.append("adalora/allocator")


# adalora/layer.py RankAllocator.budget_schedule(step):
#   step <= tinit: (init_bgt, no mask); step > total_step - tfinal: (target_bgt, mask);
#   otherwise mul = 1 - (step - tinit) / (total_step - tfinal - tinit),
#   budget = int((init_bgt - target_bgt) * mul^3 + target_bgt), mask iff step % deltaT == 0.
# adalora/model.py AdaLoraModel.update_and_allocate(step):
#   step <  T - tfinal: update_ipt, then mask_to_budget if the schedule says mask;
#   step == T - tfinal: no update_ipt, mask_to_budget at budget_schedule(step) (= target_bgt),
#                       rank_pattern fixed, scores reset;
#   step >  T - tfinal: re-apply the fixed rank_pattern (E of dropped triplets set to 0).

def budget_schedule(step, init_bgt, target_bgt, tinit, tfinal, total, delta_t):
    if step <= tinit:
        return init_bgt, False
    if step > total - tfinal:
        return target_bgt, True
    mul = 1 - (step - tinit) / (total - tfinal - tinit)
    return int((init_bgt - target_bgt) * (mul ** 3) + target_bgt), step % delta_t == 0


def model_action(step, tfinal, total, mask):
    if step < total - tfinal:
        return "update_ipt+mask_to_budget" if mask else "update_ipt"
    if step == total - tfinal:
        return "final_mask_to_budget"
    return "apply_fixed_rank_pattern"


def adalora_budget_schedules():
    configs = [
        {"name": "small", "init_r": 3, "target_r": 1, "layers": 2, "tinit": 2, "tfinal": 3, "total_step": 12,
         "deltaT": 2, "steps": list(range(0, 14))},
        {"name": "no_final_phase", "init_r": 4, "target_r": 2, "layers": 3, "tinit": 0, "tfinal": 0,
         "total_step": 6, "deltaT": 1, "steps": list(range(0, 7))},
        {"name": "typical", "init_r": 12, "target_r": 8, "layers": 24, "tinit": 200, "tfinal": 1000,
         "total_step": 3000, "deltaT": 10,
         "steps": [0, 1, 199, 200, 201, 205, 210, 500, 1000, 1500, 1990, 1999, 2000, 2001, 2500, 2999, 3000]},
    ]
    out = []
    for c in configs:
        init_bgt = c["init_r"] * c["layers"]
        target_bgt = c["target_r"] * c["layers"]
        rows = []
        for step in c["steps"]:
            bgt, mask = budget_schedule(step, init_bgt, target_bgt, c["tinit"], c["tfinal"], c["total_step"],
                                        c["deltaT"])
            rows.append({"step": step, "schedule_budget": bgt, "schedule_mask": mask,
                         "action": model_action(step, c["tfinal"], c["total_step"], mask)})
        out.append(dict(c, init_bgt=init_bgt, target_bgt=target_bgt, rows=rows))
    d = os.path.join(OUT, "adalora")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "budget_schedule.json"), {
        "source": "adalora/layer.py RankAllocator.budget_schedule; adalora/model.py"
                  " AdaLoraModel.update_and_allocate",
        "columns": "schedule_budget, schedule_mask: RankAllocator.budget_schedule(step); action: what"
                   " AdaLoraModel.update_and_allocate(step) does (at step == total_step - tfinal it masks"
                   " to target_bgt whatever schedule_mask says; after it, it re-applies the fixed"
                   " rank_pattern and ignores the schedule)",
        "schedules": out})


# ============================================================================ DoRA
# lora/dora.py DoraLinearLayer.get_weight_norm: ||W + scaling * B A|| over dim 1 of the
#   [out, in] weight, i.e. one norm per output feature; update_layer stores it as the initial
#   magnitude (B = 0 at init, so m = ||W|| per output row).
# lora/dora.py DoraLinearLayer.forward: norm detached ("treated as a constant", DoRA paper
#   arXiv 2402.09353 section 4.3); c = m / norm; extra = (c - 1) * (x W^T) + c * scaling * B(A(x));
#   added to the base output, whose bias is therefore not scaled. With dropout in training
#   (variants.py DoraLinearVariant.forward) both x W^T and B(A(.)) see the dropped-out x.
# lora/variants.py DoraLinearVariant.merge_*: W' = (m / ||W + dW||)[:, None] * (W + dW).
# lora/dora.py DoraEmbeddingLayer (fan_in_fan_out=True): the norm is taken on W^T + s (B A), one
#   per embedding dimension, over the vocabulary; result = c * base + c * s * (embed(ids, A^T) B^T).
# lora/dora.py _DoraConvNdLayer.get_weight_norm: norm over all dims but 0, kept as
#   [1, out, 1, 1] (Conv2d) / [1, out, 1] (Conv1d): lora_magnitude_vector has that shape.
# Gradients (norm constant, g = dL/dy, c per output): dL/dm = sum(g * (x (W + dW)^T)) / norm,
#   dL/dB = s (g c)^T (x A^T), dL/dA = s ((g c) B)^T x, dL/dx = (g c) (W + dW).

def dora_dense():
    rng = np.random.default_rng(401)
    n_in, n_out, r, alpha = 5, 4, 2, 4.0
    s = alpha / r
    A, B = uniform(rng, (r, n_in)), normal(rng, (n_out, r), 0.3)
    W, b = uniform(rng, (n_out, n_in)), uniform(rng, (n_out,))
    m_init = np.linalg.norm(W, axis=1)
    m = f32(m_init * (1.0 + 0.2 * rng.uniform(-1, 1, size=n_out)))
    x = f32(rng.normal(size=(3, n_in)))
    dW = s * (B @ A)
    norm = np.linalg.norm(W + dW, axis=1)
    c = m / norm
    y = linear(x, W, b) + (c - 1) * (x @ W.T) + c * s * (x @ A.T @ B.T)
    merged = c[:, None] * (W + dW)
    assert_close(linear(x, merged, b), y, "dora merge")
    g = f32(rng.normal(size=y.shape))
    gc = g * c
    grad_m = np.sum(g * (x @ (W + dW).T), axis=0) / norm
    grad_B = s * gc.T @ (x @ A.T)
    grad_A = s * (gc @ B).T @ x
    grad_x = gc @ (W + dW)

    def loss(a, bb, mm, xx):  # the norm held at its current value, as the detached backward sees it
        cc = mm / norm
        return np.sum(g * (linear(xx, W, b) + (cc - 1) * (xx @ W.T) + cc * s * (xx @ a.T @ bb.T)))

    check_gradients(loss, [A, B, m, x], [grad_A, grad_B, grad_m, grad_x], "dora dense")
    cfg = lora_config(["dense"], r, alpha, use_dora=True)
    emit("dora", "dense", cfg,
         {"dense.lora_A.weight": A, "dense.lora_B.weight": B, "dense.lora_magnitude_vector": m},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("weight_norm", norm), ref("magnitude_at_init", m_init),
          ref("output", y), ref("merged_weight", merged), ref("grad_output", g, "F32"),
          ref("grad_magnitude", grad_m), ref("grad_lora_A", grad_A), ref("grad_lora_B", grad_B),
          ref("grad_x", grad_x)],
         {"layer": "dense", "module": "dense", "r": r, "alpha": alpha, "scaling": s, "additive": False,
          "in_features": n_in, "out_features": n_out,
          "source": "lora/dora.py DoraLinearLayer.get_weight_norm, update_layer, forward;"
                    " lora/variants.py DoraLinearVariant.merge_unsafe, forward"})


def dora_embedding():
    rng = np.random.default_rng(402)
    vocab, dim, r, alpha = 7, 4, 2, 2.0
    s = alpha / r
    A, B = normal(rng, (r, vocab), 0.5), normal(rng, (dim, r), 0.5)  # lora_embedding_A / _B
    W = normal(rng, (vocab, dim), 1.0)
    m_init = np.linalg.norm(W, axis=0)
    m = f32(m_init * (1.0 + 0.2 * rng.uniform(-1, 1, size=dim)))
    ids = np.array([[0, 3, 6], [2, 2, 5]], dtype=np.int64)
    dW = s * (A.T @ B.T)  # [vocab, dim], lora/layer.py Embedding.get_delta_weight
    norm = np.linalg.norm(W + dW, axis=0)  # one per embedding dimension, over the vocabulary
    c = m / norm
    base = W[ids]
    lora = (A.T[ids] @ B.T) * s
    y = c * base + c * lora
    merged = c[None, :] * (W + dW)
    assert_close(merged[ids], y, "dora embedding merge")
    g = f32(rng.normal(size=y.shape))
    gc = g * c
    grad_m = np.sum((g * (base + lora)).reshape(-1, dim), axis=0) / norm
    # dL/dB[d, k] = s * sum_{tokens} gc[t, d] * A[k, id_t]; dL/dA[k, v] = s * sum_{t: id_t = v} (gc B)[t, k]
    flat_ids = ids.reshape(-1)
    gcf = gc.reshape(-1, dim)
    grad_B = s * gcf.T @ A.T[flat_ids]
    grad_A = np.zeros_like(A)
    for t, v in enumerate(flat_ids):
        grad_A[:, v] += s * (gcf[t] @ B)

    def loss(a, bb, mm):  # the norm held at its current value
        cc = mm / norm
        return np.sum(g * (cc * W[ids] + cc * (a.T[ids] @ bb.T) * s))

    check_gradients(loss, [A, B, m], [grad_A, grad_B, grad_m], "dora embedding")
    cfg = lora_config(["embed"], r, alpha, use_dora=True)
    emit("dora", "embedding", cfg,
         {"embed.lora_embedding_A": A, "embed.lora_embedding_B": B, "embed.lora_magnitude_vector": m},
         [ref("ids", ids, "I64"), ref("base_weight", W, "F32"), ref("delta_weight", dW),
          ref("weight_norm", norm), ref("magnitude_at_init", m_init), ref("output", y),
          ref("merged_weight", merged), ref("grad_output", g, "F32"), ref("grad_magnitude", grad_m),
          ref("grad_lora_embedding_A", grad_A), ref("grad_lora_embedding_B", grad_B)],
         {"layer": "embedding", "module": "embed", "r": r, "alpha": alpha, "scaling": s, "additive": False,
          "num_embeddings": vocab, "embedding_dim": dim,
          "source": "lora/dora.py DoraEmbeddingLayer.get_lora_weight, forward (get_weight_norm with"
                    " fan_in_fan_out=True); lora/variants.py DoraEmbeddingVariant.merge_unsafe, forward"})


def dora_conv(case, seed, conv1d):
    rng = np.random.default_rng(seed)
    c_in, c_out, k, r, alpha = 3, 4, 3, 2, 2.0
    s = alpha / r
    if conv1d:
        kshape = (k,)
        A = uniform(rng, (r, c_in, k))
        B = normal(rng, (c_out, r, 1), 0.3)
        W, b = uniform(rng, (c_out, c_in, k)), uniform(rng, (c_out,))
        x = f32(rng.normal(size=(2, c_in, 6)))
        conv = lambda xx, ww: conv1d_loop(xx, ww, 1, 1)  # noqa: E731
        conv_1x1 = lambda xx, ww: conv1d_loop(xx, ww, 1, 0)  # noqa: E731
    else:
        kshape = (k, k)
        A = uniform(rng, (r, c_in, k, k))
        B = normal(rng, (c_out, r, 1, 1), 0.3)
        W, b = uniform(rng, (c_out, c_in, k, k)), uniform(rng, (c_out,))
        x = f32(rng.normal(size=(2, c_in, 5, 5)))
        conv = lambda xx, ww: conv2d_loop(xx, ww, (1, 1), (1, 1))  # noqa: E731
        conv_1x1 = lambda xx, ww: conv2d_loop(xx, ww, (1, 1), (0, 0))  # noqa: E731
    dW = s * (B.reshape(c_out, r) @ A.reshape(r, -1)).reshape(W.shape)
    norm = np.linalg.norm((W + dW).reshape(c_out, -1), axis=1)
    m_init = np.linalg.norm(W.reshape(c_out, -1), axis=1)
    m_vec = f32(m_init * (1.0 + 0.2 * rng.uniform(-1, 1, size=c_out)))
    mshape = (1, c_out) + (1,) * len(kshape)
    c = m_vec / norm
    cb = c.reshape((1, c_out) + (1,) * len(kshape))
    base_nob = conv(x, W)
    # lora branch as PEFT runs it: lora_A conv with the base geometry, then lora_B as a 1x1 conv
    after_a = conv(x, A)
    lora = conv_1x1(after_a, B) * s
    y = add_channel_bias(base_nob, b) + (cb - 1) * base_nob + cb * lora
    merged = c.reshape((c_out,) + (1,) * (W.ndim - 1)) * (W + dW)
    assert_close(add_channel_bias(conv(x, merged), b), y, "dora conv merge")
    cfg = lora_config(["conv"], r, alpha, use_dora=True)
    geometry = {"kernel": list(kshape), "stride": [1] * len(kshape), "padding": [1] * len(kshape)}
    emit("dora", case, cfg,
         {"conv.lora_A.weight": A, "conv.lora_B.weight": B, "conv.lora_magnitude_vector": m_vec.reshape(mshape)},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("weight_norm", norm), ref("magnitude_at_init", m_init),
          ref("output", y), ref("merged_weight", merged)],
         dict(geometry, layer="conv1d" if conv1d else "conv2d", module="conv", r=r, alpha=alpha, scaling=s,
              additive=False, in_channels=c_in, out_channels=c_out,
              source="lora/dora.py _DoraConvNdLayer.get_weight_norm, get_lora_weight, forward;"
                     " lora/variants.py _DoraConvNdVariant.merge_unsafe"))


# ============================================================================ LoRA: embedding, conv
# lora/layer.py Embedding.update_layer: lora_embedding_A [r, num_embeddings],
#   lora_embedding_B [embedding_dim, r] (ParameterDicts: no ".weight" in the key);
#   reset_lora_parameters: A = 0, B ~ N(0, 1). No dropout on this path.
# lora/layer.py Embedding.forward: out += (F.embedding(ids, A^T) @ B^T) * scaling.
# lora/layer.py Embedding.get_delta_weight: (B @ A)^T * scaling, [num_embeddings, embedding_dim].
# lora/layer.py _ConvNd.update_layer: lora_A = a conv (in -> r) with the base's kernel, stride and
#   padding (not its dilation), lora_B = a 1x1 (1-wide) conv r -> out, stride 1; keys
#   lora_A.weight [r, in, kH, kW] / [r, in, k], lora_B.weight [out, r, 1, 1] / [out, r, 1].
# lora/layer.py _ConvNd.forward: out += lora_B(lora_A(dropout(x))) * scaling.
# lora/layer.py _ConvNd.get_delta_weight: 1x1 kernels: B[:, :, 0, 0] @ A[:, :, 0, 0]; otherwise
#   conv(A^T viewed as a batch of in images with r channels, B) transposed back to [out, in, ...],
#   which equals dW[o, c, ...] = sum_k B[o, k] A[k, c, ...]; times scaling.

def lora_embedding():
    rng = np.random.default_rng(501)
    vocab, dim, r, alpha = 7, 4, 2, 4.0
    s = alpha / r
    A, B = normal(rng, (r, vocab), 0.5), normal(rng, (dim, r), 1.0)
    W = normal(rng, (vocab, dim), 1.0)
    ids = np.array([[1, 4, 4], [6, 0, 3]], dtype=np.int64)
    dW = s * (B @ A).T
    y = W[ids] + (A.T[ids] @ B.T) * s
    merged = W + dW
    assert_close(merged[ids], y, "lora embedding merge")
    emit("lora", "embedding", lora_config(["embed"], r, alpha),
         {"embed.lora_embedding_A": A, "embed.lora_embedding_B": B},
         [ref("ids", ids, "I64"), ref("base_weight", W, "F32"), ref("delta_weight", dW), ref("output", y),
          ref("merged_weight", merged)],
         {"layer": "embedding", "module": "embed", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "num_embeddings": vocab, "embedding_dim": dim,
          "source": "lora/layer.py Embedding.update_layer, _embed, forward, get_delta_weight;"
                    " LoraLayer.reset_lora_parameters"})


def conv_delta_by_conv(A, B, conv):
    """PEFT's route for kernels > 1: treat A^T [in, r, ...] as a batch of `in` inputs with r
    channels, convolve with B [out, r, 1...] (a 1x1 conv), and swap the first two axes."""
    a_t = np.swapaxes(A, 0, 1)
    y = conv(a_t, B)  # [in, out, ...]
    return np.swapaxes(y, 0, 1)


def lora_conv2d():
    rng = np.random.default_rng(502)
    c_in, c_out, k, r, alpha = 3, 4, 3, 2, 2.0
    s = alpha / r
    stride, pad = (2, 2), (1, 1)
    A = uniform(rng, (r, c_in, k, k))
    B = normal(rng, (c_out, r, 1, 1), 0.3)
    W, b = uniform(rng, (c_out, c_in, k, k)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 7, 7)))
    dW = s * conv_delta_by_conv(A, B, lambda xx, ww: conv2d_loop(xx, ww, (1, 1), (0, 0)))
    assert_close(dW, s * np.einsum("ok,kchw->ochw", B[:, :, 0, 0], A), "conv delta two ways")
    lora = conv2d_loop(conv2d_loop(x, A, stride, pad), B, (1, 1), (0, 0)) * s
    y = add_channel_bias(conv2d_loop(x, W, stride, pad), b) + lora
    merged = W + dW
    assert_close(add_channel_bias(conv2d_loop(x, merged, stride, pad), b), y, "lora conv2d merge")
    emit("lora", "conv2d", lora_config(["conv"], r, alpha),
         {"conv.lora_A.weight": A, "conv.lora_B.weight": B},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", merged)],
         {"layer": "conv2d", "module": "conv", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [k, k], "stride": list(stride),
          "padding": list(pad),
          "source": "lora/layer.py _ConvNd.update_layer, forward, get_delta_weight; Conv2d"})


def lora_conv1d():
    rng = np.random.default_rng(503)
    c_in, c_out, k, r, alpha = 3, 4, 3, 2, 4.0
    s = alpha / r
    stride, pad = 2, 1
    A = uniform(rng, (r, c_in, k))
    B = normal(rng, (c_out, r, 1), 0.3)
    W, b = uniform(rng, (c_out, c_in, k)), uniform(rng, (c_out,))
    x = f32(rng.normal(size=(2, c_in, 8)))
    dW = s * conv_delta_by_conv(A, B, lambda xx, ww: conv1d_loop(xx, ww, 1, 0))
    assert_close(dW, s * np.einsum("ok,kct->oct", B[:, :, 0], A), "conv1d delta two ways")
    lora = conv1d_loop(conv1d_loop(x, A, stride, pad), B, 1, 0) * s
    y = add_channel_bias(conv1d_loop(x, W, stride, pad), b) + lora
    merged = W + dW
    assert_close(add_channel_bias(conv1d_loop(x, merged, stride, pad), b), y, "lora conv1d merge")
    emit("lora", "conv1d", lora_config(["conv"], r, alpha),
         {"conv.lora_A.weight": A, "conv.lora_B.weight": B},
         [ref("x", x, "F32"), ref("base_weight", W, "F32"), ref("base_bias", b, "F32"),
          ref("delta_weight", dW), ref("output", y), ref("merged_weight", merged)],
         {"layer": "conv1d", "module": "conv", "r": r, "alpha": alpha, "scaling": s, "additive": True,
          "in_channels": c_in, "out_channels": c_out, "kernel": [k], "stride": [stride], "padding": [pad],
          "dl4j_weight_shape": [c_out, c_in, k, 1],
          "source": "lora/layer.py _ConvNd.update_layer, forward, get_delta_weight; Conv1d"})


def main():
    loha_dense()
    loha_conv2d()
    loha_conv2d_effective()
    lokr_factorization_table()
    # in 32 = 4 x 8, out 12 = 3 x 4, r 2: w1 full [3, 4]; w2 low-rank (2 < 8 / 2)
    lokr_dense_case("dense", 201, 32, 12, 2, 2.0, False, -1)
    # decompose_factor 5: in 25 = 5 x 5, out 10 = 5 x 2; r 2 < 5 / 2: both w1 and w2 low-rank
    lokr_dense_case("dense_decompose_both", 202, 25, 10, 2, 3.0, True, 5)
    # in 8 = 2 x 4, out 6 = 2 x 3, r 4 >= 4 / 2: both factors full (PEFT's common small-layer case)
    lokr_dense_case("dense_full", 203, 8, 6, 4, 2.0, False, -1)
    lokr_conv2d()
    lokr_conv1d_full_w2()
    adalora_dense_cases()
    adalora_conv2d()
    adalora_allocator()
    adalora_budget_schedules()
    dora_dense()
    dora_embedding()
    dora_conv("conv2d", 403, conv1d=False)
    dora_conv("conv1d", 404, conv1d=True)
    lora_embedding()
    lora_conv2d()
    lora_conv1d()
    write_json(os.path.join(OUT, "index.json"), {
        "generator": "peft-lora/src/test/python/family_reference.py",
        "peft_version_read": PEFT_VERSION,
        "cases": CASES,
        "tables": ["lokr/factorization.json", "adalora/budget_schedule.json"]})
    print("wrote %d cases under %s" % (len(CASES), OUT))


if __name__ == "__main__":
    main()
