"""Small random-weight models of the decoder families rope-dump runs (issue 14), for the tests:

- write_hf(): a Hugging Face directory as transformers saves it (config.json with the family's
  keys, model.safetensors F32 with its tensor names: qwen2's q/k/v biases, qwen3's q_norm and
  k_norm, phi3's fused qkv_proj and gate_up_proj);
- to_gguf(): the GGUF llama.cpp's convert_hf_to_gguf.py (node-llama-cpp 3.21.1's bundle,
  conversion/{llama,qwen,phi}.py) makes of it: llama and mistral as architecture "llama" with q/k
  rows permuted and no sliding window, qwen2/qwen3/phi3 under their own key prefix with the
  halves kept (NEOX rope), phi3's fused tensors as attn_qkv and ffn_up; gpt_neox as
  conversion/gptneox.py writes it (architecture "gptneox", query_key_value regrouped from
  per-head [q, k, v] to [q; k; v], no rope.freq_base);
- forward(): an independent float64 numpy forward of each family from the HF tensors, written
  from transformers' modeling_{llama,mistral,qwen2,qwen3,phi3,gpt_neox}.py, with each
  peculiarity a switch that a control can turn off.
"""
import json
import math
import os
import struct

import numpy as np

import gguf_writer
from gguf_writer import ARRAY, F32, STRING, U32

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gpt_neox")
ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "phi3": "Phi3ForCausalLM", "gemma": "GemmaForCausalLM",
                 "gemma2": "Gemma2ForCausalLM", "gpt_neox": "GPTNeoXForCausalLM"}
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
             "phi3": "phi3", "gemma": "gemma", "gemma2": "gemma2", "gpt_neox": "gptneox"}


def config(family, dim=64, hidden=96, layers=2, heads=4, kv_heads=2, vocab=300, window=8,
           **extra):
    """config.json as transformers writes it for `family` (a vocabulary past the 259 tokens
    llama.cpp's placeholder SentencePiece vocabulary needs), with the shapes that make each
    peculiarity change the result: a window shorter than the test sequences (mistral), a head_dim
    decoupled from hidden/heads (qwen3), partial rotary (phi3), llama3 scaling (llama)."""
    if family == "gpt_neox":
        return neox_config(dim, layers, heads, vocab, **extra)
    c = {"model_type": family, "architectures": [ARCHITECTURES[family]], "hidden_size": dim,
         "intermediate_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": 4096,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
         "tie_word_embeddings": False, "torch_dtype": "float32", "attention_dropout": 0.0}
    if family == "llama":
        c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    elif family == "mistral":
        c.update(sliding_window=window, rope_theta=1000000.0, head_dim=None)
    elif family == "qwen2":
        c.update(use_sliding_window=False, sliding_window=4096, max_window_layers=28,
                 rope_theta=1000000.0)
    elif family == "qwen3":
        c.update(head_dim=24, attention_bias=False, use_sliding_window=False,
                 sliding_window=None, rope_theta=1000000.0)
    elif family == "phi3":
        c.update(partial_rotary_factor=0.5, sliding_window=2047, rope_scaling=None,
                 original_max_position_embeddings=4096, embd_pdrop=0.0, resid_pdrop=0.0)
    elif family in ("gemma", "gemma2"):  # GemmaConfig's tie_word_embeddings (true) left out
        del c["tie_word_embeddings"], c["hidden_act"]
        c.update(head_dim=32, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6)
    if family == "gemma2":  # caps far below the real 50 and 30, so that they bite
        c.update(query_pre_attn_scalar=32, attn_logit_softcapping=2.0,
                 final_logit_softcapping=3.0, sliding_window=window, cache_implementation="hybrid")
    c.update(extra)
    return c


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def tensors(c, seed):
    """{HF name: float32 array} of a random model: matrices N(0, 0.1²)-ish, norm weights
    1 + N(0, 0.3²) (q/k norms included, so that they are not the identity), biases N(0, 0.3²)."""
    if c["model_type"] == "gpt_neox":
        return neox_tensors(c, seed)
    rng = np.random.default_rng(seed)
    dim, hidden, hd = c["hidden_size"], c["intermediate_size"], head_dim(c)
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd

    def normal(*shape, std=0.1, offset=0.0):
        return (offset + std * rng.standard_normal(shape)).astype(np.float32)

    family = c["model_type"]
    gemma = family in ("gemma", "gemma2")
    # Gemma stores RMSNorm weights w for a scale of 1 + w, and scales its embeddings by √dim.
    norm = 0.0 if gemma else 1.0
    t = {"model.embed_tokens.weight": normal(c["vocab_size"], dim, std=0.125 if gemma else 1.0)}
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = normal(dim, std=0.3, offset=norm)
        if family == "phi3":
            t[p + "self_attn.qkv_proj.weight"] = normal(q + 2 * kv, dim, std=0.3)
        else:
            t[p + "self_attn.q_proj.weight"] = normal(q, dim, std=0.3)
            t[p + "self_attn.k_proj.weight"] = normal(kv, dim, std=0.3)
            t[p + "self_attn.v_proj.weight"] = normal(kv, dim, std=0.3)
        if family == "qwen2":
            for name, n in (("q", q), ("k", kv), ("v", kv)):
                t[p + f"self_attn.{name}_proj.bias"] = normal(n, std=0.3)
        if family == "qwen3":
            t[p + "self_attn.q_norm.weight"] = normal(hd, std=0.3, offset=1.0)
            t[p + "self_attn.k_norm.weight"] = normal(hd, std=0.3, offset=1.0)
        t[p + "self_attn.o_proj.weight"] = normal(dim, q)
        t[p + "post_attention_layernorm.weight"] = normal(dim, std=0.3, offset=norm)
        if family == "gemma2":
            t[p + "pre_feedforward_layernorm.weight"] = normal(dim, std=0.3, offset=norm)
            t[p + "post_feedforward_layernorm.weight"] = normal(dim, std=0.3, offset=norm)
        if family == "phi3":
            t[p + "mlp.gate_up_proj.weight"] = normal(2 * hidden, dim)
        else:
            # Gemma's smaller: llama.cpp's GELU reads an f16 table, off by up to ~1e-3 otherwise.
            t[p + "mlp.gate_proj.weight"] = normal(hidden, dim, std=0.05 if gemma else 0.1)
            t[p + "mlp.up_proj.weight"] = normal(hidden, dim)
        t[p + "mlp.down_proj.weight"] = normal(dim, hidden)
    t["model.norm.weight"] = normal(dim, std=0.3, offset=norm)
    if not gemma:
        t["lm_head.weight"] = normal(c["vocab_size"], dim, std=0.1)
    return t


def write_hf(directory, c, t):
    """config.json and an F32 model.safetensors."""
    os.makedirs(directory)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in t.items():
        raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(directory, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(c, f, indent=2)


# ---------------------------------------------------------------- GGUF, as the converter writes
GEMMA2_NAMES = {"post_attention_layernorm": "post_attention_norm",
                "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm"}
LAYER_NAMES = dict(gguf_writer.LAYER_TENSORS, **{
    "self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"})


def gguf_tensor_name(hf_name, family):
    parts = hf_name.split(".")
    if parts[:2] == ["model", "layers"]:
        names = dict(LAYER_NAMES, **GEMMA2_NAMES) if family == "gemma2" else LAYER_NAMES
        return f"blk.{parts[2]}.{names['.'.join(parts[3:-1])]}.{parts[-1]}"
    return gguf_writer.gguf_name(hf_name)


def base_gguf_keys(c, arch):
    """The keys TextModel.set_gguf_parameters writes for every architecture."""
    a = arch + "."
    return [("general.architecture", STRING, arch), ("general.name", STRING, "ropekit test"),
            (a + "context_length", U32, c["max_position_embeddings"]),
            (a + "embedding_length", U32, c["hidden_size"]),
            (a + "feed_forward_length", U32, c["intermediate_size"]),
            (a + "block_count", U32, c["num_hidden_layers"]),
            (a + "attention.head_count", U32, c["num_attention_heads"]),
            (a + "attention.head_count_kv", U32, c["num_key_value_heads"]),
            (a + "attention.layer_norm_rms_epsilon", F32, c["rms_norm_eps"])]


def gguf_metadata(c):
    """The {arch}.* keys TextModel.set_gguf_parameters (and Phi3MiniModel's) write."""
    arch, hd = GGUF_ARCH[c["model_type"]], head_dim(c)
    a = arch + "."
    kvs = base_gguf_keys(c, arch)
    if arch not in ("gemma", "gemma2"):  # Gemma's converters write no base: llama.cpp assumes 10⁴
        kvs.append((a + "rope.freq_base", F32, c["rope_theta"]))
    if arch == "gemma2":
        kvs += [(a + "attn_logit_softcapping", F32, c["attn_logit_softcapping"]),
                (a + "final_logit_softcapping", F32, c["final_logit_softcapping"]),
                (a + "attention.sliding_window", U32, c["sliding_window"])]
    if arch == "llama":
        kvs += [(a + "vocab_size", U32, c["vocab_size"]), (a + "rope.dimension_count", U32, hd)]
    if c.get("head_dim"):
        kvs += [(a + "attention.key_length", U32, hd), (a + "attention.value_length", U32, hd)]
    if arch == "phi3":
        rotary = int(c.get("partial_rotary_factor", 1.0) * c["hidden_size"]) // \
            c["num_attention_heads"]
        kvs += [(a + "rope.dimension_count", U32, rotary),
                (a + "rope.scaling.original_context_length", U32,
                 c["original_max_position_embeddings"]),
                (a + "attention.sliding_window", U32, c.get("sliding_window") or 0)]
        if longrope(c):  # Phi3MiniModel.generate_extra_tensors: the attention factor it computes
            kvs.append((a + "rope.scaling.attn_factor", F32, longrope_attention_factor(c)))
    return kvs + gguf_writer.placeholder_vocab(c["vocab_size"])


def longrope(c):
    """The longrope dict of a phi3 config, or None."""
    scaling = c.get("rope_scaling") or {}
    return scaling if scaling.get("rope_type", scaling.get("type")) == "longrope" else None


def longrope_attention_factor(c):
    """sqrt(1 + ln(max / original) / ln(original)), 1 when max <= original: transformers' default
    and what the converter writes as rope.scaling.attn_factor."""
    original = c["original_max_position_embeddings"]
    f = c["max_position_embeddings"] / original
    return float(np.sqrt(1 + np.log(f) / np.log(original))) if f > 1 else 1.0


def to_gguf(c, t, path, drop=()):
    """The F32 GGUF of the model: q/k permuted for the llama architecture only; metadata keys and
    tensors named in `drop` left out (for controls)."""
    if c["model_type"] == "gpt_neox":
        return neox_to_gguf(c, t, path)
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    out = []
    for name, w in t.items():
        if GGUF_ARCH[c["model_type"]] == "llama" and name.endswith("q_proj.weight"):
            w = gguf_writer.llama_permute(w, heads, heads)
        elif GGUF_ARCH[c["model_type"]] == "llama" and name.endswith("k_proj.weight"):
            w = gguf_writer.llama_permute(w, heads, kv_heads)
        elif c["model_type"] in ("gemma", "gemma2") and name.endswith("norm.weight"):
            w = w + 1  # GemmaModel.modify_tensors
        out.append((gguf_tensor_name(name, c["model_type"]), tuple(reversed(w.shape)), gguf_writer.GGML_TYPES["F32"],
                    gguf_writer.encode(w, "F32")))
    if c["model_type"] == "llama" and c.get("rope_scaling"):
        factors = gguf_writer.llama3_rope_factors(c)
        out.append(("rope_freqs.weight", (len(factors),), gguf_writer.GGML_TYPES["F32"],
                    gguf_writer.encode(factors, "F32")))
    if longrope(c):  # the converter's rope_factors_long / rope_factors_short (F32, one pair)
        for which in ("long", "short"):
            factors = np.asarray(longrope(c)[f"{which}_factor"], np.float32)
            out.append((f"rope_factors_{which}.weight", (len(factors),),
                        gguf_writer.GGML_TYPES["F32"], gguf_writer.encode(factors, "F32")))
    gguf_writer.write_gguf(path, [kv for kv in gguf_metadata(c) if kv[0] not in drop],
                           [tensor for tensor in out if tensor[0] not in drop])


# ---------------------------------------------------------------- numpy forward
def inv_freq(c):
    """(frequencies of the rotated pairs, cos/sin factor), from modeling_rope_utils' formulas."""
    hd = head_dim(c)
    rotary = int(hd * c.get("partial_rotary_factor", 1.0))
    g = c["rope_theta"] ** (-np.arange(0, rotary, 2, dtype=np.float64) / rotary)
    scaling = c.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "llama3":
        original, f = scaling["original_max_position_embeddings"], scaling["factor"]
        low, high = original / scaling["low_freq_factor"], original / scaling["high_freq_factor"]
        wavelength = 2 * np.pi / g
        smooth = (original / wavelength - scaling["low_freq_factor"]) / \
            (scaling["high_freq_factor"] - scaling["low_freq_factor"])
        blended = (1 - smooth) * g / f + smooth * g
        g = np.where(wavelength < high, g, np.where(wavelength > low, g / f, blended))
    if kind == "longrope":  # short factors, or the long ones (the scaling switch "long")
        g = g / np.asarray(scaling[f"{c.get('_longrope_factors', 'short')}_factor"])
        return g, longrope_attention_factor(c)
    return g, 1.0


def _rms(x, w, eps):
    return w * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)


def _rope_half(v, g, factor):
    """transformers' rotate_half on the first 2·len(g) dims of each head, at positions 0.."""
    T, r = v.shape[1], 2 * len(g)
    angle = np.arange(T)[:, None] * g[None, :]
    cos = np.concatenate([np.cos(angle)] * 2, -1)[None, :, None, :] * factor
    sin = np.concatenate([np.sin(angle)] * 2, -1)[None, :, None, :] * factor
    rot, rest = v[..., :r], v[..., r:]
    half = np.concatenate([-rot[..., r // 2:], rot[..., :r // 2]], -1)
    return np.concatenate([rot * cos + half * sin, rest], -1)


def _qkv(c, t, p, xb, switches):
    hd, H, KV = head_dim(c), c["num_attention_heads"], c["num_key_value_heads"]
    if p + "self_attn.qkv_proj.weight" in t:
        qkv = xb @ t[p + "self_attn.qkv_proj.weight"].T
        q, k, v = np.split(qkv, [H * hd, (H + KV) * hd], -1)
    else:
        q, k, v = (xb @ t[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        if switches.get("bias", True) and p + "self_attn.q_proj.bias" in t:
            q, k, v = (m + t[p + f"self_attn.{n}_proj.bias"] for m, n in zip((q, k, v), "qkv"))
    B, T = xb.shape[:2]
    q, k, v = q.reshape(B, T, H, hd), k.reshape(B, T, KV, hd), v.reshape(B, T, KV, hd)
    if switches.get("qk_norm", True) and p + "self_attn.q_norm.weight" in t:
        q = _rms(q, t[p + "self_attn.q_norm.weight"], c["rms_norm_eps"])
        k = _rms(k, t[p + "self_attn.k_norm.weight"], c["rms_norm_eps"])
    return q, k, v


def _mlp(t, p, xb, gelu):
    if p + "mlp.gate_up_proj.weight" in t:
        a, u = np.split(xb @ t[p + "mlp.gate_up_proj.weight"].T, 2, -1)
    else:
        a, u = xb @ t[p + "mlp.gate_proj.weight"].T, xb @ t[p + "mlp.up_proj.weight"].T
    if gelu:  # gelu_pytorch_tanh
        act = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))
    else:
        act = a / (1 + np.exp(-a))
    return (act * u) @ t[p + "mlp.down_proj.weight"].T


def forward(c, t, ids, **switches):
    """ids [B, T] -> (rot_q per layer [B, T, H, hd], nll [B, T]) in float64. switches turn a
    peculiarity off for controls: bias, qk_norm, window, scaling, gemma_norm, softcap (False),
    rotary ('full'), and for gpt_neox gelu (another activation); scaling='long' runs longrope
    with its long factors; drop=[indices] zeroes those frequencies (p-RoPE)."""
    if c["model_type"] == "gpt_neox":
        return neox_forward(c, t, ids, **switches)
    t = {k: v.astype(np.float64) for k, v in t.items()}
    gemma = c["model_type"] in ("gemma", "gemma2")
    gemma2 = c["model_type"] == "gemma2"
    if gemma:
        offset = 1.0 if switches.get("gemma_norm", True) else 0.0
        t = {k: v + offset if k.endswith("norm.weight") else v for k, v in t.items()}
        t["lm_head.weight"] = t["model.embed_tokens.weight"]
    B, T = ids.shape
    H, KV, hd, eps = c["num_attention_heads"], c["num_key_value_heads"], head_dim(c), \
        c["rms_norm_eps"]
    cc = dict(c)
    if switches.get("rotary") == "full":
        cc["partial_rotary_factor"] = 1.0
    if switches.get("scaling") is False:
        cc["rope_scaling"] = None
    if switches.get("scaling") == "long":
        cc["_longrope_factors"] = "long"
    g, factor = inv_freq(cc)
    if "drop" in switches:  # p-RoPE: these frequency indices do not rotate
        g = g.copy()
        g[list(switches["drop"])] = 0.0
    window = c.get("sliding_window") if c["model_type"] in ("mistral", "phi3", "gemma2") else None
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    windowed = (j > i) | (i - j >= window) if window and switches.get("window", True) else j > i
    scale = c["query_pre_attn_scalar"] ** -0.5 if gemma2 else hd ** -0.5
    cap = c.get("attn_logit_softcapping") if switches.get("softcap", True) else None
    x = t["model.embed_tokens.weight"][ids]
    if gemma:
        x = x * np.float32(np.sqrt(c["hidden_size"]))
    rot_qs = []
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        q, k, v = _qkv(c, t, p, _rms(x, t[p + "input_layernorm.weight"], eps), switches)
        rq, rk = _rope_half(q, g, factor), _rope_half(k, g, factor)
        rk, v = np.repeat(rk, H // KV, axis=2), np.repeat(v, H // KV, axis=2)
        scores = np.einsum("bihd,bjhd->bhij", rq, rk) * scale
        if cap:
            scores = cap * np.tanh(scores / cap)
        # gemma2 slides on even layers (transformers' default layer_types), the others on all
        sliding = layer % 2 == 0 if gemma2 else True
        scores = np.where(windowed if sliding else j > i, -np.inf, scores)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        att = np.einsum("bhij,bjhd->bihd", pattern, v).reshape(B, T, H * hd)
        out = att @ t[p + "self_attn.o_proj.weight"].T
        if gemma2:  # norms before and after attention and the MLP
            x = x + _rms(out, t[p + "post_attention_layernorm.weight"], eps)
            out = _mlp(t, p, _rms(x, t[p + "pre_feedforward_layernorm.weight"], eps), gemma)
            x = x + _rms(out, t[p + "post_feedforward_layernorm.weight"], eps)
        else:
            x = x + out
            x = x + _mlp(t, p, _rms(x, t[p + "post_attention_layernorm.weight"], eps), gemma)
        rot_qs.append(rq)
    logits = _rms(x, t["model.norm.weight"], eps) @ t["lm_head.weight"].T
    if gemma2 and switches.get("softcap", True):
        logits = c["final_logit_softcapping"] * np.tanh(logits / c["final_logit_softcapping"])
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    nll = np.zeros((B, T))
    nll[:, 1:] = -np.take_along_axis(logp[:, :-1], ids[:, 1:, None], -1)[..., 0]
    return rot_qs, nll


# ---------------------------------------------------------------- gpt_neox (Pythia)
def neox_config(dim, layers, heads, vocab, **extra):
    """config.json as Pythia's (EleutherAI/pythia-*): rotary_pct and rotary_emb_base, not
    partial_rotary_factor and rope_theta; LayerNorm's layer_norm_eps; the exact GELU; parallel
    attention and MLP; untied embed_out."""
    c = {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "hidden_size": dim,
         "intermediate_size": 4 * dim, "num_hidden_layers": layers, "num_attention_heads": heads,
         "vocab_size": vocab, "max_position_embeddings": 2048, "rotary_pct": 0.25,
         "rotary_emb_base": 10000, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
         "use_parallel_residual": True, "tie_word_embeddings": False, "bos_token_id": 0,
         "eos_token_id": 0, "initializer_range": 0.02, "use_cache": True,
         "torch_dtype": "float32", "transformers_version": "4.24.0"}
    c.update(extra)
    return c


def neox_tensors(c, seed):
    """{HF name: float32 array}: query_key_value's rows [heads, 3, head_dim] as GPTNeoXAttention
    splits them, every linear layer and LayerNorm with a bias."""
    rng = np.random.default_rng(seed)
    dim, hidden = c["hidden_size"], c["intermediate_size"]

    def normal(*shape, std=0.1, offset=0.0):
        return (offset + std * rng.standard_normal(shape)).astype(np.float32)

    t = {"gpt_neox.embed_in.weight": normal(c["vocab_size"], dim, std=1.0)}
    for layer in range(c["num_hidden_layers"]):
        p = f"gpt_neox.layers.{layer}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            t[p + norm + ".weight"] = normal(dim, std=0.3, offset=1.0)
            t[p + norm + ".bias"] = normal(dim, std=0.3)
        t[p + "attention.query_key_value.weight"] = normal(3 * dim, dim, std=0.3)
        t[p + "attention.query_key_value.bias"] = normal(3 * dim, std=0.3)
        t[p + "attention.dense.weight"] = normal(dim, dim)
        t[p + "attention.dense.bias"] = normal(dim)
        # small: llama.cpp's GELU reads an f16 table (differences grow with the MLP's share)
        t[p + "mlp.dense_h_to_4h.weight"] = normal(hidden, dim, std=0.05)
        t[p + "mlp.dense_h_to_4h.bias"] = normal(hidden, std=0.1)
        t[p + "mlp.dense_4h_to_h.weight"] = normal(dim, hidden, std=0.05)
        t[p + "mlp.dense_4h_to_h.bias"] = normal(dim)
    t["gpt_neox.final_layer_norm.weight"] = normal(dim, std=0.3, offset=1.0)
    t["gpt_neox.final_layer_norm.bias"] = normal(dim, std=0.3)
    t["embed_out.weight"] = normal(c["vocab_size"], dim)
    return t


NEOX_NAMES = {"input_layernorm": "attn_norm", "attention.query_key_value": "attn_qkv",
              "attention.dense": "attn_output", "post_attention_layernorm": "ffn_norm",
              "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}


def neox_gguf_name(hf_name):
    """gguf-py's tensor_mapping for gptneox."""
    top = {"gpt_neox.embed_in": "token_embd", "gpt_neox.final_layer_norm": "output_norm",
           "embed_out": "output"}
    stem, kind = hf_name.rsplit(".", 1)
    if stem in top:
        return f"{top[stem]}.{kind}"
    parts = stem.split(".")
    return f"blk.{parts[2]}.{NEOX_NAMES['.'.join(parts[3:])]}.{kind}"


def neox_to_gguf(c, t, path):
    """The GGUF conversion/gptneox.py writes: its own keys only (no rope.freq_base: llama.cpp
    assumes 10000; rope.dimension_count = int(rotary_pct * head_dim)), query_key_value's rows
    regrouped from [heads, 3, head_dim] to [3, heads, head_dim] (weight and bias)."""
    a, heads, dim = "gptneox.", c["num_attention_heads"], c["hidden_size"]
    kvs = [("general.architecture", STRING, "gptneox"), ("general.name", STRING, "ropekit test"),
           (a + "context_length", U32, c["max_position_embeddings"]),
           (a + "embedding_length", U32, dim), (a + "block_count", U32, c["num_hidden_layers"]),
           (a + "feed_forward_length", U32, c["intermediate_size"]),
           (a + "rope.dimension_count", U32, int(c["rotary_pct"] * (dim // heads))),
           (a + "attention.head_count", U32, heads),
           (a + "use_parallel_residual", gguf_writer.BOOL, c.get("use_parallel_residual", True)),
           (a + "attention.layer_norm_epsilon", F32, c["layer_norm_eps"])]
    out = []
    for name, w in t.items():
        if "query_key_value" in name:
            w = w.reshape(heads, 3, -1, *w.shape[1:]).swapaxes(0, 1).reshape(w.shape)
        out.append((neox_gguf_name(name), tuple(reversed(w.shape)), gguf_writer.GGML_TYPES["F32"],
                    gguf_writer.encode(w, "F32")))
    gguf_writer.write_gguf(path, kvs + gguf_writer.placeholder_vocab(c["vocab_size"]), out)


def neox_rotary_dim(c):
    """int(head_dim * rotary_pct), as GPTNeoXAttention (and _compute_default_rope_parameters)."""
    return int(head_dim(c) * c.get("rotary_pct", 0.25))


def _layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    """torch's default (exact) GELU: x·Φ(x)."""
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)).astype(np.float64))


def neox_rope(v, c, rotary=None, kept=None):
    """GPTNeoX's apply_rotary_pos_emb: rotate_half on the first rotary_dim dims of each head
    ([B, T, H, hd]), the rest passed through; with `kept`, p-RoPE on the rotated part (the
    frequencies past the first `kept` are 0)."""
    rotary = rotary or neox_rotary_dim(c)
    g = float(c.get("rotary_emb_base", 10000)) ** (-np.arange(0, rotary, 2) / rotary)
    if kept is not None:
        g[kept:] = 0.0
    return _rope_half(v, g, 1.0)


def neox_forward(c, t, ids, **switches):
    """ids [B, T] -> (rot_q per layer, nll [B, T]) in float64, from modeling_gpt_neox.py.
    switches: rotary='full' rotates whole heads; gelu replaces the exact GELU; kept keeps only
    the first `kept` frequencies (p-RoPE)."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    B, T = ids.shape
    H, hd, eps = c["num_attention_heads"], head_dim(c), c["layer_norm_eps"]
    rotary = hd if switches.get("rotary") == "full" else neox_rotary_dim(c)
    parallel = c.get("use_parallel_residual", True)
    activation = switches.get("gelu", gelu)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    x = t["gpt_neox.embed_in.weight"][ids]
    rot_qs = []
    for layer in range(c["num_hidden_layers"]):
        p = f"gpt_neox.layers.{layer}."

        def linear(name, v):
            return v @ t[p + name + ".weight"].T + t[p + name + ".bias"]

        def mlp(v):
            v = _layer_norm(v, t[p + "post_attention_layernorm.weight"],
                            t[p + "post_attention_layernorm.bias"], eps)
            return linear("mlp.dense_4h_to_h", activation(linear("mlp.dense_h_to_4h", v)))

        xb = _layer_norm(x, t[p + "input_layernorm.weight"], t[p + "input_layernorm.bias"], eps)
        qkv = linear("attention.query_key_value", xb).reshape(B, T, H, 3, hd)
        q, k, v = qkv[..., 0, :], qkv[..., 1, :], qkv[..., 2, :]
        kept = switches.get("kept")
        rq, rk = neox_rope(q, c, rotary, kept), neox_rope(k, c, rotary, kept)
        scores = np.einsum("bihd,bjhd->bhij", rq, rk) * hd ** -0.5
        scores = np.where(j > i, -np.inf, scores)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        att = np.einsum("bhij,bjhd->bihd", pattern, v).reshape(B, T, H * hd)
        out = linear("attention.dense", att)
        x = x + out + mlp(x) if parallel else x + out + mlp(x + out)
        rot_qs.append(rq)
    x = _layer_norm(x, t["gpt_neox.final_layer_norm.weight"], t["gpt_neox.final_layer_norm.bias"],
                    eps)
    logits = x @ t["embed_out.weight"].T
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    nll = np.zeros((B, T))
    nll[:, 1:] = -np.take_along_axis(logp[:, :-1], ids[:, 1:, None], -1)[..., 0]
    return rot_qs, nll
