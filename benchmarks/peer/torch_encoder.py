"""The PyTorch peer of peft4j's EncoderStepBench and EncoderInferenceBench: a MiniLM-sized BERT encoder
(6 post-norm layers, d 384, 12 heads, FFN 1536 with the erf GELU, vocabulary 30522, 512 positions, LayerNorm
eps 1e-12) with masked mean pooling and a 2-class head, in plain PyTorch on the CPU, float32.

Modes:
  full       one training step, every weight trains            (batch 8 x 64 tokens, Adam 1e-4)
  lora-qv    one training step, LoRA r 8 alpha 16 on query and value, the head trained, the rest frozen
  head       one training step, only the head trains
  forward    inference under no_grad at the given batch (x 64 tokens)
The second half of the rows of a batch is padded after token 40. Prints the median and the minimum
milliseconds per step over the timed steps (after 3 untimed ones).

Needs python3-torch (Debian's package, with libopenblas0-pthread); the build never needs it.
Usage: python3 torch_encoder.py MODE [threads] [steps] [batch]"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    def __init__(self, base, r=8, alpha=16):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.A = nn.Linear(base.in_features, r, bias=False)
        self.B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.B.weight)
        self.s = alpha / r

    def forward(self, x):
        return self.base(x) + self.B(self.A(x)) * self.s


class Block(nn.Module):
    def __init__(self, d=384, h=12, ff=1536):
        super().__init__()
        self.h = h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1 = nn.LayerNorm(d, eps=1e-12)
        self.up, self.down = nn.Linear(d, ff), nn.Linear(ff, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, mask):
        b, t, d = x.shape
        hd = d // self.h
        q = self.q(x).view(b, t, self.h, hd).transpose(1, 2)
        k = self.k(x).view(b, t, self.h, hd).transpose(1, 2)
        v = self.v(x).view(b, t, self.h, hd).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        a = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = self.ln1(x + self.o(a))
        return self.ln2(x + self.down(F.gelu(self.up(x))))


class Encoder(nn.Module):
    def __init__(self, vocab=30522, d=384, n=6):
        super().__init__()
        self.tok, self.pos, self.typ = nn.Embedding(vocab, d), nn.Embedding(512, d), nn.Embedding(2, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList([Block() for _ in range(n)])
        self.head = nn.Linear(d, 2)

    def forward(self, ids, am):
        t = ids.shape[1]
        x = self.ln(self.tok(ids) + self.pos(torch.arange(t))[None] + self.typ(torch.zeros_like(ids)))
        mask = (1.0 - am[:, None, None, :].float()) * -1e9
        for layer in self.layers:
            x = layer(x, mask)
        m = am[..., None].float()
        return self.head((x * m).sum(1) / m.sum(1))


def main():
    mode = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    if mode not in ("full", "lora-qv", "head", "forward"):
        sys.exit("MODE must be full, lora-qv, head or forward; got " + mode)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Encoder()
    if mode != "full":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.head.parameters():
            p.requires_grad_(mode != "forward")
    if mode == "lora-qv":
        for layer in model.layers:
            layer.q, layer.v = LoraLinear(layer.q), LoraLinear(layer.v)
    ids = torch.randint(0, 30522, (batch, 64))
    am = torch.ones(batch, 64, dtype=torch.long)
    am[batch // 2:, 40:] = 0
    y = torch.randint(0, 2, (batch,))
    params = [p for p in model.parameters() if p.requires_grad]
    if mode == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                model(ids, am)
    else:
        opt = torch.optim.Adam(params, lr=1e-4)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(ids, am), y).backward()
            opt.step()
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    print("torch %s threads=%d batch=%d trainable=%d median_ms=%.1f min_ms=%.1f" % (
        mode, threads, batch, sum(p.numel() for p in params), 1e3 * times[len(times) // 2], 1e3 * times[0]))


if __name__ == "__main__":
    main()
