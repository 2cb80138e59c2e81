"""prope-convert end to end (issue 5), checked by independent Python implementations:
safetensors and GGUF written and parsed here with struct + json + numpy, transformers' frequency
formulas re-implemented in numpy, dumps rotated with numpy."""
import json
import math
import os
import struct
import unittest

import h5py
import numpy as np

from gguf_writer import gguf_string, write_gguf
from ropekit_test import SHARED_DATA, TempDirTest, edit_json, run, sha256, tree_state

# ---------------------------------------------------------------- safetensors, by hand
ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "U8": np.uint8}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, numpy array). Header padded to 8 with spaces."""
    header, offset, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, array in tensors:
        data = np.ascontiguousarray(array, dtype=ST_DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    """-> (header length, metadata, {name: (dtype, shape, raw bytes)})"""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        tensors[name] = (info["dtype"], tuple(info["shape"]), data[b:e])
    return n, header.get("__metadata__"), tensors


def tensor_hashes(tensors):
    import hashlib
    return {name: hashlib.sha256(raw).hexdigest() for name, (_, _, raw) in tensors.items()}


# ---------------------------------------------------------------- transformers' formulas, again
def hf_inv_freq(cfg, seq_len=None):
    """numpy re-implementation of transformers' rope init for the types prope-convert emits."""
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    if "rope_parameters" in cfg:
        rp = dict(cfg["rope_parameters"])
        theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    else:
        rp = dict(cfg.get("rope_scaling") or {"rope_type": "default"})
        theta = cfg.get("rope_theta", 10000.0)
    kind = rp.get("rope_type", rp.get("type", "default"))
    if kind == "proportional":
        m = int(rp.get("partial_rotary_factor", 1.0) * head_dim // 2)
        g = np.zeros(head_dim // 2)
        g[:m] = 1.0 / theta ** (np.arange(0, 2 * m, 2) / head_dim)
        return g / rp.get("factor", 1.0)
    dim = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
    g = 1.0 / theta ** (np.arange(0, dim, 2) / dim)
    if kind == "llama3":
        old = rp["original_max_position_embeddings"]
        low_wl, high_wl = old / rp["low_freq_factor"], old / rp["high_freq_factor"]
        wl = 2 * math.pi / g
        out = np.where(wl > low_wl, g / rp["factor"], g)
        smooth = (old / wl - rp["low_freq_factor"]) / (rp["high_freq_factor"] - rp["low_freq_factor"])
        smoothed = (1 - smooth) * out / rp["factor"] + smooth * out
        medium = ~(wl < high_wl) & ~(wl > low_wl)
        return np.where(medium, smoothed, out)
    if kind == "longrope":
        original = rp["original_max_position_embeddings"]
        factors = rp["long_factor"] if seq_len and seq_len > original else rp["short_factor"]
        return g / np.array(factors, dtype=np.float64)
    assert kind == "default", kind
    return g


def llama3_warnings(cfg):
    """What transformers' _validate_llama3_parameters logs for cfg's llama3 dict (the same rules in
    the 4.4x source, dict "rope_scaling", and the 5.x one, "rope_parameters" with rope_theta and
    the optional partial_rotary_factor every rope type accepts there)."""
    v5 = "rope_parameters" in cfg
    rp = cfg["rope_parameters"] if v5 else cfg["rope_scaling"]
    required = {"rope_type", "factor", "original_max_position_embeddings", "low_freq_factor",
                "high_freq_factor"} | ({"rope_theta", "partial_rotary_factor"} if v5 else set())
    warnings = [f"unrecognized {k}" for k in set(rp) - required]
    if not isinstance(rp["factor"], float) or rp["factor"] < 1.0:
        warnings.append("factor")
    low, high = rp["low_freq_factor"], rp["high_freq_factor"]
    if not isinstance(low, float) or not isinstance(high, float) or high <= low:
        warnings.append("low/high_freq_factor")
    original = rp["original_max_position_embeddings"]
    if not isinstance(original, int) or original >= cfg.get("max_position_embeddings", 2048):
        warnings.append("original_max_position_embeddings")
    return warnings


def prope(g, p, reverse=False):
    g = np.array(g, dtype=np.float64)
    n = len(g)
    m = int(math.floor(p * n + 1e-9))
    keep = np.zeros(n, dtype=bool)
    if reverse:
        keep[n - m:] = True
    else:
        keep[:m] = True
    return np.where(keep, g, 0.0)


def assert_table(test, got, want):
    test.assertEqual(len(got), len(want))
    for k, (x, t) in enumerate(zip(got, want)):
        if t == 0:
            test.assertLessEqual(abs(x), 1e-20, f"frequency {k} should be dropped")
        else:
            test.assertLessEqual(abs(x - t), 1e-6 * t, f"frequency {k}: {x} vs {t}")


# ---------------------------------------------------------------- GGUF, by hand
def read_gguf(path):
    """Independent minimal GGUF parser -> (version, {key: (type, raw value bytes)}, {name: (dims, type, bytes)})."""
    with open(path, "rb") as f:
        buf = f.read()
    assert buf[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    pos = 24

    def string(pos):
        (n,) = struct.unpack_from("<Q", buf, pos)
        return buf[pos + 8:pos + 8 + n].decode(), pos + 8 + n

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(vtype, pos):
        if vtype in sizes:
            return pos + sizes[vtype]
        if vtype == 8:
            return string(pos)[1]
        etype, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        for _ in range(count):
            pos = skip(etype, pos)
        return pos

    kvs = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (vtype,) = struct.unpack_from("<I", buf, pos)
        end = skip(vtype, pos + 4)
        kvs[key] = (vtype, buf[pos + 4:end])
        pos = end
    alignment = struct.unpack("<I", kvs["general.alignment"][1])[0] if "general.alignment" in kvs else 32
    infos = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (nd,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{nd}Q", buf, pos + 4)
        gtype, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * nd)
        pos += 4 + 8 * nd + 12
        infos.append((name, dims, gtype, offset))
    start = pos + (-pos) % alignment
    block = {0: (1, 4), 1: (1, 2), 8: (32, 34)}
    tensors = {}
    for name, dims, gtype, offset in infos:
        assert offset % alignment == 0
        n = int(np.prod(dims))
        size = n // block[gtype][0] * block[gtype][1]
        tensors[name] = (tuple(dims), gtype, buf[start + offset:start + offset + size])
    return version, kvs, tensors


# ---------------------------------------------------------------- fixtures
def make_hf_dir(path, *, head_dim=16, heads=2, layers=2, theta=10000.0, v5=False, sharded=False,
                inv_freq=False, seed=0, rope_dict=None):
    """A tiny Llama-style checkpoint with random weights."""
    rng = np.random.default_rng(seed)
    os.makedirs(path)
    hidden = head_dim * heads
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "num_attention_heads": heads, "num_key_value_heads": heads, "num_hidden_layers": layers,
           "intermediate_size": 2 * hidden, "max_position_embeddings": 2048, "vocab_size": 32,
           "torch_dtype": "float32"}
    if v5:
        cfg["rope_parameters"] = rope_dict or {"rope_type": "default", "rope_theta": theta}
        cfg["transformers_version"] = "5.0.0"
    else:
        cfg["rope_theta"] = theta
        cfg["rope_scaling"] = rope_dict
        cfg["transformers_version"] = "4.44.0"
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        with open(os.path.join(path, name), "w") as f:
            json.dump({"dummy": name}, f)
    shards = [[("model.embed_tokens.weight", "F16", rng.standard_normal((32, hidden)))]]
    for layer in range(layers):
        t = []
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t.append((f"model.layers.{layer}.self_attn.{proj}.weight", "F32", rng.standard_normal((hidden, hidden))))
        if inv_freq:
            g = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
            t.append((f"model.layers.{layer}.self_attn.rotary_emb.inv_freq", "F32", g))
        shards.append(t)
    shards.append([("lm_head.weight", "F32", rng.standard_normal((32, hidden)))])
    if not sharded:
        write_safetensors(os.path.join(path, "model.safetensors"), [t for s in shards for t in s], {"format": "pt"})
        return cfg
    weight_map = {}
    for i, s in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(path, name), s, {"format": "pt"})
        weight_map.update({t[0]: name for t in s})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    return cfg


class HuggingFaceDirectories(TempDirTest):
    def convert(self, src, out, *args, code=0):
        r = run("prope-convert", src, "-o", out, *args)
        self.assertEqual(r.returncode, code, r.stderr)
        return r

    def test_every_encoding_round_trips_through_transformers_formulas(self):
        cases = [(0.25, 1e4, 16), (0.5, 5e5, 32), (0.75, 1e6, 64), (0.3, 1e4, 20), (0.0, 1e4, 16), (1.0, 5e5, 16)]
        for encoding in ("llama3", "proportional", "longrope"):
            for v5 in (False, True):
                for i, (p, theta, d) in enumerate(cases):
                    with self.subTest(encoding=encoding, v5=v5, p=p, theta=theta, d=d):
                        src, out = self.path(f"in-{encoding}-{v5}-{i}"), self.path(f"out-{encoding}-{v5}-{i}")
                        make_hf_dir(src, head_dim=d, theta=theta, v5=v5, layers=1)
                        r = self.convert(src, out, "--p", p, "--encoding", encoding)
                        with open(os.path.join(out, "config.json")) as f:
                            cfg = json.load(f)
                        key = "rope_parameters" if v5 else "rope_scaling"
                        self.assertEqual(cfg[key]["rope_type"], encoding)
                        self.assertEqual("rope_parameters" in cfg, v5)
                        want = prope(1.0 / theta ** (np.arange(0, d, 2) / d), p)
                        assert_table(self, hf_inv_freq(cfg), want)
                        assert_table(self, hf_inv_freq(cfg, seq_len=10**9), want)
                        if encoding == "llama3":  # loads without transformers' warnings
                            self.assertEqual(llama3_warnings(cfg), [])
                        m = int(math.floor(p * d / 2 + 1e-9))
                        self.assertIn(f"kept {m} of {d // 2} frequencies", r.stderr)
                        if 0 < m:
                            lowest = want[m - 1]
                            self.assertIn(f"wavelength {2 * math.pi / lowest:.6g} tokens", r.stderr)

    def test_llama3_context_stays_below_max_position_embeddings_with_the_same_table(self):
        # transformers warns on every load when original_max_position_embeddings is not below
        # max_position_embeddings; the table depends only on context / low and context / high.
        for v5 in (False, True):
            with self.subTest(v5=v5):
                src, out = self.path(f"in-{v5}"), self.path(f"out-{v5}")
                make_hf_dir(src, head_dim=64, theta=5e5, v5=v5, layers=1)
                self.convert(src, out, "--p", "0.25")
                with open(os.path.join(out, "config.json")) as f:
                    cfg = json.load(f)
                rp = cfg["rope_parameters" if v5 else "rope_scaling"]
                self.assertEqual(rp["original_max_position_embeddings"], 2047)
                self.assertEqual(llama3_warnings(cfg), [])
                want = prope(1.0 / 5e5 ** (np.arange(0, 64, 2) / 64), 0.25)
                assert_table(self, hf_inv_freq(cfg), want)
                # Control: the context equal to max_position_embeddings (what prope-convert wrote
                # before), cut-offs unchanged: the same table, but transformers warns.
                scale = 2048 / 2047
                old = dict(rp, original_max_position_embeddings=2048,
                           low_freq_factor=rp["low_freq_factor"] * scale,
                           high_freq_factor=rp["high_freq_factor"] * scale)
                control = dict(cfg, **{"rope_parameters" if v5 else "rope_scaling": old})
                assert_table(self, hf_inv_freq(control), want)
                self.assertEqual(llama3_warnings(control), ["original_max_position_embeddings"])

    def test_single_file_is_hard_linked_and_tokenizer_kept(self):
        src, out = self.path("in"), self.path("out")
        make_hf_dir(src)
        before = tree_state(src)
        self.convert(src, out, "--p", "0.5")
        for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
            self.assertEqual(os.stat(os.path.join(src, name)).st_ino, os.stat(os.path.join(out, name)).st_ino)
        self.assertEqual(tree_state(src), before)
        self.assertEqual(sorted(os.listdir(out)), sorted(os.listdir(src)))
        self.assertEqual([n for n in os.listdir(self.tmp) if ".tmp" in n], [])

    def test_copy_makes_independent_files_with_identical_bytes(self):
        src, out = self.path("in"), self.path("out")
        make_hf_dir(src, sharded=True)
        self.convert(src, out, "--p", "0.5", "--copy")
        for name in os.listdir(src):
            if name == "config.json":
                continue
            self.assertNotEqual(os.stat(os.path.join(src, name)).st_ino, os.stat(os.path.join(out, name)).st_ino)
            self.assertEqual(sha256(os.path.join(src, name)), sha256(os.path.join(out, name)))

    def test_sharded_with_saved_inv_freq_rewrites_only_those_shards(self):
        src, out = self.path("in"), self.path("out")
        make_hf_dir(src, sharded=True, inv_freq=True, layers=2, head_dim=16, theta=1e4)
        before = tree_state(src)
        self.convert(src, out, "--p", "0.25")
        self.assertEqual(tree_state(src), before)
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            weight_map = json.load(f)["weight_map"]
        want = prope(1.0 / 1e4 ** (np.arange(0, 16, 2) / 16), 0.25)
        rewritten = 0
        for shard in sorted(set(weight_map.values())):
            a, b = os.path.join(src, shard), os.path.join(out, shard)
            n_in, meta_in, t_in = read_safetensors(a)
            n_out, meta_out, t_out = read_safetensors(b)
            self.assertEqual(set(t_out), {k for k, v in weight_map.items() if v == shard})
            has_inv = any(k.endswith("rotary_emb.inv_freq") for k in t_in)
            if not has_inv:
                self.assertEqual(os.stat(a).st_ino, os.stat(b).st_ino)
                continue
            rewritten += 1
            self.assertEqual(n_out % 8, 0)
            self.assertEqual(meta_out, {"format": "pt"})
            h_in, h_out = tensor_hashes(t_in), tensor_hashes(t_out)
            for name in t_in:
                if name.endswith("rotary_emb.inv_freq"):
                    got = np.frombuffer(t_out[name][2], dtype=np.float32)
                    np.testing.assert_array_equal(got, want.astype(np.float32))
                else:
                    self.assertEqual(h_out[name], h_in[name], name)
                    self.assertEqual(t_out[name][:2], t_in[name][:2])
        self.assertEqual(rewritten, 2)

    def test_safetensors_written_by_us_read_by_python_and_back(self):
        # Python wrote the input shards; the rewritten shard is parsed above by Python; here the
        # rewritten shard is fed back to prope-convert as input (our reader on our writer).
        src, mid, out = self.path("in"), self.path("mid"), self.path("out")
        make_hf_dir(src, inv_freq=True)
        self.convert(src, mid, "--p", "0.5", "--encoding", "longrope")
        self.convert(mid, out, "--p", "1", "--encoding", "longrope")
        _, _, a = read_safetensors(os.path.join(mid, "model.safetensors"))
        _, _, b = read_safetensors(os.path.join(out, "model.safetensors"))
        self.assertEqual(tensor_hashes(a), tensor_hashes(b))

    def test_theta_rebases_and_reverse_needs_longrope(self):
        src, out = self.path("in"), self.path("out")
        make_hf_dir(src, head_dim=16, theta=1e4)
        self.convert(src, out, "--p", "0.5", "--theta", "500000", "--reverse", "--encoding", "longrope")
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["rope_theta"], 500000)
        assert_table(self, hf_inv_freq(cfg), prope(1.0 / 5e5 ** (np.arange(0, 16, 2) / 16), 0.5, reverse=True))

    def test_v5_per_layer_types_are_converted_each(self):
        src, out = self.path("in"), self.path("out")
        cfg = make_hf_dir(src, v5=True, head_dim=16, rope_dict={
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
            "full_attention": {"rope_type": "default", "rope_theta": 1e6}})
        cfg["layer_types"] = ["sliding_attention", "full_attention"]
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(cfg, f)
        r = self.convert(src, out, "--p", "0.25", "--encoding", "proportional")
        self.assertIn("sliding_attention: kept 2 of 8 frequencies", r.stderr)
        self.assertIn("full_attention: kept 2 of 8 frequencies", r.stderr)
        with open(os.path.join(out, "config.json")) as f:
            got = json.load(f)
        for layer_type, theta in (("sliding_attention", 1e4), ("full_attention", 1e6)):
            flat = dict(got, rope_parameters=got["rope_parameters"][layer_type])
            assert_table(self, hf_inv_freq(flat), prope(1.0 / theta ** (np.arange(0, 16, 2) / 16), 0.25))


class LoadsAsPRope(TempDirTest):
    """rope-dump loads Hugging Face directories through ropekit's transformers-parity config
    reader: the converted model must run exactly like the original run with --p."""

    def test_converted_model_runs_like_the_original_under_p_rope(self):
        from test_rope_dump import tiny_weights, write_hf_llama
        w = tiny_weights(7, dim=64, hidden=48, layers=2, heads=4, kv_heads=2)
        src = self.path("model")
        write_hf_llama(w, src, "F32")
        ids = "1 5 9 2 7 7 3 11 4 6 8 1"
        want = self.path("want.h5")
        r = run("rope-dump", src, "--ids", ids, "--p", "0.5", "--what", "rot_q,rot_k", "-o", want)
        self.assertEqual(r.returncode, 0, r.stderr)
        for encoding in ("llama3", "proportional", "longrope"):
            with self.subTest(encoding=encoding):
                out, got = self.path(f"p-{encoding}"), self.path(f"got-{encoding}.h5")
                r = run("prope-convert", src, "--p", "0.5", "--encoding", encoding, "-o", out)
                self.assertEqual(r.returncode, 0, r.stderr)
                r = run("rope-dump", out, "--ids", ids, "--what", "rot_q,rot_k", "-o", got)
                self.assertEqual(r.returncode, 0, r.stderr)
                with h5py.File(want, "r") as a, h5py.File(got, "r") as b:
                    np.testing.assert_allclose(b["nll"][()], a["nll"][()], rtol=1e-5, atol=1e-6)
                    for layer in range(2):
                        for hook in ("hook_rot_q", "hook_rot_k"):
                            name = f"blocks.{layer}.attn.{hook}"
                            np.testing.assert_allclose(b[name][()], a[name][()], rtol=1e-5, atol=1e-5)


class Refusals(TempDirTest):
    def refuse(self, src, code, *args, fragment=""):
        out = self.path("out")
        before = tree_state(src) if os.path.isdir(src) else sha256(src)
        r = run("prope-convert", src, "-o", out, *args)
        self.assertOneLineError(r, code, "prope-convert: ", fragment)
        self.assertFalse(os.path.exists(out))
        self.assertEqual([n for n in os.listdir(self.tmp) if ".tmp" in n], [])
        self.assertEqual(tree_state(src) if os.path.isdir(src) else sha256(src), before)

    def test_yarn_and_dynamic_inputs(self):
        for i, (kind, extra) in enumerate((("yarn", {"original_max_position_embeddings": 1024}), ("dynamic", {}))):
            src = self.path(f"in{i}")
            make_hf_dir(src, rope_dict={"rope_type": kind, "factor": 4.0, **extra})
            self.refuse(src, 1, "--p", "0.5", fragment=f"rope_type {kind}")

    def test_reverse_with_llama3_or_proportional(self):
        src = self.path("in")
        make_hf_dir(src)
        self.refuse(src, 2, "--p", "0.5", "--reverse", fragment="--encoding longrope")
        self.refuse(src, 2, "--p", "0.5", "--reverse", "--encoding", "proportional", fragment="--reverse")

    def test_partial_rotary_under_proportional(self):
        src = self.path("in")
        cfg = make_hf_dir(src)
        cfg["partial_rotary_factor"] = 0.5
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.refuse(src, 1, "--p", "0.5", "--encoding", "proportional", fragment="partial_rotary_factor")

    def test_bad_options(self):
        src = self.path("in")
        make_hf_dir(src)
        self.refuse(src, 2, "--p", "1.5", fragment="--p")
        self.refuse(src, 2, "--p", "0.5", "--encoding", "ntk", fragment="--encoding")
        self.refuse(src, 2, "--p", "0.5", "--theta", "0.5", fragment="--theta")

    def test_existing_output_and_output_inside_input(self):
        src = self.path("in")
        make_hf_dir(src)
        os.makedirs(self.path("out"))
        r = run("prope-convert", src, "-o", self.path("out"), "--p", "0.5")
        self.assertOneLineError(r, 2, "--force")
        os.rmdir(self.path("out"))
        r = run("prope-convert", src, "-o", os.path.join(src, "sub"), "--p", "0.5")
        self.assertOneLineError(r, 2, "inside the input")
        self.assertFalse(os.path.exists(os.path.join(src, "sub")))

    def test_malformed_inputs(self):
        src = self.path("in")
        make_hf_dir(src)
        with open(os.path.join(src, "model.safetensors"), "r+b") as f:
            f.write(struct.pack("<Q", 1 << 40))  # header length past the end of the file
        self.refuse(src, 1, "--p", "0.5", fragment="model.safetensors: header length")
        src2 = self.path("in2")
        make_hf_dir(src2, sharded=True)
        edit_json(os.path.join(src2, "model.safetensors.index.json"),
                  lambda d: d["weight_map"].update({"ghost.weight": "model-00001-of-00004.safetensors"}))
        self.refuse(src2, 1, "--p", "0.5", fragment="'ghost.weight'")
        src3 = self.path("in3")
        make_hf_dir(src3)
        with open(os.path.join(src3, "config.json"), "w") as f:
            f.write('{"rope_theta": 10000')
        self.refuse(src3, 1, "--p", "0.5", fragment="not valid JSON")
        empty = self.path("empty")
        os.makedirs(empty)
        self.refuse(empty, 1, "--p", "0.5", fragment="config.json")


class Gguf(TempDirTest):
    def make(self, path, rope_freqs=None, extra_kvs=()):
        rng = np.random.default_rng(1)
        kvs = [("general.architecture", 8, "llama"), ("general.alignment", 4, 32),
               ("llama.rope.dimension_count", 4, 16), ("llama.rope.freq_base", 6, 10000.0),
               ("llama.attention.head_count", 4, 2), ("llama.embedding_length", 4, 32),
               ("tokenizer.ggml.tokens", 9, (8, ["<s>", "a", "bc"])), ("general.size", 10, 123)]
        kvs += list(extra_kvs)
        tensors = [("token_embd.weight", (32, 4), 0, rng.standard_normal(128).astype(np.float32).tobytes()),
                   ("blk.0.attn_q.weight", (32,), 8, bytes(rng.integers(0, 256, 34, dtype=np.uint8))),
                   ("blk.0.attn_k.weight", (32, 2), 1, rng.standard_normal(64).astype(np.float16).tobytes())]
        if rope_freqs is not None:
            tensors.append(("rope_freqs.weight", (8,), 0, np.array(rope_freqs, dtype=np.float32).tobytes()))
        write_gguf(path, kvs, tensors)

    def test_adds_rope_freqs_and_keeps_everything_else(self):
        src, out = self.path("m.gguf"), self.path("p.gguf")
        self.make(src)
        before = sha256(src)
        r = run("prope-convert", src, "--p", "0.25", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(src), before)
        v_in, kv_in, t_in = read_gguf(src)
        v_out, kv_out, t_out = read_gguf(out)
        self.assertEqual(v_out, v_in)
        self.assertEqual(kv_out, kv_in)
        for name, t in t_in.items():
            self.assertEqual(t_out[name], t)
        dims, gtype, raw = t_out["rope_freqs.weight"]
        self.assertEqual((dims, gtype), ((8,), 0))
        np.testing.assert_array_equal(np.frombuffer(raw, np.float32), np.array([1, 1] + [1e30] * 6, np.float32))
        self.assertIn("kept 2 of 8 frequencies", r.stderr)
        # Our own reader re-reads it (as input of a second conversion).
        r = run("prope-convert", out, "--p", "1", "-o", self.path("again.gguf"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_phi3_gets_p_rope_in_its_longrope_factor_pair(self):
        # llama.cpp's phi3 reads rope_factors_short/long.weight, never rope_freqs.weight.
        phi3 = [("general.architecture", 8, "phi3"), ("general.alignment", 4, 32),
                ("phi3.rope.dimension_count", 4, 16), ("phi3.attention.head_count", 4, 2),
                ("phi3.embedding_length", 4, 32)]
        short, long = [1.0, 1.5, 2, 2, 3, 3, 4, 5], [1.0, 2, 4, 8, 16, 32, 48, 64]
        tensors = [("token_embd.weight", (32, 4), 0, np.ones(128, np.float32).tobytes())]
        pair = [(f"rope_factors_{n}.weight", (8,), 0, np.array(v, np.float32).tobytes())
                for n, v in (("short", short), ("long", long))]
        for case, src_tensors in (("with the pair", tensors + pair), ("without it", tensors)):
            with self.subTest(case=case):
                src, out = self.path("phi3.gguf"), self.path("phi3-p.gguf")
                write_gguf(src, phi3, src_tensors)
                r = run("prope-convert", src, "--p", "0.25", "-o", out, "--force")
                self.assertEqual(r.returncode, 0, r.stderr)
                _, _, t = read_gguf(out)
                self.assertNotIn("rope_freqs.weight", t)
                drop = np.array([1, 1] + [1e30] * 6)
                have = len(src_tensors) > 1
                for name, factors in (("short", short), ("long", long)):
                    got = np.frombuffer(t[f"rope_factors_{name}.weight"][2], np.float32)
                    want = np.array(factors if have else [1.0] * 8) * drop
                    np.testing.assert_array_equal(got, want.astype(np.float32))
                self.assertIn("kept 2 of 8 frequencies", r.stderr)

    def test_existing_llama3_factors_are_combined(self):
        src, out = self.path("m.gguf"), self.path("p.gguf")
        factors = [1, 1, 1, 1.5, 3, 8, 8, 8]
        self.make(src, rope_freqs=factors)
        r = run("prope-convert", src, "--p", "0.5", "--theta", "500000", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, kv, t = read_gguf(out)
        got = np.frombuffer(t["rope_freqs.weight"][2], np.float32)
        want = np.array([1, 1, 1, 1.5, 3e30, 8e30, 8e30, 8e30], np.float32)
        np.testing.assert_array_equal(got, want)
        self.assertEqual(struct.unpack("<f", kv["llama.rope.freq_base"][1])[0], 500000.0)

    def test_refusals(self):
        src = self.path("m.gguf")
        self.make(src, extra_kvs=[("llama.rope.scaling.type", 8, "yarn")])
        r = run("prope-convert", src, "--p", "0.5", "-o", self.path("p.gguf"))
        self.assertOneLineError(r, 1, "llama.rope.scaling.type")
        self.assertFalse(os.path.exists(self.path("p.gguf")))
        bad = self.path("bad.gguf")
        with open(bad, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string("k") + struct.pack("<I", 8) + struct.pack("<Q", 1 << 40))
        r = run("prope-convert", bad, "--p", "0.5", "-o", self.path("p.gguf"))
        self.assertOneLineError(r, 1, "bad.gguf: k: truncated")
        self.assertEqual(sorted(os.listdir(self.tmp)), ["bad.gguf", "m.gguf"])


class Hdf5(TempDirTest):
    @staticmethod
    def rotate(x, g, positions):
        """Half-split RoPE in numpy: x [..., pos, head, d]."""
        d = x.shape[-1]
        ang = positions[:, None] * g[None, :]  # [pos, d/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., : d // 2], x[..., d // 2:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    def test_dump_is_rerotated_and_attention_recomputed(self):
        rng = np.random.default_rng(3)
        B, T, H, KV, D, theta = 2, 12, 4, 2, 16, 1e4
        g = 1.0 / theta ** (np.arange(0, D, 2) / D)
        src, out = self.path("dump.h5"), self.path("p.h5")
        pos = np.arange(T, dtype=np.float64)
        qs, ks = {}, {}
        with h5py.File(src, "w") as f:
            f.attrs["rope_theta"] = theta
            f.attrs["rope_layout"] = "half"
            f["tokens"] = rng.integers(0, 100, (B, T))
            for layer in range(2):
                q = rng.standard_normal((B, T, H, D))
                k = rng.standard_normal((B, T, KV, D))
                qs[layer], ks[layer] = q, k
                f[f"blocks.{layer}.attn.hook_q"] = q.astype(np.float32)
                f[f"blocks.{layer}.attn.hook_rot_q"] = self.rotate(q, g, pos).astype(np.float32)
                f[f"blocks.{layer}.attn.hook_rot_k"] = self.rotate(k, g, pos).astype(np.float32)
                f[f"blocks.{layer}.attn.hook_pattern"] = np.zeros((B, H, T, T), np.float32)
        r = run("prope-convert", src, "--p", "0.25", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        gp = prope(g, 0.25)
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["p"], 0.25)
            np.testing.assert_array_equal(f["tokens"][()], h5py.File(src, "r")["tokens"][()])
            for layer in range(2):
                want_q = self.rotate(qs[layer], gp, pos)
                want_k = self.rotate(ks[layer], gp, pos)
                got_q = f[f"blocks.{layer}.attn.hook_rot_q"][()]
                got_k = f[f"blocks.{layer}.attn.hook_rot_k"][()]
                np.testing.assert_allclose(got_q, want_q, atol=2e-5)
                np.testing.assert_allclose(got_k, want_k, atol=2e-5)
                scores = np.einsum("bihd,bjhd->bhij", want_q, np.repeat(want_k, H // KV, axis=2)) / math.sqrt(D)
                scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
                pattern = np.exp(scores - scores.max(-1, keepdims=True))
                pattern /= pattern.sum(-1, keepdims=True)
                np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_pattern"][()], pattern, atol=2e-5)
                self.assertEqual([d.label for d in f[f"blocks.{layer}.attn.hook_rot_q"].dims],
                                 ["batch", "pos", "head", "dim"])

    def test_layer_0_matches_rope_dump_run_under_p_rope(self):
        # Layer 0's pre-RoPE q/k do not depend on RoPE, so re-rotating a dump of the unchanged
        # model must give what rope-dump computes when it runs the model with --p itself.
        model = os.path.join(SHARED_DATA, "stories260K.bin")
        if not os.path.exists(model):
            self.skipTest("shared stories260K.bin not present")
        ids = "1 461 461 401 300 20 77 91 5 6"
        a, b, c = self.path("a.h5"), self.path("b.h5"), self.path("c.h5")
        for out, extra in ((a, []), (b, ["--p", "0.5"])):
            r = run("rope-dump", model, "--ids", ids, "--what", "rot_q,rot_k,pattern", "--layers", "0", "-o", out, *extra)
            self.assertEqual(r.returncode, 0, r.stderr)
        r = run("prope-convert", a, "--p", "0.5", "-o", c)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(b, "r") as want, h5py.File(c, "r") as got:
            for hook in ("hook_rot_q", "hook_rot_k", "hook_pattern"):
                np.testing.assert_allclose(got[f"blocks.0.attn.{hook}"][()], want[f"blocks.0.attn.{hook}"][()],
                                           atol=1e-5)
            np.testing.assert_allclose(got.attrs["rope_inv_freq"], want.attrs["rope_inv_freq"])
            self.assertEqual(got.attrs["n_heads"], want.attrs["n_heads"])

    def test_custom_names_and_axes_without_batch(self):
        # A dump laid out [head, pos, dim] under its own names, interleaved pairs.
        rng = np.random.default_rng(4)
        T, H, D, theta = 9, 2, 8, 100.0
        g = 1.0 / theta ** (np.arange(0, D, 2) / D)
        pos = np.arange(T, dtype=np.float64)

        def rotate_interleaved(x, g):  # x [pos, head, d]
            ang = pos[:, None, None] * g[None, None, :]
            a, b = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2] = a * np.cos(ang) - b * np.sin(ang)
            out[..., 1::2] = a * np.sin(ang) + b * np.cos(ang)
            return out

        q, k = rng.standard_normal((T, H, D)), rng.standard_normal((T, H, D))
        src, out = self.path("custom.h5"), self.path("p.h5")
        with h5py.File(src, "w") as f:
            f.attrs["rope_theta"] = theta
            f["L0/q"] = rotate_interleaved(q, g).transpose(1, 0, 2).astype(np.float32)
            f["L0/k"] = rotate_interleaved(k, g).transpose(1, 0, 2).astype(np.float32)
        r = run("prope-convert", src, "--p", "0.5", "--name", "rot_q=L{layer}/q", "--name", "rot_k=L{layer}/k",
                "--axes", "head,pos,dim", "--layout", "interleaved", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(out, "r") as f:
            gp = prope(g, 0.5)
            np.testing.assert_allclose(f["L0/q"][()], rotate_interleaved(q, gp).transpose(1, 0, 2), atol=2e-5)
            np.testing.assert_allclose(f["L0/k"][()], rotate_interleaved(k, gp).transpose(1, 0, 2), atol=2e-5)
            self.assertEqual([d.label for d in f["L0/q"].dims], ["head", "pos", "dim"])

    def test_frequency_table_and_pipe(self):
        src = self.path("table.h5")
        g = 1.0 / 5e5 ** (np.arange(0, 64, 2) / 64)
        with h5py.File(src, "w") as f:
            f["inv_freq"] = g
        with open(src, "rb") as f:
            r = run("prope-convert", "-", "--p", "0.75", "--reverse", "-o", "-", stdin=f.read(), text=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.path("out.h5")
        with open(out, "wb") as f:
            f.write(r.stdout)
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["inv_freq"][()], prope(g, 0.75, reverse=True))
            self.assertIn("prope-convert", f.attrs["history"] if "history" in f.attrs else f.attrs["tool"])

    def test_dump_without_rope_theta_is_refused(self):
        src = self.path("dump.h5")
        with h5py.File(src, "w") as f:
            f["blocks.0.attn.hook_rot_q"] = np.zeros((1, 2, 1, 4), np.float32)
            f["blocks.0.attn.hook_rot_k"] = np.zeros((1, 2, 1, 4), np.float32)
        r = run("prope-convert", src, "--p", "0.5", "-o", self.path("p.h5"))
        self.assertOneLineError(r, 1, "rope_theta")
        self.assertFalse(os.path.exists(self.path("p.h5")))


if __name__ == "__main__":
    unittest.main()
