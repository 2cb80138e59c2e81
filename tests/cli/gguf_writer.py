"""GGUF files for the tests, written with numpy only (no gguf-py, no torch).

- write_gguf(): the container (GGUF v3, little-endian): header, key-values, tensor infos, data
  section aligned to `alignment`.
- encode()/decode(): tensor data in F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K, and back to
  float32. Q8_0 and Q4_0 quantize bit for bit as ggml's reference quantize_row_*_ref; the K-quants
  use ggml's block layout and its packing of scales with a plain min/max choice of each sub-block's
  scale (ggml searches for the error-minimising one). Any valid block dequantizes the same way, and
  that is what the tests compare.
- hf_to_gguf(): a Hugging Face Llama directory (config.json + safetensors) converted to a
  llama-architecture GGUF the way llama.cpp's convert_hf_to_gguf.py does it: its metadata keys, its
  tensor names, q/k rows permuted back to adjacent rotary pairs (LlamaModel.permute), 1-D tensors
  kept F32, a placeholder "llama" vocabulary of vocab_size entries, and rope_freqs.weight for Llama
  3.x's rope_scaling.
"""
import json
import math
import os
import struct

import numpy as np

from test_rope_dump import to_bf16_bits  # float32 -> bfloat16 bits, nearest even (as gguf-py)

# ggml_type ids and (elements, bytes) per block (ggml-common.h, QK_K = 256).
GGML_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14,
              "BF16": 30}
BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34), "Q4_0": (32, 18),
          "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}
QK_K = 256

# GGUF metadata value types.
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


# ---------------------------------------------------------------- the container
def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype, v):
    scalar = {U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", 10: "<Q", 12: "<d"}
    if vtype in scalar:
        return struct.pack(scalar[vtype], v)
    if vtype == STRING:
        return gguf_string(v)
    if vtype == ARRAY:
        etype, items = v
        if etype in (U32, I32, F32):
            dtype = {U32: "<u4", I32: "<i4", F32: "<f4"}[etype]
            return struct.pack("<IQ", etype, len(items)) + np.asarray(items, dtype).tobytes()
        return struct.pack("<IQ", etype, len(items)) + b"".join(gguf_value(etype, x) for x in items)
    raise ValueError(f"unsupported GGUF value type {vtype}")


def tensor_bytes(dims, ggml_type):
    """Bytes of a tensor of `dims` (innermost first, whole blocks) in a ggml type."""
    name = next(k for k, v in GGML_TYPES.items() if v == ggml_type)
    block, size = BLOCKS[name]
    return int(np.prod(dims, dtype=np.int64)) // block * size


def write_gguf(path, kvs, tensors, alignment=32):
    """kvs: [(key, value type, value)], arrays as (ARRAY, (element type, items));
    tensors: [(name, dims innermost first, ggml type id, raw bytes)]. `raw` may also be a
    function returning the bytes (of a type gguf_writer knows), called when its turn comes, so a
    file larger than memory is written one tensor at a time."""
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        header += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, v)
    offset = 0
    for name, dims, gtype, raw in tensors:
        header += gguf_string(name) + struct.pack("<I", len(dims))
        header += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", gtype, offset)
        size = tensor_bytes(dims, gtype) if callable(raw) else len(raw)
        offset += size + (-size % alignment)
    header += b"\0" * (-len(header) % alignment)
    with open(path, "wb") as f:
        f.write(header)
        for _, dims, gtype, raw in tensors:
            data = raw() if callable(raw) else raw
            if callable(raw) and len(data) != tensor_bytes(dims, gtype):
                raise ValueError(f"{len(data)} bytes for {dims} of ggml type {gtype}")
            f.write(data)
            f.write(b"\0" * (-len(data) % alignment))


# ---------------------------------------------------------------- rounding
def _f16(values):
    return np.asarray(values, np.float32).astype("<f2")


def _round_away(x):
    """C's roundf: halves away from zero (x + 0.5 would round 0.49999997 up)."""
    a = np.abs(x)
    whole = np.floor(a)
    return (np.sign(x) * (whole + np.floor(2 * (a - whole)))).astype(np.float32)


# ---------------------------------------------------------------- Q8_0 and Q4_0 (ggml reference)
def _q8_0(blocks):
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = _round_away(blocks * inv).astype(np.int8)
    return np.concatenate([_f16(d).view(np.uint8), q.view(np.uint8)], axis=1)


def _q4_0(blocks):
    index = np.abs(blocks).argmax(axis=1)
    signed_max = blocks[np.arange(len(blocks)), index][:, None]
    d = (signed_max / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np.minimum(15, np.trunc(blocks * inv + np.float32(8.5)).astype(np.int8)).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([_f16(d).view(np.uint8), packed], axis=1)


# ---------------------------------------------------------------- K-quants (ggml layout)
def _pack_scales_k4(ls, lm):
    """Eight 6-bit scales and mins -> ggml's 12 bytes (get_scale_min_k4 reads them back)."""
    out = np.zeros((len(ls), 12), np.uint8)
    out[:, 0:4] = ls[:, 0:4] | ((ls[:, 4:8] >> 4) << 6)
    out[:, 4:8] = lm[:, 0:4] | ((lm[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    return out


def _unpack_scales_k4(s):
    sc = np.empty((len(s), 8), np.uint8)
    m = np.empty((len(s), 8), np.uint8)
    sc[:, 0:4], m[:, 0:4] = s[:, 0:4] & 63, s[:, 4:8] & 63
    sc[:, 4:8] = (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)
    m[:, 4:8] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, m


def _k_scales(blocks, levels):
    """Per 32-element sub-block: x ~ scale * q - min with q in [0, levels]; the 6-bit codes of
    scale and min relative to the block's d and dmin, and the codes q themselves."""
    sub = blocks.reshape(len(blocks), 8, 32)
    mins = np.maximum(0, -sub.min(axis=2)).astype(np.float32)
    scales = ((sub.max(axis=2) + mins) / np.float32(levels)).astype(np.float32)
    d = (scales.max(axis=1, keepdims=True) / np.float32(63)).astype(np.float32)
    dmin = (mins.max(axis=1, keepdims=True) / np.float32(63)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = np.minimum(63, np.rint(np.where(d > 0, scales / d, 0))).astype(np.uint8)
        lm = np.minimum(63, np.rint(np.where(dmin > 0, mins / dmin, 0))).astype(np.uint8)
    d16, dmin16 = _f16(d).astype(np.float32), _f16(dmin).astype(np.float32)
    step = d16 * ls  # [blocks, 8]
    offset = dmin16 * lm
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint((sub + offset[..., None]) / step[..., None])
    q = np.clip(np.where(step[..., None] > 0, q, 0), 0, levels).astype(np.uint8)
    return d, dmin, _pack_scales_k4(ls, lm), q.reshape(len(blocks), QK_K)


def _q4_k(blocks):
    d, dmin, scales, q = _k_scales(blocks, 15)
    q = q.reshape(len(blocks), 4, 2, 32)  # [chunk of 64, low/high half, 32]
    qs = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(len(blocks), 128)
    return np.concatenate([_f16(d).view(np.uint8), _f16(dmin).view(np.uint8), scales, qs], axis=1)


def _q5_k(blocks):
    d, dmin, scales, q = _k_scales(blocks, 31)
    q = q.reshape(len(blocks), 4, 2, 32)
    low = q & 0xF
    qs = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(len(blocks), 128)
    high = (q >> 4).astype(np.uint8)  # bit 2c of qh[l] is element 64c + l, bit 2c+1 is 64c+32+l
    qh = np.zeros((len(blocks), 32), np.uint8)
    for c in range(4):
        qh |= (high[:, c, 0] << (2 * c)) | (high[:, c, 1] << (2 * c + 1))
    return np.concatenate([_f16(d).view(np.uint8), _f16(dmin).view(np.uint8), scales, qh, qs],
                          axis=1)


def _q6_k(blocks):
    sub = blocks.reshape(len(blocks), 16, 16)
    index = np.abs(sub).argmax(axis=2)[..., None]
    scales = (np.take_along_axis(sub, index, axis=2)[..., 0] / np.float32(-32)).astype(np.float32)
    big = np.abs(scales).argmax(axis=1)[:, None]
    max_scale = np.take_along_axis(scales, big, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(max_scale != 0, np.float32(-128) / max_scale, 0).astype(np.float32)
        d = np.where(iscale != 0, np.float32(1) / iscale, 0).astype(np.float32)
    sc = np.minimum(127, np.rint(iscale * scales)).astype(np.int8)
    step = _f16(d).astype(np.float32) * sc
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint(sub / step[..., None])
    q = (np.clip(np.where(step[..., None] != 0, q, 0), -32, 31) + 32).astype(np.uint8)
    q = q.reshape(len(blocks), 2, 4, 32)  # [half of 128, quarter, 32]
    ql = np.concatenate([q[:, :, 0] & 0xF | ((q[:, :, 2] & 0xF) << 4),
                         q[:, :, 1] & 0xF | ((q[:, :, 3] & 0xF) << 4)], axis=2)
    qh = (q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | \
        ((q[:, :, 3] >> 4) << 6)
    return np.concatenate([ql.reshape(len(blocks), 128), qh.reshape(len(blocks), 64),
                           sc.view(np.uint8), _f16(d).view(np.uint8)], axis=1)


QUANTIZERS = {"Q8_0": _q8_0, "Q4_0": _q4_0, "Q4_K": _q4_k, "Q5_K": _q5_k, "Q6_K": _q6_k}


def encode(array, type_name):
    """A float array as the bytes of `type_name`; rows (last axis) must be whole blocks."""
    x = np.ascontiguousarray(array, np.float32)
    if type_name == "F32":
        return x.astype("<f4").tobytes()
    if type_name == "F16":
        return x.astype("<f2").tobytes()
    if type_name == "BF16":
        return to_bf16_bits(x).tobytes()
    block = BLOCKS[type_name][0]
    if x.shape[-1] % block:
        raise ValueError(f"rows of {x.shape[-1]} are not whole {type_name} blocks of {block}")
    return QUANTIZERS[type_name](x.reshape(-1, block)).tobytes()


# ---------------------------------------------------------------- back to float32 (numpy)
def _dq8_0(b):
    return b[:, 2:].view(np.int8).astype(np.float32) * b[:, :2].copy().view("<f2").astype(np.float32)


def _dq4_0(b):
    d = b[:, :2].copy().view("<f2").astype(np.float32)
    q = np.concatenate([b[:, 2:] & 0xF, b[:, 2:] >> 4], axis=1).astype(np.int8) - 8
    return q.astype(np.float32) * d


def _k_header(b):
    d = b[:, 0:2].copy().view("<f2").astype(np.float32)
    dmin = b[:, 2:4].copy().view("<f2").astype(np.float32)
    sc, m = _unpack_scales_k4(b[:, 4:16])
    return (d * sc).astype(np.float32), (dmin * m).astype(np.float32)  # [blocks, 8] each


def _dq4_k(b):
    step, offset = _k_header(b)
    qs = b[:, 16:144].reshape(len(b), 4, 32)
    q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(len(b), 8, 32).astype(np.float32)
    return (step[..., None] * q - offset[..., None]).reshape(len(b), QK_K)


def _dq5_k(b):
    step, offset = _k_header(b)
    qh, qs = b[:, 16:48], b[:, 48:176].reshape(len(b), 4, 32)
    q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(len(b), 8, 32).astype(np.int32)
    for sub in range(8):
        q[:, sub] += ((qh >> sub) & 1).astype(np.int32) * 16
    return (step[..., None] * q.astype(np.float32) - offset[..., None]).reshape(len(b), QK_K)


def _dq6_k(b):
    ql = b[:, 0:128].reshape(len(b), 2, 2, 32)  # [half, first/second 32 bytes, 32]
    qh = b[:, 128:192].reshape(len(b), 2, 32)
    sc = b[:, 192:208].view(np.int8).astype(np.float32)
    d = b[:, 208:210].copy().view("<f2").astype(np.float32)
    low = [ql[:, :, 0] & 0xF, ql[:, :, 1] & 0xF, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4]
    q = np.stack([low[i] | (((qh >> (2 * i)) & 3) << 4) for i in range(4)], axis=2)
    q = q.reshape(len(b), 16, 16).astype(np.int32) - 32
    return ((d * sc)[..., None] * q.astype(np.float32)).reshape(len(b), QK_K)


DEQUANTIZERS = {"Q8_0": _dq8_0, "Q4_0": _dq4_0, "Q4_K": _dq4_k, "Q5_K": _dq5_k, "Q6_K": _dq6_k}


def decode(raw, type_name, shape):
    """Bytes of `type_name` -> float32 array of `shape` (numpy order, rows last)."""
    if type_name == "F32":
        return np.frombuffer(raw, "<f4").reshape(shape).copy()
    if type_name == "F16":
        return np.frombuffer(raw, "<f2").astype(np.float32).reshape(shape)
    if type_name == "BF16":
        bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, BLOCKS[type_name][1])
    return DEQUANTIZERS[type_name](blocks).reshape(shape)


# ---------------------------------------------------------------- Hugging Face -> llama GGUF
def llama_permute(weights, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py LlamaModel.permute: half-split rotary pairs back to adjacent pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}


def read_safetensors(path):
    """{name: float32 array} of a safetensors file with F32, F16 or BF16 tensors."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        a = np.frombuffer(raw[8 + n + b:8 + n + e], SAFETENSORS_DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.astype(np.float32).reshape(info["shape"])
    return out


LAYER_TENSORS = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
                 "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(hf_name):
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.split(".")  # model.layers.N.<module...>.weight
    if parts[:2] == ["model", "layers"]:
        return f"blk.{parts[2]}.{LAYER_TENSORS['.'.join(parts[3:-1])]}.weight"
    raise ValueError(f"no GGUF name for {hf_name}")


def placeholder_vocab(n):
    """tokenizer.ggml.* of a "llama" (SentencePiece) vocabulary of n entries, laid out as Llama 2's:
    <unk>, <s>, </s>, the byte tokens <0x00> ... <0xFF> (as many as fit), then t259, t260, ..."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # unknown, control, control, byte
    tokens = tokens[:n] + [f"t{i}" for i in range(len(tokens), n)]
    types = types[:n] + [1] * (n - len(types[:n]))  # normal
    return [("tokenizer.ggml.model", STRING, "llama"),
            ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
            ("tokenizer.ggml.scores", ARRAY, (F32, [0.0] * n)),
            ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
            ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
            ("tokenizer.ggml.unknown_token_id", U32, 0)]


def llama_metadata(cfg, freq_base=None, context_length=None):
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    kvs = [("general.architecture", STRING, "llama"), ("general.name", STRING, "ropekit test"),
           ("llama.vocab_size", U32, cfg["vocab_size"]),
           ("llama.context_length", U32, context_length or cfg["max_position_embeddings"]),
           ("llama.embedding_length", U32, cfg["hidden_size"]),
           ("llama.block_count", U32, cfg["num_hidden_layers"]),
           ("llama.feed_forward_length", U32, cfg["intermediate_size"]),
           ("llama.attention.head_count", U32, heads),
           ("llama.attention.head_count_kv", U32, cfg.get("num_key_value_heads", heads)),
           ("llama.rope.dimension_count", U32, head_dim),
           ("llama.rope.freq_base", F32, cfg.get("rope_theta", 10000.0) if freq_base is None
            else freq_base),
           ("llama.attention.layer_norm_rms_epsilon", F32, cfg.get("rms_norm_eps", 1e-6))]
    if "head_dim" in cfg:
        kvs += [("llama.attention.key_length", U32, head_dim),
                ("llama.attention.value_length", U32, head_dim)]
    return kvs + placeholder_vocab(cfg["vocab_size"])


def llama3_rope_factors(cfg):
    """rope_freqs.weight for a Llama 3.x rope_scaling, as convert_hf_to_gguf.py computes it
    (LlamaModel.generate_extra_tensors, in float32): 1 above the high-frequency cut-off wavelength,
    `factor` below the low one, smoothly in between."""
    scaling = cfg["rope_scaling"]
    heads = cfg["num_attention_heads"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    base = cfg.get("rope_theta", 10000.0)
    freqs = (1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))).astype(np.float32)
    factor = scaling.get("factor", 8.0)
    low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
    old_context = scaling.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in freqs:
        wavelength = 2 * math.pi / freq
        if wavelength < old_context / high:
            factors.append(1.0)
        elif wavelength > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, np.float32)


def hf_to_gguf_parts(hf_dir, dtype="F32", *, permute=True, freq_base=None, context_length=None):
    """(config, metadata, tensors) of the GGUF that hf_to_gguf writes, for callers that change
    them first (the bad-input corpus)."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    weights = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    tensors = []
    for name, w in weights.items():
        if permute and name.endswith("q_proj.weight"):
            w = llama_permute(w, heads, heads)
        elif permute and name.endswith("k_proj.weight"):
            w = llama_permute(w, heads, kv_heads)
        stored = dtype if w.ndim == 2 else "F32"
        tensors.append((gguf_name(name), tuple(reversed(w.shape)), GGML_TYPES[stored],
                        encode(w, stored)))
    scaling = cfg.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) == "llama3":
        factors = llama3_rope_factors(cfg)
        tensors.append(("rope_freqs.weight", (len(factors),), GGML_TYPES["F32"], encode(factors, "F32")))
    return cfg, llama_metadata(cfg, freq_base, context_length), tensors


def hf_to_gguf(hf_dir, path, dtype="F32", **options):
    """Converts a Hugging Face Llama directory (config.json, model.safetensors) to a GGUF at
    `path`: 2-D tensors stored as `dtype`, 1-D tensors F32, rope_freqs.weight for a llama3
    rope_scaling. permute=False and freq_base are for controls that must fail: q/k left in the
    half-split layout, a wrong rope.freq_base."""
    cfg, metadata, tensors = hf_to_gguf_parts(hf_dir, dtype, **options)
    write_gguf(path, metadata, tensors)
    return cfg
