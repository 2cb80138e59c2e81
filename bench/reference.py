"""The numpy/h5py side of `make bench`: each computation written the way a careful user would
(whole arrays, vectorised, float32 where the tool computes in float32, no Python loop over
elements). Run as `/usr/bin/python3 bench/reference.py TASK ARGS...`; prints one JSON line with
the seconds spent after imports, and writes its result to an .npz for the agreement check."""
import json
import re
import struct
import sys
import time

import h5py
import numpy as np


def dump_layers(f):
    layers = sorted({int(m.group(1)) for name in f
                     for m in [re.fullmatch(r"blocks\.(\d+)\.attn\.hook_q", name)] if m})
    return layers


def freq_norms(dump, out):
    """Mean 2-norm of each RoPE chunk (half layout: dims c and c + d/2), per layer and head."""
    res = {}
    with h5py.File(dump, "r") as f:
        for t in ("q", "k"):
            rows = []
            for layer in dump_layers(f):
                x = f[f"blocks.{layer}.attn.hook_{t}"][()]  # [batch, pos, head, d]
                if x.dtype != np.float32:
                    x = x.astype(np.float32)
                h = x.shape[-1] // 2
                norms = np.sqrt(np.square(x[..., :h]) + np.square(x[..., h:]))
                rows.append(norms.mean(axis=(0, 1), dtype=np.float64))
            res[f"{t}_norms"] = np.stack(rows)
    np.savez(out, **res)


def rotate_half(x, theta):
    """x [batch, pos, head, d] pre-RoPE -> post-RoPE, half layout."""
    d, tokens = x.shape[-1], x.shape[1]
    g = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angle = np.arange(tokens)[:, None] * g[None, :]
    c = np.cos(angle).astype(np.float32)[None, :, None, :]
    s = np.sin(angle).astype(np.float32)[None, :, None, :]
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def positional_heads(dump, out, max_offset=8):
    """find-positional-heads --from qk: causal softmax(q k^T / sqrt(d)) per (sequence, head),
    mean attention mass at offsets 0..K, TransformerLens previous-token scores."""
    masses, prev_mul, prev_abs = [], [], []
    with h5py.File(dump, "r") as f:
        theta = float(f.attrs.get("rope_theta", 10000.0))
        for layer in dump_layers(f):
            q = f[f"blocks.{layer}.attn.hook_q"][()].astype(np.float32, copy=False)
            k = f[f"blocks.{layer}.attn.hook_k"][()].astype(np.float32, copy=False)
            d, tokens = q.shape[-1], q.shape[1]
            rq = rotate_half(q, theta).transpose(0, 2, 1, 3)  # [b, h, t, d]
            rk = rotate_half(k, theta).transpose(0, 2, 3, 1)  # [b, h, d, t]
            scores = np.matmul(rq, rk)
            scores *= np.float32(1 / np.sqrt(d))
            scores[..., np.triu(np.ones((tokens, tokens), bool), 1)] = -np.inf
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            m = np.stack([np.diagonal(scores, -r, axis1=-2, axis2=-1).mean(-1)
                          for r in range(max_offset + 1)], -1)  # [b, h, K+1]
            sub = np.diagonal(scores, -1, axis1=-2, axis2=-1).sum(-1)  # [b, h]
            prev_mul.append((sub / tokens).mean(0))
            eye1 = np.eye(tokens, k=-1, dtype=np.float32)
            prev_abs.append((1 - np.abs(scores - eye1).sum((-2, -1)) / tokens).mean(0))
            masses.append(m)
    m = np.stack(masses)  # [layer, b, h, K+1]
    np.savez(out, mass=m.mean(1), min_mass=m.min(1), prev_mul=np.stack(prev_mul),
             prev_abs=np.stack(prev_abs))


def gaussian_decay(out, samples, max_offset, d, theta=10000.0, seed=0, block=2000):
    """rope-decay --mode gaussian: mean and std over pairs of q^T R^(-o) k / d, o = 0..N,
    as two SGEMMs per block of pairs against a cos/sin table (the efficient formulation)."""
    rng = np.random.default_rng(seed)
    g = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angle = -np.arange(max_offset + 1)[None, :] * g[:, None]  # [C, O]
    cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    s1 = np.zeros(max_offset + 1)
    s2 = np.zeros(max_offset + 1)
    h = d // 2
    for start in range(0, samples, block):
        n = min(block, samples - start)
        q = rng.standard_normal((n, d), dtype=np.float32)
        k = rng.standard_normal((n, d), dtype=np.float32)
        qa, qb, ka, kb = q[:, :h], q[:, h:], k[:, :h], k[:, h:]
        a = (qa * ka + qb * kb) / d
        b = (qb * ka - qa * kb) / d
        x = a @ cos + b @ sin  # [n, O]
        s1 += x.sum(0, dtype=np.float64)
        s2 += np.square(x).sum(0, dtype=np.float64)
    mean = s1 / samples
    std = np.sqrt((s2 / samples - mean ** 2) * samples / (samples - 1))
    np.savez(out, activation=mean, std=std)


def gaussian_decay_moments(out, samples, max_offset, d, theta=10000.0, seed=0, block=2000):
    """The same curves from the moments of each pair's coefficients c = (a, b) / d:
    mean = F E[c], variance = diag(F Cov[c] F^T), F = [cos | sin] of shape [offsets, d]."""
    rng = np.random.default_rng(seed)
    g = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angle = -np.arange(max_offset + 1)[:, None] * g[None, :]  # [O, C]
    table = np.concatenate([np.cos(angle), np.sin(angle)], axis=1)  # [O, d]
    s1, s2, h = np.zeros(d), np.zeros((d, d)), d // 2
    for start in range(0, samples, block):
        n = min(block, samples - start)
        q = rng.standard_normal((n, d), dtype=np.float32).astype(np.float64)
        k = rng.standard_normal((n, d), dtype=np.float32).astype(np.float64)
        qa, qb, ka, kb = q[:, :h], q[:, h:], k[:, :h], k[:, h:]
        c = np.concatenate([qa * ka + qb * kb, qb * ka - qa * kb], axis=1) / d
        s1 += c.sum(0)
        s2 += c.T @ c
    mu = s1 / samples
    cov = s2 / samples - np.outer(mu, mu)
    mean = table @ mu
    var = np.einsum("od,od->o", table @ cov, table) * samples / (samples - 1)
    np.savez(out, activation=mean, std=np.sqrt(np.maximum(var, 0)))


def load_llama2c(path):
    with open(path, "rb") as f:
        dim, hidden, layers, heads, kv, vocab, seq_len = struct.unpack("<7i", f.read(28))
        data = np.frombuffer(f.read(), "<f4")
    shared, vocab, hd = vocab > 0, abs(vocab), dim // heads
    shapes = [("emb", (vocab, dim)), ("rms_att", (layers, dim)),
              ("wq", (layers, heads * hd, dim)), ("wk", (layers, kv * hd, dim)),
              ("wv", (layers, kv * hd, dim)), ("wo", (layers, dim, heads * hd)),
              ("rms_ffn", (layers, dim)), ("w1", (layers, hidden, dim)),
              ("w2", (layers, dim, hidden)), ("w3", (layers, hidden, dim)), ("rms_final", (dim,)),
              ("freq_cis", (seq_len * hd,))]
    w, pos = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = data[pos:pos + n].reshape(shape)
        pos += n
    w["wcls"] = w["emb"] if shared else data[pos:pos + vocab * dim].reshape(vocab, dim)
    w.update(layers=layers, heads=heads, kv=kv, hd=hd)
    # Transposed once, outside the timed forward pass, as a user would keep them.
    for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        w[name + "_t"] = np.ascontiguousarray(w[name].transpose(0, 2, 1))
    w["wcls_t"] = np.ascontiguousarray(w["wcls"].T)
    return w


def llama_nll(w, ids):
    """float32 prefill of a llama2.c model over ids [B, T]: per-token NLL [B, T] (0 at pos 0)."""
    B, T = ids.shape
    H, KV, hd = w["heads"], w["kv"], w["hd"]
    g = 10000.0 ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    angle = np.arange(T)[:, None] * g[None, :]
    c = np.cos(angle).astype(np.float32)[None, :, None, :]
    s = np.sin(angle).astype(np.float32)[None, :, None, :]

    def norm(x, gain):
        return gain * x / np.sqrt(np.square(x).mean(-1, keepdims=True) + np.float32(1e-5))

    def rope(v):  # adjacent pairs
        a, b = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
        return out

    mask = np.triu(np.ones((T, T), bool), 1)
    x = w["emb"][ids]
    for l in range(w["layers"]):
        xb = norm(x, w["rms_att"][l])
        q = rope((xb @ w["wq_t"][l]).reshape(B, T, H, hd)).transpose(0, 2, 1, 3)
        k = rope((xb @ w["wk_t"][l]).reshape(B, T, KV, hd)).transpose(0, 2, 3, 1)
        v = (xb @ w["wv_t"][l]).reshape(B, T, KV, hd).transpose(0, 2, 1, 3)
        k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
        scores = np.matmul(q, k) * np.float32(1 / np.sqrt(hd))
        scores[..., mask] = -np.inf
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        att = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        x = x + att @ w["wo_t"][l]
        xb = norm(x, w["rms_ffn"][l])
        a, u = xb @ w["w1_t"][l], xb @ w["w3_t"][l]
        x = x + (a / (1 + np.exp(-a)) * u) @ w["w2_t"][l]
    logits = norm(x, w["rms_final"]) @ w["wcls_t"]
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    nll = np.zeros((B, T), np.float32)
    nll[:, 1:] = -np.take_along_axis(logp[:, :-1], ids[:, 1:, None], -1)[..., 0]
    return nll


def prefill(model, tokens, out, batch=8):
    w = load_llama2c(model)
    ids = np.loadtxt(tokens, dtype=np.int64, ndmin=2)
    start = time.perf_counter()
    nll = np.concatenate([llama_nll(w, ids[i:i + batch]) for i in range(0, len(ids), batch)])
    np.savez(out, nll=nll)
    return time.perf_counter() - start


def main():
    task, args = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    if task == "freq-norms":
        freq_norms(*args)
    elif task == "positional-heads":
        positional_heads(*args)
    elif task == "gaussian-decay":
        gaussian_decay(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif task == "gaussian-decay-moments":
        gaussian_decay_moments(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif task == "prefill":
        # Weight loading is left out of the timing (the tool's includes it).
        print(json.dumps({"seconds": prefill(*args)}))
        return
    else:
        sys.exit(f"reference.py: unknown task {task}")
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
