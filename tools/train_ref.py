#!/usr/bin/python3
"""PyTorch reference data for dizuo's trainer (issue 5).

What it writes, into the directory given as its argument (tests/data/train):
  llama-tiny.gguf   llama, dim 32, 2 layers, 4 heads, 2 kv heads, ffn 64,
                    vocab 64, ctx 16, separate output.weight
  llama-tied.gguf   the same shape, output tied to token_embd (no output.weight)
  gpt2-tiny.gguf    gpt2, dim 32, 2 layers, 4 heads, ffn 128, vocab 64, ctx 16
Each file is a loadable model (general.architecture, the hparams keys, F32
weights under llama.cpp's names, a 64-token byte-level "gpt2" vocabulary with
no merges) plus one training batch and what PyTorch computed for it:
  tensors train.inputs, train.targets  I32 (ne0 = T = 8, ne1 = B = 2)
  tensor  train.logits                 F32 (vocab, T, B): logits of the inputs
  keys    train.loss (f32), train.lr, train.beta1, train.beta2, train.eps,
          train.weight_decay, train.clip (f32), train.steps (u32, 10),
          train.losses (f32 x 10: the loss before each of 10 AdamW steps on
          this batch, constant lr), train.grad_norms (f32 x 10: the global
          gradient L2 norm before clipping at each of those steps)
  tensors grad.<weight name>           F32, the weight's shape: d loss / d weight
The semantics (forward passes, loss, AdamW, clipping) are those of
/work/notes/TRAIN.md, written out by hand below (no transformers package,
no torch.optim in the reference path).

Precision: the weights are drawn in float32 and stored as they are; every
reference quantity is then computed in float64 from those float32 weights
(the 10 optimizer steps keep float64 master weights) and stored rounded to
float32. After writing, the script reads each file back with its own parser
and checks that a float32 PyTorch run of the same computation agrees with
the stored values within the tolerances dizuo's tests use (loss 1e-4
relative, gradients |a-b| <= 1e-5 + 1e-3|b|, 10-step losses 1e-3 relative),
so a correct float32 implementation can meet them. It also cross-checks the
hand-written AdamW against torch.optim.AdamW and the hand-written LayerNorm,
GELU and RoPE against torch's own functions, and prints which plausible
mistakes (NEOX rope, wrong GQA mapping, ...) the tolerances would catch.

Run with Debian's PyTorch (apt-get install python3-torch, version 1.13),
from the repository root:
    /usr/bin/python3 tools/train_ref.py tests/data/train
Deterministic: same torch version, same files (seeded torch.Generator, CPU).
Exit status 0 when every self-check passes, 1 otherwise.
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Configurations and training constants (TRAIN.md)

CONFIGS = [
    dict(file="llama-tiny.gguf", arch="llama", dim=32, layers=2, heads=4, kv_heads=2,
         ffn=64, vocab=64, ctx=16, tied=False, seed=1001),
    dict(file="llama-tied.gguf", arch="llama", dim=32, layers=2, heads=4, kv_heads=2,
         ffn=64, vocab=64, ctx=16, tied=True, seed=1002),
    dict(file="gpt2-tiny.gguf", arch="gpt2", dim=32, layers=2, heads=4, kv_heads=4,
         ffn=128, vocab=64, ctx=16, tied=True, seed=1003),
]
T, B = 8, 2
NORM_EPS = 1e-5
ROPE_BASE = 10000.0
TRAIN = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, clip=1.0, steps=10)

# dizuo's test tolerances (TRAIN.md)
TOL_LOSS_REL = 1e-4
TOL_GRAD_ABS, TOL_GRAD_REL = 1e-5, 1e-3
TOL_TRAJ_REL = 1e-3

# ---------------------------------------------------------------------------
# Weights: name -> torch tensor in PyTorch layout (a Linear(in, out) matrix is
# (out, in), which is GGUF's (ne0 = in, ne1 = out)).


def weight_shapes(c):
    d, f, V = c["dim"], c["ffn"], c["vocab"]
    hd = d // c["heads"]
    shapes = [("token_embd.weight", (V, d))]
    if c["arch"] == "gpt2":
        shapes.append(("position_embd.weight", (c["ctx"], d)))
    for i in range(c["layers"]):
        p = "blk.%d." % i
        if c["arch"] == "llama":
            kv = c["kv_heads"] * hd
            shapes += [(p + "attn_norm.weight", (d,)), (p + "attn_q.weight", (d, d)),
                       (p + "attn_k.weight", (kv, d)), (p + "attn_v.weight", (kv, d)),
                       (p + "attn_output.weight", (d, d)), (p + "ffn_norm.weight", (d,)),
                       (p + "ffn_gate.weight", (f, d)), (p + "ffn_up.weight", (f, d)),
                       (p + "ffn_down.weight", (d, f))]
        else:
            shapes += [(p + "attn_norm.weight", (d,)), (p + "attn_norm.bias", (d,)),
                       (p + "attn_qkv.weight", (3 * d, d)), (p + "attn_qkv.bias", (3 * d,)),
                       (p + "attn_output.weight", (d, d)), (p + "attn_output.bias", (d,)),
                       (p + "ffn_norm.weight", (d,)), (p + "ffn_norm.bias", (d,)),
                       (p + "ffn_up.weight", (f, d)), (p + "ffn_up.bias", (f,)),
                       (p + "ffn_down.weight", (d, f)), (p + "ffn_down.bias", (d,))]
    shapes.append(("output_norm.weight", (d,)))
    if c["arch"] == "gpt2":
        shapes.append(("output_norm.bias", (d,)))
    if not c["tied"]:
        shapes.append(("output.weight", (V, d)))
    return shapes


def init_weights(c, gen):
    """float32 weights: matrices and embeddings N(0, 0.02); norm weights
    1 + N(0, 0.1) and biases N(0, 0.02), so that a forward pass that ignores
    them is caught and their gradients are exercised."""
    w = {}
    for name, shape in weight_shapes(c):
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        if "norm.weight" in name:
            w[name] = 1.0 + 0.1 * r
        else:
            w[name] = 0.02 * r
    return w


def is_decayed(name, t):
    """Weight decay applies to 2-D weights only (matrices and embeddings)."""
    return t.dim() == 2


# ---------------------------------------------------------------------------
# Forward passes, written out from TRAIN.md. All in the dtype of the weights.


def linear(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def rms_norm(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + NORM_EPS) * w


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance
    return (x - mu) / torch.sqrt(var + NORM_EPS) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(x):
    """ggml NORMAL rope: x (B, T, H, hd); the pair (2i, 2i+1) of each head at
    position p is rotated by p * base^(-2i / hd)."""
    hd = x.shape[-1]
    i = torch.arange(hd // 2, dtype=torch.float64)
    theta = ROPE_BASE ** (-2.0 * i / hd)
    ang = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * theta[None, :]  # (T, hd/2)
    cos = torch.cos(ang).to(x.dtype)[None, :, None, :]
    sin = torch.sin(ang).to(x.dtype)[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def attention(q, k, v):
    """q (B, T, H, hd), k and v (B, T, KV, hd); head h uses kv head
    h / (H / KV); causal, scale 1/sqrt(hd). Returns (B, T, H * hd)."""
    Bn, Tn, H, hd = q.shape
    group = H // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    mask = torch.ones(Tn, Tn, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    o = torch.softmax(s, dim=-1) @ v
    return o.transpose(1, 2).reshape(Bn, Tn, H * hd)


def forward_llama(c, w, ids):
    Bn, Tn = ids.shape
    H, KV = c["heads"], c["kv_heads"]
    hd = c["dim"] // H
    x = w["token_embd.weight"][ids]
    for i in range(c["layers"]):
        p = "blk.%d." % i
        n1 = rms_norm(x, w[p + "attn_norm.weight"])
        q = rope(linear(n1, w[p + "attn_q.weight"]).view(Bn, Tn, H, hd))
        k = rope(linear(n1, w[p + "attn_k.weight"]).view(Bn, Tn, KV, hd))
        v = linear(n1, w[p + "attn_v.weight"]).view(Bn, Tn, KV, hd)
        h = x + linear(attention(q, k, v), w[p + "attn_output.weight"])
        n2 = rms_norm(h, w[p + "ffn_norm.weight"])
        g = linear(n2, w[p + "ffn_gate.weight"])
        x = h + linear(F.silu(g) * linear(n2, w[p + "ffn_up.weight"]), w[p + "ffn_down.weight"])
    out = w["token_embd.weight"] if c["tied"] else w["output.weight"]
    return linear(rms_norm(x, w["output_norm.weight"]), out)


def forward_gpt2(c, w, ids):
    Bn, Tn = ids.shape
    H, d = c["heads"], c["dim"]
    hd = d // H
    x = w["token_embd.weight"][ids] + w["position_embd.weight"][:Tn][None]
    for i in range(c["layers"]):
        p = "blk.%d." % i
        a = layer_norm(x, w[p + "attn_norm.weight"], w[p + "attn_norm.bias"])
        qkv = linear(a, w[p + "attn_qkv.weight"], w[p + "attn_qkv.bias"])
        q, k, v = (t.reshape(Bn, Tn, H, hd) for t in qkv.split(d, dim=-1))
        x = x + linear(attention(q, k, v), w[p + "attn_output.weight"], w[p + "attn_output.bias"])
        f = layer_norm(x, w[p + "ffn_norm.weight"], w[p + "ffn_norm.bias"])
        u = gelu_tanh(linear(f, w[p + "ffn_up.weight"], w[p + "ffn_up.bias"]))
        x = x + linear(u, w[p + "ffn_down.weight"], w[p + "ffn_down.bias"])
    n = layer_norm(x, w["output_norm.weight"], w["output_norm.bias"])
    return linear(n, w["token_embd.weight"])


def forward(c, w, ids):
    return (forward_llama if c["arch"] == "llama" else forward_gpt2)(c, w, ids)


def loss_and_grads(c, w, ids, targets):
    """Mean cross-entropy over all B*T positions, its gradient for every
    weight (dict), and the logits (B, T, V)."""
    leaf = {n: t.detach().clone().requires_grad_(True) for n, t in w.items()}
    logits = forward(c, leaf, ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    return loss.detach(), {n: t.grad.detach() for n, t in leaf.items()}, logits.detach()


# ---------------------------------------------------------------------------
# Optimizer: AdamW as TRAIN.md defines it, by hand.


def clip_grads(grads, clip):
    """Global L2 norm over all gradients; above clip every gradient is scaled
    by clip / (norm + 1e-6). Returns (clipped grads, the norm before)."""
    norm = torch.sqrt(sum((g * g).sum() for g in grads.values()))
    if clip > 0 and norm > clip:
        s = clip / (norm + 1e-6)
        grads = {n: g * s for n, g in grads.items()}
    return grads, norm


def adamw_step(w, grads, m, v, t, lr):
    b1, b2, eps, wd = TRAIN["beta1"], TRAIN["beta2"], TRAIN["eps"], TRAIN["weight_decay"]
    for n in w:
        g = grads[n]
        m[n] = b1 * m[n] + (1 - b1) * g
        v[n] = b2 * v[n] + (1 - b2) * g * g
        p = w[n]
        if is_decayed(n, p):
            p = p - lr * wd * p
        mhat = m[n] / (1 - b1 ** t)
        vhat = v[n] / (1 - b2 ** t)
        w[n] = p - lr * mhat / (torch.sqrt(vhat) + eps)


def train_losses(c, w0, ids, targets, dtype):
    """The loss before each of TRAIN['steps'] AdamW steps on one batch
    (constant lr, no warmup), starting from w0, computed in dtype; also the
    pre-clipping gradient norm at each step."""
    w = {n: t.to(dtype).clone() for n, t in w0.items()}
    m = {n: torch.zeros_like(t) for n, t in w.items()}
    v = {n: torch.zeros_like(t) for n, t in w.items()}
    losses, norms = [], []
    for step in range(1, TRAIN["steps"] + 1):
        loss, grads, _ = loss_and_grads(c, w, ids, targets)
        grads, norm = clip_grads(grads, TRAIN["clip"])
        losses.append(float(loss))
        norms.append(float(norm))
        adamw_step(w, grads, m, v, step, TRAIN["lr"])
    return losses, norms


def train_losses_torch_optim(c, w0, ids, targets):
    """The same trajectory with torch.optim.AdamW (float64), to cross-check
    the hand-written update."""
    params = {n: t.double().clone().requires_grad_(True) for n, t in w0.items()}
    decay = [p for n, p in params.items() if is_decayed(n, p)]
    other = [p for n, p in params.items() if not is_decayed(n, p)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=TRAIN["weight_decay"]),
                             dict(params=other, weight_decay=0.0)],
                            lr=TRAIN["lr"], betas=(TRAIN["beta1"], TRAIN["beta2"]),
                            eps=TRAIN["eps"])
    losses = []
    for _ in range(TRAIN["steps"]):
        opt.zero_grad()
        logits = forward(c, params, ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        grads = {n: p.grad for n, p in params.items()}
        clipped, _ = clip_grads(grads, TRAIN["clip"])
        for n, p in params.items():
            p.grad = clipped[n]
        losses.append(float(loss))
        opt.step()
    return losses


# ---------------------------------------------------------------------------
# Minimal GGUF v3 writer and reader.

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_STR, GGUF_ARR = 4, 5, 6, 8, 9
GGML_F32, GGML_I32 = 0, 26
ALIGN = 32


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(kind, val):
    """kind: 'u32', 'i32', 'f32', 'str', ('arr', elem kind)."""
    if kind == "u32":
        return struct.pack("<I", val)
    if kind == "i32":
        return struct.pack("<i", val)
    if kind == "f32":
        return struct.pack("<f", val)
    if kind == "str":
        return _str(val)
    elem = kind[1]
    codes = {"u32": GGUF_U32, "i32": GGUF_I32, "f32": GGUF_F32, "str": GGUF_STR}
    return struct.pack("<IQ", codes[elem], len(val)) + b"".join(_value(elem, x) for x in val)


def _type_code(kind):
    return {"u32": GGUF_U32, "i32": GGUF_I32, "f32": GGUF_F32, "str": GGUF_STR}.get(
        kind if isinstance(kind, str) else "arr", GGUF_ARR)


def write_gguf(path, kvs, tensors):
    """kvs: list of (key, kind, value); tensors: list of (name, torch tensor
    float32 or int32 in PyTorch layout; GGUF's ne is the shape reversed)."""
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kvs))]
    for key, kind, val in kvs:
        out += [_str(key), struct.pack("<I", _type_code(kind)), _value(kind, val)]
    blobs, offset = [], 0
    for name, t in tensors:
        t = t.contiguous()
        code = {torch.float32: GGML_F32, torch.int32: GGML_I32}[t.dtype]
        ne = list(reversed(t.shape))
        out += [_str(name), struct.pack("<I", len(ne)), struct.pack("<%dQ" % len(ne), *ne),
                struct.pack("<IQ", code, offset)]
        data = t.numpy().astype("<f4" if code == GGML_F32 else "<i4").tobytes()
        pad = (-len(data)) % ALIGN
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    head = b"".join(out)
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))


def read_gguf(path):
    """Parses what write_gguf writes: returns (kvs dict, tensors dict of torch
    tensors in PyTorch layout)."""
    buf = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        r = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return r

    def rstr():
        nonlocal pos
        (n,) = take("<Q")
        s = buf[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def rval(code):
        if code == GGUF_U32:
            return take("<I")[0]
        if code == GGUF_I32:
            return take("<i")[0]
        if code == GGUF_F32:
            return take("<f")[0]
        if code == GGUF_STR:
            return rstr()
        if code == GGUF_ARR:
            elem, n = take("<IQ")
            return [rval(elem) for _ in range(n)]
        raise ValueError("unexpected GGUF type %d" % code)

    magic, (version, n_t, n_kv) = buf[:4], struct.unpack_from("<IQQ", buf, 4)
    assert magic == b"GGUF" and version == 3
    pos = 4 + 20
    kvs = {}
    for _ in range(n_kv):
        key = rstr()
        (code,) = take("<I")
        kvs[key] = rval(code)
    infos = []
    for _ in range(n_t):
        name = rstr()
        (nd,) = take("<I")
        ne = take("<%dQ" % nd)
        code, off = take("<IQ")
        infos.append((name, ne, code, off))
    start = pos + (-pos) % ALIGN
    tensors = {}
    for name, ne, code, off in infos:
        n = math.prod(ne)
        fmt = "<%d%s" % (n, "f" if code == GGML_F32 else "i")
        vals = struct.unpack_from(fmt, buf, start + off)
        dt = torch.float32 if code == GGML_F32 else torch.int32
        tensors[name] = torch.tensor(vals, dtype=dt).reshape(tuple(reversed(ne)))
    return kvs, tensors


# ---------------------------------------------------------------------------
# Model metadata


def byte_vocab():
    """64 tokens: GPT-2's byte-to-character images of the bytes 0x20..0x5F
    (space is 'Ġ'), so the vocabulary is a valid byte-level BPE one."""
    return ["\u0120" if b == 0x20 else chr(b) for b in range(0x20, 0x60)]


def model_kvs(c):
    a = c["arch"]
    hd = c["dim"] // c["heads"]
    kvs = [("general.architecture", "str", a),
           ("general.name", "str", c["file"][:-5] + " (dizuo training reference)"),
           ("general.alignment", "u32", ALIGN),
           (a + ".context_length", "u32", c["ctx"]),
           (a + ".embedding_length", "u32", c["dim"]),
           (a + ".feed_forward_length", "u32", c["ffn"]),
           (a + ".block_count", "u32", c["layers"]),
           (a + ".attention.head_count", "u32", c["heads"])]
    if a == "llama":
        kvs += [(a + ".attention.head_count_kv", "u32", c["kv_heads"]),
                (a + ".attention.layer_norm_rms_epsilon", "f32", NORM_EPS),
                (a + ".rope.freq_base", "f32", ROPE_BASE),
                (a + ".rope.dimension_count", "u32", hd)]
    else:
        kvs += [(a + ".attention.layer_norm_epsilon", "f32", NORM_EPS)]
    kvs += [("tokenizer.ggml.model", "str", "gpt2"),
            ("tokenizer.ggml.pre", "str", "gpt-2"),
            ("tokenizer.ggml.tokens", ("arr", "str"), byte_vocab()),
            ("tokenizer.ggml.merges", ("arr", "str"), [])]
    return kvs


# ---------------------------------------------------------------------------
# One configuration: compute, write, read back, self-check.


def grad_margin(a, b):
    """max over elements of |a - b| / (abs_tol + rel_tol |b|): <= 1 passes."""
    return float(((a.double() - b.double()).abs() / (TOL_GRAD_ABS + TOL_GRAD_REL * b.double().abs())).max())


def make(c, outdir):
    gen = torch.Generator().manual_seed(c["seed"])
    w32 = init_weights(c, gen)
    tokens = torch.randint(0, c["vocab"], (B * T + 1,), generator=gen, dtype=torch.int64)
    # step 0, row b reads tokens from b*T: inputs T tokens, targets the next T
    ids = torch.stack([tokens[b * T:b * T + T] for b in range(B)])
    targets = torch.stack([tokens[b * T + 1:b * T + T + 1] for b in range(B)])

    w64 = {n: t.double() for n, t in w32.items()}
    loss, grads, logits = loss_and_grads(c, w64, ids, targets)
    losses, norms = train_losses(c, w64, ids, targets, torch.float64)
    assert abs(losses[0] - float(loss)) < 1e-12

    kvs = model_kvs(c) + [
        ("train.loss", "f32", float(loss)),
        ("train.lr", "f32", TRAIN["lr"]),
        ("train.beta1", "f32", TRAIN["beta1"]),
        ("train.beta2", "f32", TRAIN["beta2"]),
        ("train.eps", "f32", TRAIN["eps"]),
        ("train.weight_decay", "f32", TRAIN["weight_decay"]),
        ("train.clip", "f32", TRAIN["clip"]),
        ("train.steps", "u32", TRAIN["steps"]),
        ("train.losses", ("arr", "f32"), losses),
        ("train.grad_norms", ("arr", "f32"), norms),
    ]
    tensors = [(n, t) for n, t in w32.items()]
    tensors += [("train.inputs", ids.to(torch.int32)), ("train.targets", targets.to(torch.int32)),
                ("train.logits", logits.float())]
    tensors += [("grad." + n, grads[n].float()) for n in w32]
    path = os.path.join(outdir, c["file"])
    write_gguf(path, kvs, tensors)
    return path, self_check(c, path)


def self_check(c, path):
    kv, ts = read_gguf(path)
    names = [n for n, _ in weight_shapes(c)]
    w = {n: ts[n] for n in names}
    ids, targets = ts["train.inputs"].long(), ts["train.targets"].long()
    ok = True
    report = ["%s: %d bytes" % (os.path.basename(path), os.path.getsize(path))]

    # float32 run from the stored weights
    loss32, g32, logits32 = loss_and_grads(c, w, ids, targets)
    rel = abs(float(loss32) - kv["train.loss"]) / abs(kv["train.loss"])
    ok &= rel <= TOL_LOSS_REL
    report.append("  loss %.7f; float32 run rel diff %.2e (tol %.0e)" % (kv["train.loss"], rel, TOL_LOSS_REL))
    lg = float((logits32 - ts["train.logits"]).abs().max())
    report.append("  logits max |f32 - ref| %.2e" % lg)
    worst = max((grad_margin(g32[n], ts["grad." + n]), n) for n in names)
    ok &= worst[0] <= 1.0
    report.append("  grads: worst |a-b|/(1e-5+1e-3|b|) = %.3f (%s); must be <= 1" % worst)
    big = sum(int((ts["grad." + n].abs() > 1e-2).sum()) for n in names)
    total = sum(ts["grad." + n].numel() for n in names)
    tiny = [n for n in names if float(ts["grad." + n].abs().max()) < 1e-5]
    report.append("  grads: %d of %d elements have |g| > 1e-2 (relative tolerance dominates); "
                  "tensors whose every |g| < 1e-5: %s" % (big, total, tiny or "none"))

    # a 64-bit rerun from the stored weights reproduces the stored references
    loss64, g64, _ = loss_and_grads(c, {n: t.double() for n, t in w.items()}, ids, targets)
    ok &= abs(float(loss64) - kv["train.loss"]) <= 1e-6 * abs(kv["train.loss"])
    ok &= all(torch.equal(g64[n].float(), ts["grad." + n]) for n in names)

    # trajectories: float32 by hand, float64 with torch.optim.AdamW
    ref = kv["train.losses"]
    l32, _ = train_losses(c, w, ids, targets, torch.float32)
    d32 = max(abs(a - b) / abs(b) for a, b in zip(l32, ref))
    ok &= d32 <= TOL_TRAJ_REL
    lopt = train_losses_torch_optim(c, w, ids, targets)
    dopt = max(abs(a - b) / abs(b) for a, b in zip(lopt, ref))
    ok &= dopt <= 1e-6
    report.append("  losses: " + " ".join("%.5f" % x for x in ref))
    report.append("  grad norms: " + " ".join("%.3f" % x for x in kv["train.grad_norms"]))
    report.append("  10-step losses: float32 run max rel diff %.2e (tol %.0e); "
                  "torch.optim.AdamW max rel diff %.2e" % (d32, TOL_TRAJ_REL, dopt))
    report.append("  -> %s" % ("ok" if ok else "FAILED"))
    return ok, report


# Plausible mistakes a C implementation could make; each replaces one
# function (or constant) of this module while the stored references are
# recomputed. The report says whether dizuo's tolerances would catch it.


def _rope_neox(x):
    hd = x.shape[-1]
    h = hd // 2
    i = torch.arange(h, dtype=torch.float64)
    ang = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * ROPE_BASE ** (-2.0 * i / hd)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x0, x1 = x[..., :h], x[..., h:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


_attention = attention


def _attention_gqa_modulo(q, k, v):
    idx = torch.arange(q.shape[2]) % k.shape[2]
    return _attention(q, k[:, :, idx], v[:, :, idx])


def _attention_not_causal(q, k, v):
    Bn, Tn, H, hd = q.shape
    k, v = (t.repeat_interleave(H // k.shape[2], dim=2) for t in (k, v))
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    o = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd), dim=-1) @ v
    return o.transpose(1, 2).reshape(Bn, Tn, H * hd)


def _layer_norm_unbiased(x, w, b):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + NORM_EPS) * w + b


MUTATIONS = {
    "llama": [("rope NEOX pairing (i, i+hd/2)", "rope", _rope_neox),
              ("GQA head h -> kv head h % n_kv", "attention", _attention_gqa_modulo),
              ("attention not causal", "attention", _attention_not_causal),
              ("norm eps 1e-6", "NORM_EPS", 1e-6)],
    "gpt2": [("gelu erf form", "gelu_tanh", lambda x: F.gelu(x)),
             ("layer_norm unbiased variance", "layer_norm", _layer_norm_unbiased),
             ("attention not causal", "attention", _attention_not_causal),
             ("norm eps 1e-6", "NORM_EPS", 1e-6)],
}


def mutation_report(c, path):
    kv, ts = read_gguf(path)
    names = [n for n, _ in weight_shapes(c)]
    w = {n: ts[n].double() for n in names}
    ids, targets = ts["train.inputs"].long(), ts["train.targets"].long()
    lines = []
    for what, attr, repl in MUTATIONS[c["arch"]]:
        g = globals()
        saved, g[attr] = g[attr], repl
        try:
            loss, grads, _ = loss_and_grads(c, w, ids, targets)
        finally:
            g[attr] = saved
        rel = abs(float(loss) - kv["train.loss"]) / kv["train.loss"]
        worst = max(grad_margin(grads[n], ts["grad." + n]) for n in names)
        caught = rel > TOL_LOSS_REL or worst > 1.0
        lines.append("  mutation %-32s loss rel %.1e, grad margin %8.2f: %s"
                     % (what, rel, worst, "caught" if caught else "NOT caught"))
    return lines


def check_primitives():
    """The hand-written LayerNorm, GELU and RoPE against torch's own."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 5, 3, 8, generator=g, dtype=torch.float64)
    w, b = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    e1 = float((layer_norm(x, w, b) - F.layer_norm(x, (8,), w, b, NORM_EPS)).abs().max())
    e2 = float((gelu_tanh(x) - F.gelu(x, approximate="tanh")).abs().max())
    # RoPE as complex multiplication of the pairs (2i, 2i+1)
    xc = torch.view_as_complex(x.reshape(2, 5, 3, 4, 2).contiguous())
    i = torch.arange(4, dtype=torch.float64)
    ang = torch.arange(5, dtype=torch.float64)[:, None] * ROPE_BASE ** (-2.0 * i / 8)
    rot = torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)[None, :, None, :]).flatten(-2)
    e3 = float((rope(x) - rot).abs().max())
    ok = max(e1, e2, e3) < 1e-12
    print("primitives: layer_norm %.1e, gelu %.1e, rope %.1e -> %s" % (e1, e2, e3, "ok" if ok else "FAILED"))
    return ok


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: /usr/bin/python3 tools/train_ref.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print("torch %s" % torch.__version__)
    ok = check_primitives()
    for c in CONFIGS:
        path, (cok, report) = make(c, outdir)
        print("\n".join(report + mutation_report(c, path)))
        ok &= cok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
