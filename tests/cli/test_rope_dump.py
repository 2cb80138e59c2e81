"""rope-dump end to end (issue 6): every hook and the NLL against a numpy forward pass written
here from llama2.c's maths, p-RoPE/theta overrides, streaming to stdout, error handling, and
greedy parity with llama2.c on the real stories260K model."""
import io
import json
import os
import struct
import subprocess
import unittest

import h5py
import numpy as np

from ropekit_test import SHARED_DATA, TempDirTest, pipe, run, tool_path

STORIES = os.path.join(SHARED_DATA, "stories260K.bin")
# llama2.c's greedy continuation of BOS on stories260K, from issue 6.
REFERENCE_GREEDY = [int(t) for t in """
461 461 401 401 401 461 378 455 473 456 435 299 362 409 283 264 283 452 288 13 431 431 431 431
431 431 431 431 431 431 431 431 431 293 430 417 363 416 315 342 418 424 400 442 402 303 266 299
374 466 396 303 271 362 390 469 306 469 423 314 347 305 356 333""".split()]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def tiny_weights(seed, dim=32, hidden=40, layers=2, heads=4, kv_heads=2, vocab=23, shared=True):
    rng = np.random.default_rng(seed)
    hd = dim // heads

    def normal(*shape, offset=0.0):
        return (offset + 0.3 * rng.standard_normal(shape)).astype(np.float32)

    w = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, vocab=vocab,
             seq_len=16, shared=shared,
             emb=normal(vocab, dim), rms_att=normal(layers, dim, offset=1.0),
             wq=normal(layers, heads * hd, dim), wk=normal(layers, kv_heads * hd, dim),
             wv=normal(layers, kv_heads * hd, dim), wo=normal(layers, dim, heads * hd),
             rms_ffn=normal(layers, dim, offset=1.0), w1=normal(layers, hidden, dim),
             w2=normal(layers, dim, hidden), w3=normal(layers, hidden, dim),
             rms_final=normal(dim, offset=1.0))
    w["wcls"] = w["emb"] if shared else normal(vocab, dim)
    return w


def write_llama2c(w, path):
    hd = w["dim"] // w["heads"]
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", w["dim"], w["hidden"], w["layers"], w["heads"], w["kv_heads"],
                            w["vocab"] if w["shared"] else -w["vocab"], w["seq_len"]))
        for name in ("emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
                     "rms_final"):
            f.write(w[name].astype("<f4").tobytes())
        f.write(np.full(2 * w["seq_len"] * hd // 2, 7.0, "<f4").tobytes())  # legacy, unused
        if not w["shared"]:
            f.write(w["wcls"].astype("<f4").tobytes())


def to_bf16_bits(a):
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def write_hf_llama(w, directory, dtype):
    """The same weights as a Hugging Face directory: q/k rows permuted from Meta's interleaved
    pairs to the half split (transformers' convert_llama_weights_to_hf permute())."""
    os.makedirs(directory)
    hd = w["dim"] // w["heads"]

    def permute(m, heads):
        rows, cols = m.shape
        return m.reshape(heads, hd // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)

    tensors = {"model.embed_tokens.weight": w["emb"], "model.norm.weight": w["rms_final"]}
    for l in range(w["layers"]):
        p = f"model.layers.{l}."
        tensors.update({
            p + "input_layernorm.weight": w["rms_att"][l],
            p + "self_attn.q_proj.weight": permute(w["wq"][l], w["heads"]),
            p + "self_attn.k_proj.weight": permute(w["wk"][l], w["kv_heads"]),
            p + "self_attn.v_proj.weight": w["wv"][l], p + "self_attn.o_proj.weight": w["wo"][l],
            p + "post_attention_layernorm.weight": w["rms_ffn"][l],
            p + "mlp.gate_proj.weight": w["w1"][l], p + "mlp.down_proj.weight": w["w2"][l],
            p + "mlp.up_proj.weight": w["w3"][l]})
    if not w["shared"]:
        tensors["lm_head.weight"] = w["wcls"]
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = to_bf16_bits(t).tobytes() if dtype == "BF16" else \
            t.astype("<f2" if dtype == "F16" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(directory, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
              "hidden_size": w["dim"], "intermediate_size": w["hidden"],
              "num_hidden_layers": w["layers"], "num_attention_heads": w["heads"],
              "num_key_value_heads": w["kv_heads"], "vocab_size": w["vocab"],
              "max_position_embeddings": w["seq_len"], "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": w["shared"]}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)


def rounded(w, dtype):
    """Weights as `dtype` stores them, so the llama2.c copy holds the same values."""
    out = dict(w)
    for k, v in w.items():
        if isinstance(v, np.ndarray):
            if dtype == "F16":
                out[k] = v.astype(np.float16).astype(np.float32)
            elif dtype == "BF16":
                out[k] = (to_bf16_bits(v).astype(np.uint32) << 16).view(np.float32).reshape(v.shape)
    return out


def inv_freq(hd, theta=10000.0, p=1.0, reverse=False):
    g = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    m = int(np.floor(p * len(g) + 1e-9))
    if reverse:
        g[:len(g) - m] = 0.0
    else:
        g[m:] = 0.0
    return g


def numpy_forward(w, ids, freqs):
    """ids [B, T] -> dict of per-layer hooks and nll [B, T], all float64."""
    B, T = ids.shape
    hd = w["dim"] // w["heads"]
    H, KV = w["heads"], w["kv_heads"]

    def norm(x, g):
        return g * x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)

    def rope(v):  # v [B, T, heads, hd], adjacent pairs
        angle = np.arange(T)[:, None] * freqs[None, :]  # [T, hd/2]
        c, s = np.cos(angle)[None, :, None, :], np.sin(angle)[None, :, None, :]
        a, b = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
        return out

    x = w["emb"][ids].astype(np.float64)
    hooks = []
    mask = np.triu(np.ones((T, T), bool), 1)
    for l in range(w["layers"]):
        xb = norm(x, w["rms_att"][l])
        q = (xb @ w["wq"][l].T).reshape(B, T, H, hd)
        k = (xb @ w["wk"][l].T).reshape(B, T, KV, hd)
        v = (xb @ w["wv"][l].T).reshape(B, T, KV, hd)
        rq, rk = rope(q), rope(k)
        rk_full = np.repeat(rk, H // KV, axis=2)
        v_full = np.repeat(v, H // KV, axis=2)
        scores = np.einsum("bihd,bjhd->bhij", rq, rk_full) / np.sqrt(hd)
        scores = np.where(mask, -np.inf, scores)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
        att = np.einsum("bhij,bjhd->bihd", pattern, v_full).reshape(B, T, H * hd)
        x = x + att @ w["wo"][l].T
        xb = norm(x, w["rms_ffn"][l])
        a, u = xb @ w["w1"][l].T, xb @ w["w3"][l].T
        x = x + (a / (1 + np.exp(-a)) * u) @ w["w2"][l].T
        hooks.append(dict(hook_q=q, hook_k=k, hook_rot_q=rq, hook_rot_k=rk,
                          hook_attn_scores=scores, hook_pattern=pattern))
    logits = norm(x, w["rms_final"]) @ w["wcls"].T
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    nll = np.zeros((B, T))
    nll[:, 1:] = -np.take_along_axis(logp[:, :-1], ids[:, 1:, None], -1)[..., 0]
    return hooks, nll


class RopeDump(TempDirTest):
    def setUp(self):
        super().setUp()
        self.w = tiny_weights(1)
        self.model = self.path("tiny.bin")
        write_llama2c(self.w, self.model)
        rng = np.random.default_rng(2)
        self.ids = rng.integers(0, self.w["vocab"], size=(3, 9))
        self.ids[:, 0] = 1
        self.tokens = self.path("tokens.txt")
        with open(self.tokens, "w") as f:
            f.write("# three sequences\n")
            for row in self.ids:
                f.write(" ".join(map(str, row)) + "\n\n")

    def dump(self, *args, out="dump.h5"):
        r = run("rope-dump", self.model, "--tokens", self.tokens, "-o", self.path(out), *args,
                check=0)
        return h5py.File(self.path(out), "r"), r

    def test_every_hook_and_nll_match_numpy(self):
        f, r = self.dump("--what", "all", "--batch", "2")  # a batch boundary inside the data
        hooks, nll = numpy_forward(self.w, self.ids, inv_freq(8))
        for layer in range(2):
            for name, expected in hooks[layer].items():
                got = f[f"blocks.{layer}.attn.{name}"][...]
                self.assertEqual(got.shape, expected.shape, name)
                finite = np.isfinite(expected)
                np.testing.assert_array_equal(np.isfinite(got), finite, err_msg=name)
                np.testing.assert_allclose(got[finite], expected[finite], atol=2e-5, rtol=1e-4,
                                           err_msg=f"layer {layer} {name}")
        np.testing.assert_array_equal(f["tokens"][...], self.ids)
        np.testing.assert_allclose(f["nll"][...], nll, atol=2e-5)
        self.assertEqual(f["nll"][:, 0].tolist(), [0.0, 0.0, 0.0])
        ppl = np.exp(nll[:, 1:].mean())
        self.assertIn(f"perplexity {ppl:.4f}", r.stdout)
        self.assertAlmostEqual(f.attrs["perplexity"], ppl, places=4)
        # Self-describing: axes, units, model attributes.
        self.assertEqual([d.label for d in f["blocks.0.attn.hook_k"].dims],
                         ["batch", "pos", "head", "dim"])
        self.assertEqual([d.label for d in f["blocks.1.attn.hook_pattern"].dims],
                         ["batch", "head", "query_pos", "key_pos"])
        self.assertEqual([d.label for d in f["nll"].dims], ["batch", "pos"])
        self.assertIn("nats", f["nll"].attrs["units"])
        self.assertEqual(f.attrs["rope_layout"], "interleaved")
        self.assertEqual(f.attrs["rope_theta"], 10000.0)
        self.assertEqual(f.attrs["bos"], 1)
        self.assertEqual(f.attrs["model"], "tiny")
        self.assertEqual(f.attrs["p"], 1.0)
        self.assertEqual((f.attrs["n_heads"], f.attrs["n_kv_heads"], f.attrs["d_head"]), (4, 2, 8))
        self.assertAlmostEqual(f.attrs["attn_scale"], 1 / np.sqrt(8), places=12)
        self.assertIn("rope-dump", f.attrs["history"])

    def test_separate_classifier(self):
        w = tiny_weights(3, shared=False)
        write_llama2c(w, self.model)
        f, _ = self.dump("--what", "")
        _, nll = numpy_forward(w, self.ids, inv_freq(8))
        np.testing.assert_allclose(f["nll"][...], nll, atol=2e-5)
        self.assertFalse([k for k in f.keys() if k.startswith("blocks.")])

    def test_schedule_overrides_match_numpy(self):
        for args, freqs in [(["--p", "0.5"], inv_freq(8, p=0.5)),
                            (["--p", "0.25", "--reverse"], inv_freq(8, p=0.25, reverse=True)),
                            (["--p", "0"], inv_freq(8, p=0.0)),
                            (["--theta", "500", "--p", "0.75"], inv_freq(8, 500.0, 0.75))]:
            with self.subTest(args=args):
                f, _ = self.dump(*args, "--what", "rot_q", "--force")
                hooks, nll = numpy_forward(self.w, self.ids, freqs)
                np.testing.assert_allclose(f["nll"][...], nll, atol=2e-5)
                np.testing.assert_allclose(f["blocks.1.attn.hook_rot_q"][...],
                                           hooks[1]["hook_rot_q"], atol=2e-5)
                np.testing.assert_allclose(f.attrs["rope_inv_freq"], freqs, rtol=1e-12)
                f.close()

    def test_hugging_face_directory_matches_the_llama2c_file(self):
        for dtype in ("F32", "F16", "BF16"):
            with self.subTest(dtype=dtype):
                w = rounded(tiny_weights(4, shared=dtype != "F16"), dtype)
                write_llama2c(w, self.model)
                hf = self.path(f"hf-{dtype}")
                write_hf_llama(w, hf, dtype)
                a, _ = self.dump("--what", "q,pattern", "--force")
                r = run("rope-dump", hf, "--tokens", self.tokens, "--what", "q,pattern", "-o",
                        self.path("hf.h5"), "--force", check=0)
                b = h5py.File(self.path("hf.h5"), "r")
                # Same model: same NLL and attention; queries differ only by the layout.
                np.testing.assert_allclose(b["nll"][...], a["nll"][...], atol=1e-5)
                np.testing.assert_allclose(b["blocks.1.attn.hook_pattern"][...],
                                           a["blocks.1.attn.hook_pattern"][...], atol=1e-5)
                q_meta, q_hf = a["blocks.0.attn.hook_q"][...], b["blocks.0.attn.hook_q"][...]
                np.testing.assert_allclose(q_hf[..., :4], q_meta[..., 0::2], atol=1e-5)
                np.testing.assert_allclose(q_hf[..., 4:], q_meta[..., 1::2], atol=1e-5)
                self.assertEqual(b.attrs["rope_layout"], "half")
                self.assertEqual(b.attrs["model"], f"hf-{dtype}")
                self.assertIn("perplexity", r.stdout)
                a.close()
                b.close()

    def test_tokens_from_an_earlier_dump(self):
        self.dump("--what", "", "--p", "0.5")
        r = run("rope-dump", self.model, "--tokens", self.path("dump.h5"), "--what", "", "-o",
                self.path("again.h5"), check=0)
        f = h5py.File(self.path("again.h5"), "r")
        np.testing.assert_array_equal(f["tokens"][...], self.ids)
        _, nll = numpy_forward(self.w, self.ids, inv_freq(8))
        np.testing.assert_allclose(f["nll"][...], nll, atol=2e-5)
        self.assertIn(self.path("dump.h5"), f.attrs["token_source"])
        with h5py.File(self.path("no_tokens.h5"), "w") as g:
            g["x"] = np.zeros(3)
        r = run("rope-dump", self.model, "--tokens", self.path("no_tokens.h5"), "-o",
                self.path("x.h5"))
        self.assertOneLineError(r, 1, "no_tokens.h5: tokens: expected")

    def test_shards_concatenate_to_the_single_dump(self):
        # --batch 1: a forward pass over other sequences alongside rounds differently
        whole, _ = self.dump("--batch", "1")
        run("rope-dump", self.model, "--tokens", self.tokens, "--shard-size", "2", "--batch", "1",
            "-o", self.path("sharded.h5"), "-q", check=0)
        names = [self.path("sharded-00000-of-00002.h5"), self.path("sharded-00001-of-00002.h5")]
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         sorted(["dump.h5", "tiny.bin", "tokens.txt"] + [os.path.basename(n) for n in names]))
        shards = [h5py.File(n, "r") for n in names]
        self.assertEqual([len(f["tokens"]) for f in shards], [2, 1])
        for key in whole:
            joined = np.concatenate([f[key][...] for f in shards])
            np.testing.assert_array_equal(joined, whole[key][...], err_msg=key)
        for f in shards:
            self.assertEqual(f.attrs["rope_theta"], whole.attrs["rope_theta"])
        run("freq-norms", self.path("dump.h5"), "-o", self.path("a.h5"), "-q", check=0)
        run("freq-norms", *names, "-o", self.path("b.h5"), "-q", check=0)
        with h5py.File(self.path("a.h5")) as a, h5py.File(self.path("b.h5")) as b:
            np.testing.assert_allclose(b["q_norms"][...], a["q_norms"][...], rtol=1e-12)

    def test_shards_are_all_written_or_none(self):
        taken = self.path("out-00001-of-00002.h5")
        with open(taken, "w") as f:
            f.write("someone else's")
        r = run("rope-dump", self.model, "--tokens", self.tokens, "--shard-size", "2", "-o",
                self.path("out.h5"))
        self.assertOneLineError(r, 2, taken, "--force")
        self.assertFalse(os.path.exists(self.path("out-00000-of-00002.h5")))
        with open(taken) as f:
            self.assertEqual(f.read(), "someone else's")
        r = run("rope-dump", self.model, "--tokens", self.tokens, "--shard-size", "2", "-o", "-")
        self.assertOneLineError(r, 2, "--shard-size")

    def test_dump_feeds_freq_norms_in_a_pipe(self):
        out, results = pipe(["rope-dump", self.model, "--tokens", self.tokens, "--what", "q,k",
                             "-o", "-"], ["freq-norms", "-", "-o", "-"])
        for code, err in results:
            self.assertEqual(code, 0, err)
        norms = h5py.File(io.BytesIO(out), "r")
        hooks, _ = numpy_forward(self.w, self.ids, inv_freq(8))
        for layer in range(2):
            q = hooks[layer]["hook_q"]  # interleaved: chunk k is dims (2k, 2k+1)
            expected = np.sqrt(q[..., 0::2] ** 2 + q[..., 1::2] ** 2).mean(axis=(0, 1))
            np.testing.assert_allclose(norms["q_norms"][layer], expected, rtol=1e-4)

    def test_a_prope_convert_checkpoint_runs_as_the_p_override(self):
        hf = self.path("hf")
        write_hf_llama(self.w, hf, "F32")
        for encoding in ("llama3", "proportional"):
            with self.subTest(encoding=encoding):
                converted = self.path(f"hf-p05-{encoding}")
                run("prope-convert", hf, "--p", "0.5", "--encoding", encoding, "-o", converted,
                    check=0)
                run("rope-dump", converted, "--tokens", self.tokens, "--what", "", "-o",
                    self.path(f"{encoding}.h5"), check=0)
                got = h5py.File(self.path(f"{encoding}.h5"), "r")
                _, nll = numpy_forward(self.w, self.ids, inv_freq(8, p=0.5))
                np.testing.assert_allclose(got["nll"][...], nll, atol=2e-5)
                np.testing.assert_allclose(got.attrs["rope_inv_freq"], inv_freq(8, p=0.5),
                                           rtol=1e-6, atol=1e-30)

    def test_layer_and_hook_selection(self):
        f, _ = self.dump("--layers", "-1", "--what", "pattern,q")
        self.assertEqual(sorted(k for k in f.keys() if k.startswith("blocks.")),
                         ["blocks.1.attn.hook_pattern", "blocks.1.attn.hook_q"])
        self.assertEqual(f.attrs["layers"].tolist(), [1])

    def test_f16_storage_rounds_to_nearest(self):
        f, _ = self.dump("--what", "q", "--dtype", "f16")
        g, _ = self.dump("--what", "q", out="f32.h5")
        got = f["blocks.0.attn.hook_q"][...]
        self.assertEqual(got.dtype, np.float16)
        np.testing.assert_array_equal(got, g["blocks.0.attn.hook_q"][...].astype(np.float16))

    def test_dump_to_stdout_in_a_pipe(self):
        with open(self.tokens) as tokens:
            r = subprocess.run([tool_path("rope-dump"), self.model, "--tokens", "-", "--what",
                                "pattern", "-o", "-"], stdin=tokens, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        f = h5py.File(io.BytesIO(r.stdout), "r")
        np.testing.assert_array_equal(f["tokens"][...], self.ids)
        self.assertIn(b"perplexity", r.stderr)  # stdout carries the dump, so the summary moves
        rows = f["blocks.0.attn.hook_pattern"][...].sum(-1)
        np.testing.assert_allclose(rows, 1.0, atol=1e-6)

    def test_sampling_is_seeded_and_starts_at_bos(self):
        outs = []
        for seed, name in [(5, "a.h5"), (5, "b.h5"), (6, "c.h5")]:
            run("rope-dump", self.model, "--sample", 4, "--length", 12, "--seed", seed, "--batch",
                3 if name == "b.h5" else 4, "--what", "", "-o", self.path(name), check=0)
            outs.append(h5py.File(self.path(name), "r")["tokens"][...])
        self.assertEqual(outs[0].shape, (4, 12))
        np.testing.assert_array_equal(outs[0], outs[1])  # batch size does not matter
        self.assertFalse(np.array_equal(outs[0], outs[2]))
        self.assertTrue((outs[0][:, 0] == 1).all())
        self.assertTrue(((outs[0] >= 0) & (outs[0] < self.w["vocab"])).all())

    def test_greedy_tokens_are_the_numpy_argmax(self):
        run("rope-dump", self.model, "--sample", 1, "--length", 10, "--temperature", 0, "--what",
            "", "-o", self.path("g.h5"), check=0)
        ids = h5py.File(self.path("g.h5"), "r")["tokens"][...]
        for t in range(1, 10):
            # The numpy NLL of every candidate next token: the greedy one has the smallest.
            candidates = np.repeat(ids[:, :t + 1], self.w["vocab"], axis=0)
            candidates[:, t] = np.arange(self.w["vocab"])
            _, nll = numpy_forward(self.w, candidates, inv_freq(8))
            self.assertEqual(ids[0, t], int(np.argmin(nll[:, t])))

    def test_bad_inputs_are_one_line_errors_without_output(self):
        out = self.path("never.h5")
        cases = []
        with open(self.path("ragged.txt"), "w") as f:
            f.write("1 2 3\n1 2\n")
        cases.append((["--tokens", self.path("ragged.txt")], 1, ["ragged.txt", "line 2",
                                                                  "same length"]))
        with open(self.path("big.txt"), "w") as f:
            f.write("1 2 23\n")
        cases.append((["--tokens", self.path("big.txt")], 1, ["token id 23", "[0, 23)"]))
        with open(self.path("words.txt"), "w") as f:
            f.write("1 two 3\n")
        cases.append((["--tokens", self.path("words.txt")], 1, ["line 1", "'two'"]))
        cases.append(([], 2, ["--tokens", "--sample"]))
        cases.append((["--ids", "1 2", "--reverse"], 2, ["--reverse needs --p"]))
        cases.append((["--ids", "1 2", "--layers", "7"], 2, ["--layers"]))
        cases.append((["--ids", "1 2", "--what", "q,v"], 2, ["--what", "'v'"]))
        cases.append((["--ids", "1 2", "--p", "1.5"], 2, ["--p"]))
        for args, code, fragments in cases:
            with self.subTest(args=args):
                r = run("rope-dump", self.model, *args, "-o", out)
                self.assertOneLineError(r, code, "rope-dump: ", *fragments)
                self.assertFalse(os.path.exists(out))
        self.assertFalse([n for n in os.listdir(self.tmp) if "never" in n])  # no temporaries

    def test_bad_checkpoints_are_data_errors(self):
        data = read_bytes(self.model)
        for name, content, fragment in [
                ("cut.bin", data[:-8], "truncated"),
                ("header.bin", struct.pack("<7i", 32, 40, 2, 5, 5, 23, 16), "divide dim"),
                ("gqa.bin", struct.pack("<7i", 32, 40, 2, 4, 3, 23, 16), "n_kv_heads (3)"),
                ("zero.bin", struct.pack("<7i", 0, 40, 2, 4, 2, 23, 16), "dim in [1"),
                ("empty.bin", b"", "28-byte")]:
            with self.subTest(name=name):
                with open(self.path(name), "wb") as f:
                    f.write(content)
                r = run("rope-dump", self.path(name), "--ids", "1 2", "-o", self.path("x.h5"))
                self.assertOneLineError(r, 1, f"rope-dump: {self.path(name)}: ", fragment)
        r = run("rope-dump", self.path("nope.bin"), "--ids", "1", "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, "nope.bin", "cannot open")

    def test_existing_output_needs_force_and_the_model_is_never_overwritten(self):
        self.dump("--what", "")
        r = run("rope-dump", self.model, "--ids", "1 2", "-o", self.path("dump.h5"))
        self.assertOneLineError(r, 2, "dump.h5")
        before = read_bytes(self.model)
        r = run("rope-dump", self.model, "--ids", "1 2", "-o", self.model, "--force")
        self.assertOneLineError(r, 2)
        self.assertEqual(read_bytes(self.model), before)


@unittest.skipUnless(os.path.exists(STORIES),
                     f"SKIPPED: {STORIES} is absent (download stories260K.bin from "
                     "karpathy/tinyllamas to run the llama2.c parity test)")
class Stories260K(TempDirTest):
    def test_greedy_parity_with_llama2c(self):
        out = self.path("greedy.h5")
        r = run("rope-dump", STORIES, "--sample", 1, "--length", 257, "--temperature", 0,
                "--what", "", "-o", out, check=0)
        f = h5py.File(out, "r")
        tokens, nll = f["tokens"][0], f["nll"][0]
        self.assertEqual(tokens[0], 1)
        self.assertEqual(tokens[1:65].tolist(), REFERENCE_GREEDY)
        self.assertAlmostEqual(nll[1:].mean(), 0.980, delta=1e-3)
        self.assertEqual(f.attrs["model"], "stories260K")
        self.assertIn(f"perplexity {np.exp(nll[1:].mean()):.4f}", r.stdout)


if __name__ == "__main__":
    unittest.main()
