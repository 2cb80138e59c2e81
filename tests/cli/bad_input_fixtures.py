"""The inputs of the bad-input corpus (bad_inputs.tsv), built on the fly: nothing binary is
committed. Each @builder function makes one input in the case's temporary directory and returns
its path; the table names it in its fixtures column (`dump=dump_with_odd_head_dim`)."""
import json
import os
import struct
import unittest

import h5py
import numpy as np

import gguf_writer
import model_families
import test_prope_convert as pc
from ropekit_test import SHARED_DATA, edit_json
from test_rope_dump import tiny_weights, write_hf_llama

Q = "blocks.0.attn.hook_q"
K = "blocks.0.attn.hook_k"
PATTERN = "blocks.0.attn.hook_pattern"

BUILDERS = {}


def builder(function):
    BUILDERS[function.__name__] = function
    return function


class Fixtures:
    """The temporary directory of one case and the inputs built in it so far, by table name."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.paths = {}

    def path(self, name):
        return os.path.join(self.tmp, name)

    def __getitem__(self, name):
        return self.paths[name]


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(bytes(data))
    return path


# --- HDF5 files that are not (whole) HDF5 files ---------------------------------------------

@builder
def empty_h5(fx):
    return write_bytes(fx.path("empty.h5"), b"")


@builder
def text_file_named_h5(fx):
    return write_bytes(fx.path("notes.h5"), b"layer,head,offset\n0,1,1\n")


@builder
def truncated_h5(fx):
    path = write_small_dump(fx.path("dump.h5"), q_shape=(1, 64, 2, 8), k_shape=(1, 64, 2, 8))
    with open(path, "rb") as f:
        data = f.read()
    return write_bytes(path, data[: len(data) // 2])


@builder
def text_for_stdin(fx):
    return write_bytes(fx.path("stdin.txt"), b"HDF5? no, just text\n" * 10)


# --- activation dumps with the wrong content ------------------------------------------------

def write_small_dump(path, q_shape=(1, 4, 2, 8), k_shape=(1, 4, 2, 8), dtype=np.float32,
                     attrs=None, q=None):
    """q and k of one layer, random unless `q` is given; k_shape None leaves k out."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["rope_theta"] = 10000.0
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f[Q] = q if q is not None else rng.standard_normal(q_shape).astype(dtype)
        if k_shape is not None:
            f[K] = rng.standard_normal(k_shape).astype(dtype)
    return path


@builder
def small_dump(fx):
    """A valid dump: q and k [1, 4, 2, 8] in float32, rope_theta 1e4."""
    return write_small_dump(fx.path("dump.h5"))


@builder
def dump_without_hooks(fx):
    path = fx.path("dump.h5")
    with h5py.File(path, "w") as f:
        f["activations"] = np.ones((2, 3), np.float32)
    return path


@builder
def dump_without_keys(fx):
    return write_small_dump(fx.path("dump.h5"), k_shape=None)


@builder
def dump_of_rank_3(fx):
    return write_small_dump(fx.path("dump.h5"), q_shape=(4, 2, 8))


@builder
def dump_with_narrower_keys(fx):
    return write_small_dump(fx.path("dump.h5"), k_shape=(1, 4, 2, 6))




@builder
def shard_with_theta_5e5(fx):
    """A second shard of small_dump's dump whose rope_theta disagrees."""
    return write_small_dump(fx.path("shard1.h5"), attrs={"rope_theta": 5e5})


@builder
def shard_with_4_heads(fx):
    """A second shard of small_dump's dump with 4 query heads instead of 2."""
    return write_small_dump(fx.path("shard1.h5"), q_shape=(1, 4, 4, 8), k_shape=(1, 4, 4, 8))


@builder
def shard_without_keys(fx):
    return write_small_dump(fx.path("shard1.h5"), k_shape=None)


@builder
def list_of_no_paths(fx):
    return write_bytes(fx.path("list.txt"), b"# nothing here\n\n")


@builder
def dump_with_rotary_dim_16(fx):
    return write_small_dump(fx.path("dump.h5"), attrs={"rotary_dim": 16})


@builder
def dump_with_odd_head_dim(fx):
    return write_small_dump(fx.path("dump.h5"), q_shape=(1, 4, 2, 7), k_shape=(1, 4, 2, 7))


@builder
def dump_of_int32(fx):
    return write_small_dump(fx.path("dump.h5"), q=np.ones((1, 4, 2, 8), np.int32))


@builder
def dump_with_nan_at_0_2_1_5(fx):
    q = np.ones((1, 4, 2, 8), np.float32)
    q[0, 2, 1, 5] = np.nan
    return write_small_dump(fx.path("dump.h5"), q=q)


@builder
def f16_dump_with_inf_at_0_3_0_1(fx):
    q = np.ones((1, 4, 2, 8), np.float16)
    q[0, 3, 0, 1] = np.inf
    return write_small_dump(fx.path("dump.h5"), q=q, dtype=np.float16)


@builder
def dump_without_positions(fx):
    return write_small_dump(fx.path("dump.h5"), q_shape=(1, 0, 2, 8), k_shape=(1, 0, 2, 8))


@builder
def dump_with_diagonal_layout(fx):
    return write_small_dump(fx.path("dump.h5"), attrs={"rope_layout": "diagonal"})


@builder
def dump_with_theta_as_text(fx):
    path = fx.path("dump.h5")
    with h5py.File(path, "w") as f:
        f.attrs["rope_theta"] = "ten thousand"
        f[Q] = np.ones((1, 4, 2, 8), np.float32)
        f[K] = np.ones((1, 4, 2, 8), np.float32)
    return path


@builder
def dump_with_bos_7(fx):
    return write_small_dump(fx.path("dump.h5"), attrs={"bos": 7})


def write_post_rope_dump(path, rot_q, rot_k):
    """What prope-convert re-rotates: hook_rot_q/hook_rot_k of one layer, theta 1e4, half."""
    with h5py.File(path, "w") as f:
        f.attrs["rope_theta"] = 10000.0
        f.attrs["rope_layout"] = "half"
        f["blocks.0.attn.hook_rot_q"] = rot_q
        f["blocks.0.attn.hook_rot_k"] = rot_k
    return path


@builder
def post_rope_dump_with_nan_at_0_1_0_0(fx):
    q = np.ones((1, 4, 2, 8), np.float32)
    q[0, 1, 0, 0] = np.nan
    return write_post_rope_dump(fx.path("dump.h5"), q, np.ones((1, 4, 2, 8), np.float32))


@builder
def post_rope_dump_with_3_heads_and_2_kv_heads(fx):
    return write_post_rope_dump(fx.path("dump.h5"), np.ones((1, 4, 3, 8), np.float32),
                                np.ones((1, 4, 2, 8), np.float32))


# --- attention patterns for find-positional-heads -------------------------------------------

def write_pattern(path, pattern):
    with h5py.File(path, "w") as f:
        f[PATTERN] = pattern
    return path


@builder
def causal_pattern(fx):
    """Ones on and below the diagonal of [1, 2, 4, 4], no q or k."""
    return write_pattern(fx.path("dump.h5"), np.tril(np.ones((1, 2, 4, 4), np.float32)))


@builder
def pattern_with_nan_at_0_1_3_2(fx):
    p = np.tril(np.ones((1, 2, 4, 4), np.float32))
    p /= p.sum(axis=-1, keepdims=True)  # a valid causal softmax: uniform over keys 0..i
    p[0, 1, 3, 2] = np.nan
    return write_pattern(fx.path("dump.h5"), p)


@builder
def non_square_pattern(fx):
    return write_pattern(fx.path("dump.h5"), np.ones((1, 2, 4, 3), np.float32))


# --- output paths ---------------------------------------------------------------------------

@builder
def previous_output(fx):
    """An output left by an earlier run, which a refusal must leave as it was."""
    return write_bytes(fx.path("old.h5"), b"previous result\n")


@builder
def hard_link_to_dump(fx):
    """Another name for the row's `dump` fixture."""
    path = fx.path("alias.h5")
    os.link(fx["dump"], path)
    return path


@builder
def dump_readable_by_nobody(fx):
    os.chmod(fx.tmp, 0o755)
    path = write_small_dump(fx.path("dump.h5"))
    os.chmod(path, 0o644)
    return path


@builder
def directory_nobody_can_write(fx):
    path = fx.path("locked")
    os.mkdir(path, 0o555)
    os.chmod(path, 0o555)  # mkdir's mode is masked by the umask
    return path


@builder
def hf_model_with_inv_freq(fx):
    """A Hugging Face directory with head_dim 32, 4 heads and rotary_emb.inv_freq tensors."""
    path = fx.path("model")
    pc.make_hf_dir(path, head_dim=32, heads=4, inv_freq=True)
    return path


# --- Hugging Face directories whose model.safetensors is broken -----------------------------

def safetensors_bytes(header, data=b"", pad=True):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def hf_dir_with_shard(fx, shard):
    path = fx.path("model")
    pc.make_hf_dir(path)
    write_bytes(os.path.join(path, "model.safetensors"), shard)
    return path


@builder
def hf_shard_of_zero_length(fx):
    return hf_dir_with_shard(fx, b"")


@builder
def hf_shard_cut_in_half(fx):
    path = fx.path("model")
    pc.make_hf_dir(path)
    shard = os.path.join(path, "model.safetensors")
    with open(shard, "rb") as f:
        data = f.read()
    write_bytes(shard, data[: len(data) // 2])
    return path


@builder
def hf_shard_header_length_4096(fx):
    return hf_dir_with_shard(fx, struct.pack("<Q", 4096) + b"{}")


@builder
def hf_shard_header_length_2_pow_40(fx):
    return hf_dir_with_shard(fx, struct.pack("<Q", 1 << 40) + b"{}")


@builder
def hf_shard_header_length_2_pow_63(fx):
    return hf_dir_with_shard(fx, struct.pack("<Q", 1 << 63) + b"{}      ")


@builder
def hf_shard_header_not_json(fx):
    return hf_dir_with_shard(fx, safetensors_bytes(b'{"a": [1, 2'))


@builder
def hf_shard_header_json_array(fx):
    return hf_dir_with_shard(fx, safetensors_bytes(b"[1, 2, 3]"))


@builder
def hf_shard_offsets_overlapping(fx):
    header = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}
    return hf_dir_with_shard(fx, safetensors_bytes(header, b"\0" * 12))


@builder
def hf_shard_offsets_past_the_data(fx):
    return hf_dir_with_shard(fx, safetensors_bytes({"a": entry("F32", [4], 0, 16)}, b"\0" * 8))


@builder
def hf_shard_offsets_covering_4_of_12_bytes(fx):
    return hf_dir_with_shard(fx, safetensors_bytes({"a": entry("F32", [1], 0, 4)}, b"\0" * 12))


@builder
def hf_shard_offsets_with_a_gap(fx):
    header = {"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}
    return hf_dir_with_shard(fx, safetensors_bytes(header, b"\0" * 12))


@builder
def hf_shard_dtype_f7(fx):
    return hf_dir_with_shard(fx, safetensors_bytes({"w": entry("F7", [1], 0, 4)}, b"\0" * 4))


@builder
def hf_shard_shape_disagreeing_with_offsets(fx):
    return hf_dir_with_shard(fx, safetensors_bytes({"w": entry("F32", [3], 0, 8)}, b"\0" * 8))


@builder
def hf_shard_naming_a_tensor_twice(fx):
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, ' \
             b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'
    return hf_dir_with_shard(fx, safetensors_bytes(header, b"\0" * 8))


@builder
def hf_index_naming_a_shard_outside(fx):
    path = fx.path("model")
    pc.make_hf_dir(path, sharded=True)
    edit_json(os.path.join(path, "model.safetensors.index.json"),
              lambda d: d["weight_map"].update({"lm_head.weight": "../evil.safetensors"}))
    return path


@builder
def hf_index_naming_a_missing_shard(fx):
    path = fx.path("model")
    pc.make_hf_dir(path, sharded=True)
    os.remove(os.path.join(path, "model-00004-of-00004.safetensors"))
    return path


# --- Hugging Face directories whose config.json is broken -----------------------------------

def hf_dir_with_config(fx, edit=None, text=None):
    path = fx.path("model")
    pc.make_hf_dir(path)
    config = os.path.join(path, "config.json")
    if text is not None:
        write_bytes(config, text.encode())
    else:
        edit_json(config, edit)
    return path


@builder
def hf_config_cut_short(fx):
    return hf_dir_with_config(fx, text='{"hidden_size": 32,')


@builder
def hf_config_without_hidden_size(fx):
    return hf_dir_with_config(fx, lambda c: c.pop("hidden_size"))


@builder
def hf_config_head_dim_15(fx):
    return hf_dir_with_config(fx, lambda c: c.update(head_dim=15))


@builder
def hf_config_rope_type_spiral(fx):
    return hf_dir_with_config(fx, lambda c: c.update(rope_scaling={"rope_type": "spiral"}))


@builder
def hf_config_longrope_short_factor_of_2(fx):
    scaling = {"rope_type": "longrope", "short_factor": [1.0, 1.0], "long_factor": [1.0] * 8,
               "original_max_position_embeddings": 512}
    return hf_dir_with_config(fx, lambda c: c.update(rope_scaling=scaling))


@builder
def hf_config_theta_as_text(fx):
    return hf_dir_with_config(fx, lambda c: c.update(rope_theta="10000"))


@builder
def hf_config_head_dim_2_pow_40(fx):
    return hf_dir_with_config(fx, lambda c: c.update(head_dim=1 << 40))


@builder
def hf_config_a_list(fx):
    return hf_dir_with_config(fx, text="[1, 2]")


@builder
def hf_dir_without_config(fx):
    path = fx.path("model")
    pc.make_hf_dir(path)
    os.remove(os.path.join(path, "config.json"))
    return path


# --- GGUF files -----------------------------------------------------------------------------

def good_gguf(fx):
    """A valid GGUF (llama, rotary dim 8, two tensors) as bytes to break."""
    kvs = [("general.architecture", 8, "llama"), ("llama.rope.dimension_count", 4, 8),
           ("llama.rope.freq_base", 6, 10000.0)]
    tensors = [("token_embd.weight", [8, 4], 0, np.ones(32, np.float32).tobytes()),
               ("blk.0.attn_q.weight", [8, 8], 1, np.ones(64, np.float16).tobytes())]
    path = fx.path("model.gguf")
    pc.write_gguf(path, kvs, tensors)
    with open(path, "rb") as f:
        return bytearray(f.read())


def gguf_with(fx, data):
    return write_bytes(fx.path("model.gguf"), data)


def gguf_patched(fx, at, value):
    data = good_gguf(fx)
    data[at:at + len(value)] = value
    return gguf_with(fx, data)


@builder
def gguf_of_zero_length(fx):
    return gguf_with(fx, b"")


@builder
def gguf_without_its_last_40_bytes(fx):
    return gguf_with(fx, good_gguf(fx)[:-40])


@builder
def gguf_cut_in_the_metadata(fx):
    return gguf_with(fx, good_gguf(fx)[:60])


@builder
def gguf_with_ggml_magic(fx):
    return gguf_patched(fx, 0, b"GGML")


@builder
def gguf_version_7(fx):
    return gguf_patched(fx, 4, struct.pack("<I", 7))


@builder
def gguf_version_3_big_endian(fx):
    return gguf_patched(fx, 4, struct.pack(">I", 3))


@builder
def gguf_with_2_pow_60_tensors(fx):
    return gguf_patched(fx, 8, struct.pack("<Q", 1 << 60))


@builder
def gguf_with_2_pow_64_minus_1_keys(fx):
    return gguf_patched(fx, 16, struct.pack("<Q", (1 << 64) - 1))


@builder
def gguf_first_key_length_2_pow_50(fx):
    return gguf_patched(fx, 24, struct.pack("<Q", 1 << 50))


@builder
def gguf_tensor_at_offset_129(fx):
    data = good_gguf(fx)
    # The offset is the last field of the tensor info: name, rank (4), 2 dims (16), type (4).
    name = b"blk.0.attn_q.weight"
    at = data.index(name) + len(name) + 4 + 16 + 4
    data[at:at + 8] = struct.pack("<Q", 129)
    return gguf_with(fx, data)


@builder
def gguf_naming_a_key_twice(fx):
    path = fx.path("model.gguf")
    pc.write_gguf(path, [("general.name", 8, "a"), ("general.name", 8, "b")], [])
    return path


@builder
def gguf_value_type_99(fx):
    data = good_gguf(fx)
    key = b"general.architecture"
    at = data.index(key) + len(key)
    data[at:at + 4] = struct.pack("<I", 99)
    return gguf_with(fx, data)


# --- llama GGUF models for rope-dump, each with one thing wrong ------------------------------

def llama_gguf(fx, change, dtype="F32"):
    """A tiny llama GGUF as convert_hf_to_gguf.py writes it (gguf_writer), after change(metadata,
    tensors) edited its key-value and tensor lists in place."""
    hf = fx.path("hf")
    write_hf_llama(tiny_weights(3, dim=64, hidden=96, layers=2, heads=2, kv_heads=1, vocab=40),
                   hf, "F32")
    _, metadata, tensors = gguf_writer.hf_to_gguf_parts(hf, dtype)
    change(metadata, tensors)
    path = fx.path("model.gguf")
    gguf_writer.write_gguf(path, metadata, tensors)
    return path


def set_key(metadata, key, vtype, value):
    metadata[:] = [kv for kv in metadata if kv[0] != key] + [(key, vtype, value)]


@builder
def gguf_model_of_architecture_mamba(fx):
    return llama_gguf(fx, lambda m, t: set_key(m, "general.architecture", gguf_writer.STRING,
                                               "mamba"))


@builder
def gguf_qwen3_model_without_k_norms(fx):
    """A qwen3 GGUF (model_families.to_gguf) missing blk.1.attn_k_norm.weight."""
    c = model_families.config("qwen3")
    t = model_families.tensors(c, 0)
    del t["model.layers.1.self_attn.k_norm.weight"]
    path = fx.path("qwen3.gguf")
    model_families.to_gguf(c, t, path)
    return path


@builder
def gguf_qwen2_model(fx):
    """A qwen2 GGUF as convert_hf_to_gguf.py writes it (model_families.to_gguf)."""
    c = model_families.config("qwen2")
    path = fx.path("qwen2.gguf")
    model_families.to_gguf(c, model_families.tensors(c, 0), path)
    return path


@builder
def gguf_phi3_model_with_only_short_rope_factors(fx):
    """A phi3 GGUF with longrope whose rope_factors_long.weight is missing."""
    c = model_families.config("phi3", rope_scaling={
        "rope_type": "longrope", "short_factor": [1.0, 1.5, 2.0, 3.0],
        "long_factor": [2.0, 4.0, 8.0, 16.0]}, original_max_position_embeddings=256)
    path = fx.path("phi3.gguf")
    model_families.to_gguf(c, model_families.tensors(c, 0), path,
                           drop=("rope_factors_long.weight",))
    return path


@builder
def hf_model_of_type_falcon(fx):
    path = fx.path("model")
    c = model_families.config("llama", model_type="falcon")
    model_families.write_hf(path, c, model_families.tensors(model_families.config("llama"), 0))
    return path


def hf_family_model(fx, family, **extra):
    """A random model of `family` with config keys `extra`, as transformers saves it."""
    path = fx.path("model")
    c = model_families.config(family, **extra)
    model_families.write_hf(path, c, model_families.tensors(c, 0))
    return path


@builder
def hf_model_with_model_type_500000(fx):
    """fuzz_hf_rope's finding: a number where config.json's model_type string belongs."""
    return hf_family_model(fx, "llama", model_type=500000.0)


@builder
def hf_model_with_rms_norm_eps_as_text(fx):
    return hf_family_model(fx, "llama", rms_norm_eps="1e-6")


@builder
def tokenizer_json_with_fuse_unk_as_text(fx):
    """A BPE tokenizer.json whose fuse_unk is a string, not true or false."""
    path = fx.path("tokenizer.json")
    model = {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"],
             "fuse_unk": "yes"}
    write_bytes(path, json.dumps({"model": model}).encode())
    return path


@builder
def hf_qwen2_model_with_per_layer_windows(fx):
    return hf_family_model(fx, "qwen2", use_sliding_window=True)


@builder
def hf_phi3_model_with_attention_bias(fx):
    return hf_family_model(fx, "phi3", attention_bias=True)


@builder
def gguf_model_with_8_experts(fx):
    return llama_gguf(fx, lambda m, t: set_key(m, "llama.expert_count", gguf_writer.U32, 8))


@builder
def gguf_model_without_rms_epsilon(fx):
    def change(metadata, tensors):
        metadata[:] = [kv for kv in metadata if kv[0] != "llama.attention.layer_norm_rms_epsilon"]
    return llama_gguf(fx, change)


@builder
def gguf_model_with_yarn_scaling(fx):
    return llama_gguf(fx, lambda m, t: set_key(m, "llama.rope.scaling.type", gguf_writer.STRING,
                                               "yarn"))


@builder
def gguf_model_without_blk_1_ffn_down(fx):
    return llama_gguf(fx, lambda m, t: t.remove(next(x for x in t if x[0] == "blk.1.ffn_down.weight")))


@builder
def gguf_model_with_a_q4_1_attn_q(fx):
    def change(metadata, tensors):
        i = next(i for i, x in enumerate(tensors) if x[0] == "blk.0.attn_q.weight")
        name, dims, _, _ = tensors[i]
        tensors[i] = (name, dims, 3, bytes(dims[0] // 32 * 20 * dims[1]))  # Q4_1: 20 bytes per 32
    return llama_gguf(fx, change)


@builder
def gguf_model_with_a_transposed_ffn_down(fx):
    def change(metadata, tensors):
        i = next(i for i, x in enumerate(tensors) if x[0] == "blk.0.ffn_down.weight")
        name, dims, gtype, raw = tensors[i]
        tensors[i] = (name, (dims[1], dims[0]), gtype, raw)
    return llama_gguf(fx, change)


# --- llama2.c checkpoints -------------------------------------------------------------------

@builder
def llama2c_of_zero_length(fx):
    return write_bytes(fx.path("model.bin"), b"")


@builder
def llama2c_with_negative_dimensions(fx):
    return write_bytes(fx.path("model.bin"),
                       struct.pack("<7i", 64, -1, 5, 8, 4, 512, 256) + b"\0" * 64)


@builder
def stories260k_cut_in_half(fx):
    stories = os.path.join(SHARED_DATA, "stories260K.bin")
    if not os.path.exists(stories):
        raise unittest.SkipTest("needs ../shared/data/stories260K.bin")
    with open(stories, "rb") as f:
        data = f.read()
    return write_bytes(fx.path("model.bin"), data[: len(data) // 2])
