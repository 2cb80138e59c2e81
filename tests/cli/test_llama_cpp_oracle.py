"""rope-dump against llama.cpp (issue 13): the same weights and token ids, evaluated by rope-dump and
by llama.cpp itself (the npm package node-llama-cpp, installed into the build tree by
scripts/install-oracles and driven by tests/oracle/llama_logprobs.mjs), must give the same
per-token log-probabilities. The GGUF files are written here by gguf_writer.py the way llama.cpp's
convert_hf_to_gguf.py writes them, and rope-dump reads them too; the controls show that a wrong
rotary schedule or a wrong dequantizer is caught.

Measured maximum differences are printed (run with -v) and recorded in docs/tools/rope-dump.md,
"Checked against llama.cpp"."""
import json
import os
import struct
import sys
import unittest

import h5py
import numpy as np

import gguf_writer
from llama_cpp import llama_cpp_logprobs, require_oracle, run_oracle
from ropekit_test import SHARED_DATA, TempDirTest, edit_json, run
from test_rope_dump import tiny_weights, write_hf_llama

STORIES = os.path.join(SHARED_DATA, "stories260K.bin")
TOLERANCE = 1e-3  # nats, per token, at F32
# (max, mean) per-token difference allowed between rope-dump and llama.cpp on the same file, 2-4
# times what was measured (docs/tools/rope-dump.md, "Checked against llama.cpp").
QUANTIZED_TOLERANCES = {"F16": (0.015, 0.004), "BF16": (0.1, 0.03), "Q8_0": (0.3, 0.08),
                        "Q4_0": (0.3, 0.08), "Q4_K": (0.3, 0.08), "Q5_K": (0.3, 0.08),
                        "Q6_K": (0.3, 0.08)}


def read_llama2c(path):
    """A llama2.c legacy checkpoint as the weight dict of test_rope_dump.tiny_weights."""
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", raw[:28])
    values = np.frombuffer(raw, "<f4", offset=28)
    w = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
             vocab=abs(vocab), seq_len=seq_len, shared=vocab > 0)
    hd = dim // heads
    shapes = [("emb", (abs(vocab), dim)), ("rms_att", (layers, dim)), ("wq", (layers, heads * hd, dim)),
              ("wk", (layers, kv_heads * hd, dim)), ("wv", (layers, kv_heads * hd, dim)),
              ("wo", (layers, dim, heads * hd)), ("rms_ffn", (layers, dim)),
              ("w1", (layers, hidden, dim)), ("w2", (layers, dim, hidden)),
              ("w3", (layers, hidden, dim)), ("rms_final", (dim,)),
              ("freq_cis", (2, seq_len, hd // 2))]
    if vocab < 0:
        shapes.append(("wcls", (abs(vocab), dim)))
    pos = 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = values[pos:pos + n].reshape(shape)
        pos += n
    assert pos == len(values), f"{path}: {len(values) - pos} floats left over"
    if vocab > 0:
        w["wcls"] = w["emb"]
    return w


class LlamaCppOracle(TempDirTest):
    @classmethod
    def setUpClass(cls):
        require_oracle()

    def report(self, case, difference):
        print(f"\n  {case}: max |log-prob difference| {difference:.2e} nats", file=sys.stderr,
              end="")

    def rope_dump_logprobs(self, model, ids, *args):
        tokens, out = self.path("tokens.txt"), self.path("dump.h5")
        with open(tokens, "w") as f:
            f.write("\n".join(" ".join(map(str, row)) for row in ids) + "\n")
        run("rope-dump", model, "--tokens", tokens, "--what", "", "-o", out, "--force", *args,
            check=0)
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["tokens"][()], ids)
            return -f["nll"][()]

    def difference(self, rope_dump_model, gguf, ids, *args):
        want = self.rope_dump_logprobs(rope_dump_model, ids, *args)
        got = llama_cpp_logprobs(gguf, ids, self.tmp)
        self.assertEqual(got.shape, want.shape)
        return float(np.abs(got - want).max())

    def random_model(self, name, **shape):
        """A random-weight Llama as an HF directory (F32) and as the corresponding GGUF."""
        w = tiny_weights(shape.pop("seed"), **shape)
        hf, gguf = self.path(name), self.path(f"{name}.gguf")
        write_hf_llama(w, hf, "F32")
        gguf_writer.hf_to_gguf(hf, gguf, "F32")
        return w, hf, gguf

    @staticmethod
    def random_ids(w, batch=3, length=40, seed=0):
        ids = np.random.default_rng(seed).integers(0, w["vocab"], size=(batch, length))
        ids[:, 0] = 1
        return ids

    @unittest.skipUnless(os.path.exists(STORIES), f"SKIPPED: {STORIES} is absent")
    def test_stories260k_as_gguf_matches_rope_dump(self):
        sample = self.path("sample.h5")
        run("rope-dump", STORIES, "--sample", 4, "--length", 128, "--seed", 3, "--what", "", "-o",
            sample, check=0)
        with h5py.File(sample, "r") as f:
            ids, want = f["tokens"][()], -f["nll"][()]
        w = read_llama2c(STORIES)
        hf, gguf = self.path("stories-hf"), self.path("stories.gguf")
        write_hf_llama(w, hf, "F32")
        gguf_writer.hf_to_gguf(hf, gguf, "F32")
        got = llama_cpp_logprobs(gguf, ids, self.tmp)
        difference = float(np.abs(got - want).max())
        self.report("stories260K, 4 x 128 sampled tokens, F32", difference)
        self.assertLess(difference, TOLERANCE)
        difference = float(np.abs(got - self.rope_dump_logprobs(gguf, ids)).max())
        self.report("stories260K as GGUF, in rope-dump and in llama.cpp", difference)
        self.assertLess(difference, TOLERANCE)

    def test_random_models_of_several_shapes(self):
        shapes = {
            "gqa-tied": dict(seed=11, dim=64, hidden=96, layers=2, heads=4, kv_heads=2, vocab=300),
            "mha-separate": dict(seed=12, dim=48, hidden=80, layers=3, heads=2, kv_heads=2,
                                 vocab=280, shared=False),
            "mqa-head8": dict(seed=13, dim=64, hidden=128, layers=2, heads=8, kv_heads=1,
                              vocab=320, shared=False),
            "head64-tied": dict(seed=14, dim=128, hidden=160, layers=2, heads=2, kv_heads=1,
                                vocab=260),
        }
        for name, shape in shapes.items():
            with self.subTest(model=name):
                w, hf, gguf = self.random_model(name, **shape)
                ids = self.random_ids(w)
                for side, model in (("the HF dir", hf), ("the same GGUF", gguf)):
                    difference = self.difference(model, gguf, ids)
                    self.report(f"random {name} (head_dim {w['dim'] // w['heads']}), rope-dump on "
                                f"{side} vs llama.cpp on the GGUF", difference)
                    self.assertLess(difference, TOLERANCE)

    def test_prope_convert_gguf_outputs_run_like_rope_dump_p(self):
        w, hf, gguf = self.random_model("base", seed=21, dim=64, hidden=96, layers=2, heads=2,
                                        kv_heads=1, vocab=270)  # head_dim 32: 16 frequencies
        ids = self.random_ids(w, seed=1)
        for args in (["--p", "0.75"], ["--p", "0.25"], ["--p", "0"], ["--p", "0.75", "--reverse"],
                     ["--p", "0.25", "--reverse"]):
            with self.subTest(args=args):
                converted = self.path(f"p{'-'.join(args)}.gguf")
                run("prope-convert", gguf, *args, "-o", converted, check=0)
                difference = self.difference(hf, converted, ids, *args)
                self.report(f"prope-convert {' '.join(args)} in llama.cpp vs rope-dump "
                            f"{' '.join(args)}", difference)
                self.assertLess(difference, TOLERANCE)
                difference = self.difference(converted, converted, ids)
                self.report(f"prope-convert {' '.join(args)} in llama.cpp vs in rope-dump",
                            difference)
                self.assertLess(difference, TOLERANCE)

    def test_llama3_rope_freqs_run_as_llama_cpp_runs_them(self):
        w, hf, _ = self.random_model("llama3", seed=22, dim=128, hidden=160, layers=2, heads=2,
                                     kv_heads=1, vocab=270)  # head_dim 64: 32 frequencies
        scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
        edit_json(os.path.join(hf, "config.json"), lambda c: c.update(rope_scaling=scaling))
        gguf = self.path("llama3-scaled.gguf")
        gguf_writer.hf_to_gguf(hf, gguf, "F32")  # rope_freqs.weight, as convert_hf_to_gguf.py
        ids = self.random_ids(w, seed=4)
        for side, model in (("its HF config", hf), ("the GGUF", gguf)):
            difference = self.difference(model, gguf, ids)
            self.report(f"Llama 3 rope_freqs GGUF in llama.cpp vs rope-dump on {side}", difference)
            self.assertLess(difference, TOLERANCE)

    def test_a_wrong_schedule_is_caught(self):
        w, hf, gguf = self.random_model("model", seed=31, dim=64, hidden=96, layers=2, heads=2,
                                        kv_heads=2, vocab=270)
        ids = self.random_ids(w, seed=2)
        self.assertLess(self.difference(hf, gguf, ids), TOLERANCE)  # the control's baseline
        controls = {"q/k rows not permuted": dict(permute=False),
                    "rope.freq_base 500 instead of 10^4": dict(freq_base=500.0)}
        for case, change in controls.items():
            with self.subTest(control=case):
                wrong = self.path("wrong.gguf")
                gguf_writer.hf_to_gguf(hf, wrong, "F32", **change)
                difference = self.difference(hf, wrong, ids)
                self.report(f"control, {case}", difference)
                self.assertGreater(difference, 100 * TOLERANCE)
        for args in (["--p", "0.5"], ["--theta", "500"]):  # and rope-dump's side of it
            with self.subTest(rope_dump=args):
                difference = self.difference(hf, gguf, ids, *args)
                self.report(f"control, rope-dump {' '.join(args)} vs the plain GGUF", difference)
                self.assertGreater(difference, 100 * TOLERANCE)

    def test_rope_dump_and_llama_cpp_on_the_same_16_bit_and_quantized_files(self):
        # llama.cpp rounds the activations too (to f16 or bf16 for those weights, to 8 bits for
        # the quantized dot products), rope-dump converts the weights to float32 and keeps float32
        # activations, so they agree to ~0.1 nats, not 1e-3 (docs/tools/rope-dump.md). The control
        # is a dequantizer that misplaces values inside their block (each run of 32 reversed):
        # rope-dump on those weights is off by far more.
        w = tiny_weights(7, dim=256, hidden=512, layers=2, heads=4, kv_heads=2, vocab=300,
                         shared=False)  # rows of 256 and 512: whole K-quant blocks
        for k in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            w[k] = (w[k] * 0.06).astype(np.float32)  # std 0.018: log-probs of −16 on average
        hf = self.path("hf")
        write_hf_llama(w, hf, "F32")
        ids = self.random_ids(w, seed=3)

        def misplaced(type_name):
            out = dict(w)
            for k in ("emb", "wcls", "wq", "wk", "wv", "wo", "w1", "w2", "w3"):
                x = gguf_writer.decode(gguf_writer.encode(w[k], type_name), type_name, w[k].shape)
                out[k] = np.ascontiguousarray(x.reshape(*x.shape[:-1], -1, 32)[..., ::-1]
                                              .reshape(x.shape))
            return out

        for type_name, (max_tolerance, mean_tolerance) in QUANTIZED_TOLERANCES.items():
            with self.subTest(type=type_name):
                gguf = self.path(f"{type_name}.gguf")
                gguf_writer.hf_to_gguf(hf, gguf, type_name)
                got = llama_cpp_logprobs(gguf, ids, self.tmp)
                control = self.path(f"{type_name}-misplaced")
                write_hf_llama(misplaced(type_name), control, "F32")
                mean, largest = {}, {}
                for case, model in (("the same file", gguf), ("misplaced weights", control)):
                    difference = np.abs(got - self.rope_dump_logprobs(model, ids))[:, 1:]
                    mean[case], largest[case] = difference.mean(), difference.max()
                    self.report(f"{type_name} GGUF in llama.cpp vs rope-dump on {case} "
                                f"(mean {mean[case]:.2e})", largest[case])
                self.assertLess(largest["the same file"], max_tolerance)
                self.assertLess(mean["the same file"], mean_tolerance)
                self.assertGreater(mean["misplaced weights"], 10 * mean["the same file"])
                self.assertGreater(largest["misplaced weights"], 1.0)

    def test_the_runner_refuses_a_shifted_context_and_gives_full_distributions(self):
        # A sequence that fills llama.cpp's context is silently shifted (its first tokens
        # dropped): the runner must notice and fail rather than return other log-probs.
        w, _, gguf = self.random_model("model", seed=41, dim=32, hidden=48, layers=1, heads=2,
                                       kv_heads=2, vocab=270)
        ids = self.random_ids(w, batch=1, length=300)
        r, _ = run_oracle(gguf, ids, self.tmp, "--context-size", 300)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("context shifted", r.stderr)
        r, answer = run_oracle(gguf, ids[:, :30], self.tmp, "--context-size", 320, "--full")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(answer) as f:
            out = json.load(f)
        full, logprobs = np.array(out["full"], np.float64), np.array(out["logprobs"])
        self.assertEqual(full.shape, (1, 30, 270))
        np.testing.assert_allclose(np.log(np.exp(full).sum(-1)), 0, atol=1e-5)  # distributions
        picked = np.take_along_axis(full[:, :-1], ids[:, 1:30, None], -1)[..., 0]
        np.testing.assert_array_equal(picked, logprobs[:, 1:])


if __name__ == "__main__":
    unittest.main()
