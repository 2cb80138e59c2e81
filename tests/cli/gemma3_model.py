"""A small random-weight Gemma 3 text model (issue 14), for the tests:

- config(): config.json as transformers' Gemma3TextConfig saves it (model_type "gemma3_text"),
  with the layer pattern written as sliding_window_pattern (4.50-4.52), as layer_types (4.53+)
  or, for transformers v5, with per-layer-type rope_parameters;
- tensors(): its HF tensors (gemma2's four norms per layer plus q_norm and k_norm, every norm
  stored as w for a scale of 1 + w);
- to_gguf(): the GGUF llama.cpp's converter (node-llama-cpp 3.21.1's conversion/gemma.py,
  Gemma3Model over TextModel) makes of it: architecture "gemma3", every *norm.weight stored as
  1 + w, rope.freq_base the global base, rope.scaling.{type,factor} of the global schedule,
  rope.freq_base_swa the local base, attention.sliding_window, and no window pattern (llama.cpp
  assumes every 6th layer global);
- forward(): an independent float64 numpy forward written from transformers'
  modeling_gemma3.py, each peculiarity a switch a control turns off.
"""
import numpy as np

import gguf_writer
import model_families as mf
from gguf_writer import F32, STRING, U32

HEAD_DIM = 32


def config(layers=6, window=8, style="pattern", **extra):
    """Gemma3TextConfig's keys; style "pattern" writes sliding_window_pattern 6, "types" writes
    layer_types (every 6th layer full_attention), "v5" layer_types and rope_parameters per layer
    type. Linear scaling by 8 on the global layers, as the 4B+ checkpoints have."""
    c = {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "hidden_size": 64,
         "intermediate_size": 96, "num_hidden_layers": layers, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": HEAD_DIM, "vocab_size": 300,
         "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
         "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": HEAD_DIM,
         "sliding_window": window, "final_logit_softcapping": None,
         "attn_logit_softcapping": None, "attention_bias": False, "attention_dropout": 0.0,
         "torch_dtype": "float32", "cache_implementation": "hybrid"}
    rope = {"rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0}}
    types = ["full_attention" if (l + 1) % 6 == 0 else "sliding_attention" for l in range(layers)]
    if style == "pattern":
        c.update(rope, sliding_window_pattern=6)
    elif style == "types":
        c.update(rope, layer_types=types)
    else:
        c.update(layer_types=types, rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})
    c.update(extra)
    return c


def sliding(c):
    """Which layers slide, as transformers reads the config."""
    if "layer_types" in c:
        return [t == "sliding_attention" for t in c["layer_types"]]
    n = c.get("sliding_window_pattern", 6)
    return [(l + 1) % n != 0 for l in range(c["num_hidden_layers"])]


def bases(c):
    """(global base, linear factor, local base)."""
    if "rope_parameters" in c:
        g, s = c["rope_parameters"]["full_attention"], c["rope_parameters"]["sliding_attention"]
        return g["rope_theta"], g.get("factor", 1.0), s["rope_theta"]
    scaling = c.get("rope_scaling") or {}
    return c["rope_theta"], scaling.get("factor", 1.0), c.get("rope_local_base_freq", 10000.0)


def tensors(c, seed):
    """{HF name: float32 array}: Gemma norms stored as w ~ N(0, 0.3²) (scale 1 + w), q/k norms
    likewise."""
    rng = np.random.default_rng(seed)
    dim, hidden, hd = c["hidden_size"], c["intermediate_size"], HEAD_DIM
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd

    def normal(*shape, std=0.1, offset=0.0):
        return (offset + std * rng.standard_normal(shape)).astype(np.float32)

    t = {"model.embed_tokens.weight": normal(c["vocab_size"], dim, std=0.125)}
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = normal(dim, std=0.3)
        t[p + "self_attn.q_proj.weight"] = normal(q, dim, std=0.3)
        t[p + "self_attn.k_proj.weight"] = normal(kv, dim, std=0.3)
        t[p + "self_attn.v_proj.weight"] = normal(kv, dim, std=0.3)
        t[p + "self_attn.q_norm.weight"] = normal(hd, std=0.3)
        t[p + "self_attn.k_norm.weight"] = normal(hd, std=0.3)
        t[p + "self_attn.o_proj.weight"] = normal(dim, q)
        t[p + "post_attention_layernorm.weight"] = normal(dim, std=0.3)
        t[p + "pre_feedforward_layernorm.weight"] = normal(dim, std=0.3)
        # An MLP output scaled by 1 + w ~ 0.3: llama.cpp's CPU GELU reads an f16 table (relative
        # error ~5e-4 per activation, whatever the gate's scale), which over six full-size MLPs
        # reaches 1.4e-3 nats per token; at 0.3 it stays near 2.5e-4.
        t[p + "post_feedforward_layernorm.weight"] = normal(dim, std=0.1, offset=-0.7)
        t[p + "mlp.gate_proj.weight"] = normal(hidden, dim, std=0.05)
        t[p + "mlp.up_proj.weight"] = normal(hidden, dim)
        t[p + "mlp.down_proj.weight"] = normal(dim, hidden)
    t["model.norm.weight"] = normal(dim, std=0.3)
    return t


def write_hf(directory, c, t):
    mf.write_hf(directory, c, t)


# ---------------------------------------------------------------- GGUF, as the converter writes
def gguf_metadata(c):
    """The gemma3.* keys TextModel.set_gguf_parameters and Gemma3Model's write."""
    base, factor, local = bases(c)
    a = "gemma3."
    kvs = mf.base_gguf_keys(c, "gemma3") + [
        (a + "attention.key_length", U32, HEAD_DIM), (a + "attention.value_length", U32, HEAD_DIM),
        (a + "rope.freq_base", F32, base), (a + "rope.freq_base_swa", F32, local)]
    if factor != 1.0:
        kvs += [(a + "rope.scaling.type", STRING, "linear"), (a + "rope.scaling.factor", F32, factor)]
    if c.get("final_logit_softcapping"):
        kvs.append((a + "final_logit_softcapping", F32, c["final_logit_softcapping"]))
    if c.get("sliding_window_pattern") != 1:
        kvs.append((a + "attention.sliding_window", U32, c["sliding_window"]))
    return kvs + gguf_writer.placeholder_vocab(c["vocab_size"])


def to_gguf(c, t, path, extra_kvs=(), extra_tensors=()):
    """The F32 GGUF; extra_kvs / extra_tensors add what the converter does not write."""
    out = []
    for name, w in t.items():
        if name.endswith("norm.weight"):
            w = w + 1  # Gemma3Model.norm_shift
        out.append((mf.gguf_tensor_name(name, "gemma2"), tuple(reversed(w.shape)),
                    gguf_writer.GGML_TYPES["F32"], gguf_writer.encode(w, "F32")))
    gguf_writer.write_gguf(path, gguf_metadata(c) + list(extra_kvs), out + list(extra_tensors))


# ---------------------------------------------------------------- numpy forward
def inv_freqs(c):
    """(global frequencies, local frequencies), rad/token: linear scaling divides the global."""
    base, factor, local = bases(c)
    exponent = np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM
    return base ** -exponent / factor, local ** -exponent


def forward(c, t, ids, qk_norm=True, schedules="two", all_global=False):
    """ids [B, T] -> (rot_q per layer [B, T, H, hd], nll [B, T]) in float64. Controls:
    qk_norm=False drops the q/k norms; schedules="global" ("local") runs every layer on that one
    schedule; all_global=True runs every layer as a global one (no window, global schedule)."""
    t = {k: v.astype(np.float64) + (1.0 if k.endswith("norm.weight") else 0.0)
         for k, v in t.items()}
    B, T = ids.shape
    H, KV, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    g_global, g_local = inv_freqs(c)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    scale = c["query_pre_attn_scalar"] ** -0.5
    x = t["model.embed_tokens.weight"][ids] * np.float32(np.sqrt(c["hidden_size"]))
    rot_qs = []
    for layer, slides in enumerate(sliding(c)):
        slides = slides and not all_global
        p = f"model.layers.{layer}."
        q, k, v = mf._qkv(c, t, p, mf._rms(x, t[p + "input_layernorm.weight"], eps),
                          {"qk_norm": qk_norm})
        g = {"two": g_local if slides else g_global, "global": g_global,
             "local": g_local}[schedules]
        rq, rk = mf._rope_half(q, g, 1.0), mf._rope_half(k, g, 1.0)
        rk, v = np.repeat(rk, H // KV, axis=2), np.repeat(v, H // KV, axis=2)
        scores = np.einsum("bihd,bjhd->bhij", rq, rk) * scale
        masked = (j > i) | (i - j >= c["sliding_window"]) if slides else j > i
        scores = np.where(masked, -np.inf, scores)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        att = np.einsum("bhij,bjhd->bihd", pattern, v).reshape(B, T, H * HEAD_DIM)
        out = att @ t[p + "self_attn.o_proj.weight"].T
        x = x + mf._rms(out, t[p + "post_attention_layernorm.weight"], eps)
        out = mf._mlp(t, p, mf._rms(x, t[p + "pre_feedforward_layernorm.weight"], eps), True)
        x = x + mf._rms(out, t[p + "post_feedforward_layernorm.weight"], eps)
        rot_qs.append(rq)
    logits = mf._rms(x, t["model.norm.weight"], eps) @ t["model.embed_tokens.weight"].T
    if c.get("final_logit_softcapping"):
        cap = c["final_logit_softcapping"]
        logits = cap * np.tanh(logits / cap)
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    nll = np.zeros((B, T))
    nll[:, 1:] = -np.take_along_axis(logp[:, :-1], ids[:, 1:, None], -1)[..., 0]
    return rot_qs, nll
