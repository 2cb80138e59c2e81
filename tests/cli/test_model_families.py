"""rope-dump on the decoder families (issue 14): llama 3.1 (llama3 scaling), mistral (sliding
window), qwen2 (q/k/v biases), qwen3 (q/k norms, decoupled head_dim), phi3 (fused projections,
partial rotary, longrope), gemma, gemma2, gpt_neox (rotary_pct, parallel residual, LayerNorm,
exact GELU). For each, a random model written as transformers saves it (model_families.py)
must give, in rope-dump, the NLL and hook_rot_q of an independent numpy forward, and a control
with the family's peculiarity removed must not. The GGUF the converter makes of it must run in
rope-dump as the directory does, and in llama.cpp (the oracle) to 1e-3 nats per token;
mistral's GGUF is architecture llama, which has no sliding window, so its window is checked
against numpy only."""
import json
import os
import sys
import unittest

import h5py
import numpy as np

import model_families as mf
from llama_cpp import llama_cpp_logprobs, require_oracle, run_oracle
from ropekit_test import TempDirTest, run

TOLERANCE = 1e-3  # nats per token, rope-dump against llama.cpp at F32
NUMPY_TOLERANCE = 1e-4  # nats per token, float32 rope-dump against the float64 numpy forward
LENGTH = 40  # tokens per sequence: longer than mistral's window of 8
# The peculiarity each family's control removes from the numpy forward.
CONTROLS = {"llama": {"scaling": False}, "mistral": {"window": False}, "qwen2": {"bias": False},
            "qwen3": {"qk_norm": False}, "phi3": {"rotary": "full"}, "gemma": {"gemma_norm": False},
            "gemma2": {"softcap": False}, "gpt_neox": {"rotary": "full"}}


def phi3_longrope(original=256):
    """A Phi-3 longrope config: short and long factors different from each other and from 1, an
    original context of 256 (llama.cpp pads its context to a multiple of 256, so the oracle's
    context stays within it and uses the short factors), max 4096: attention factor √1.5."""
    rng = np.random.default_rng(4)
    scaling = {"rope_type": "longrope", "short_factor": list(1 + 3 * rng.random(4)),
               "long_factor": list(1 + 30 * rng.random(4))}
    return {"rope_scaling": scaling, "original_max_position_embeddings": original,
            "max_position_embeddings": 4096}


class FamilyTest(TempDirTest):
    def model(self, family, seed=0, **extra):
        c = mf.config(family, **extra)
        t = mf.tensors(c, seed)
        hf = self.path(f"{family}-hf")
        while os.path.exists(hf):  # a subtest's second model
            hf += "+"
        mf.write_hf(hf, c, t)
        return c, t, hf

    def ids(self, c, seed=1, length=LENGTH):
        ids = np.random.default_rng(seed).integers(0, c["vocab_size"], size=(2, length))
        ids[:, 0] = 1
        return ids

    def dump(self, model, ids, what="rot_q", name="dump.h5", args=()):
        tokens, out = self.path("tokens.txt"), self.path(name)
        np.savetxt(tokens, ids, fmt="%d")
        run("rope-dump", model, "--tokens", tokens, "--what", what, "-o", out, "--force", *args,
            check=0)
        return h5py.File(out, "r")

    def report(self, case, difference):
        print(f"\n  {case}: max |NLL difference| {difference:.2e} nats", file=sys.stderr, end="")


class FamiliesAgainstNumpy(FamilyTest):
    def test_each_family_matches_numpy_and_its_control_does_not(self):
        for family in mf.FAMILIES:
            with self.subTest(family=family):
                c, t, hf = self.model(family)
                ids = self.ids(c)
                rot_q, nll = mf.forward(c, t, ids)
                with self.dump(hf, ids) as f:
                    got = f["nll"][()]
                    difference = np.abs(got - nll).max()
                    self.report(f"{family} HF against numpy", difference)
                    self.assertLess(difference, NUMPY_TOLERANCE)
                    for layer in range(c["num_hidden_layers"]):
                        want = rot_q[layer]
                        np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_q"][()], want,
                                                   atol=1e-4 * np.abs(want).max())
                    self.assertEqual(f.attrs["family"], family)
                _, control = mf.forward(c, t, ids, **CONTROLS[family])
                difference = np.abs(got - control).max()
                self.report(f"{family} control {CONTROLS[family]}", difference)
                self.assertGreater(difference, 1e-2, "the control agrees")

    def test_the_dump_records_what_each_layer_ran_with(self):
        expected = {  # family: (rope scaling, rotary dim, window, base)
            "llama": ("llama3", 16, 0, 1e4), "mistral": ("default", 16, 8, 1e6),
            "qwen2": ("default", 16, 0, 1e6), "qwen3": ("default", 24, 0, 1e6),
            "phi3": ("default", 8, 2047, 1e4), "gemma": ("default", 32, 0, 1e4),
            "gemma2": ("default", 32, None, 1e4), "gpt_neox": ("default", 4, 0, 1e4)}
        for family, (scaling, rotary, window, base) in expected.items():
            with self.subTest(family=family):
                c, _, hf = self.model(family)
                with self.dump(hf, self.ids(c, length=5), what="") as f:
                    a = f.attrs
                    layers = c["num_hidden_layers"]
                    self.assertEqual(list(a["layer_rope_scaling"]), [scaling] * layers)
                    np.testing.assert_array_equal(a["layer_rotary_dim"], [rotary] * layers)
                    windows = [8, 0] if window is None else [window] * layers  # gemma2 alternates
                    np.testing.assert_array_equal(a["layer_sliding_window"], windows)
                    np.testing.assert_array_equal(a["layer_rope_theta"], [base] * layers)
                    np.testing.assert_allclose(a["layer_attn_scale"],
                                               [mf.head_dim(c) ** -0.5] * layers)
                    cap = c.get("attn_logit_softcapping", 0.0)
                    np.testing.assert_array_equal(a["layer_attn_softcap"], [cap] * layers)
                    self.assertEqual(a["final_logit_softcap"], c.get("final_logit_softcapping", 0))

    def test_gemma2_query_pre_attn_scalar_and_its_alternating_window(self):
        # llama.cpp ignores query_pre_attn_scalar except at 27B's 46 layers, so this is numpy's.
        c, t, hf = self.model("gemma2", query_pre_attn_scalar=24)
        ids = self.ids(c)
        _, nll = mf.forward(c, t, ids)
        with self.dump(hf, ids, what="") as f:
            got = f["nll"][()]
            np.testing.assert_allclose(f.attrs["layer_attn_scale"], [24 ** -0.5] * 2)
        self.assertLess(np.abs(got - nll).max(), NUMPY_TOLERANCE)
        _, other = mf.forward(dict(c, query_pre_attn_scalar=32), t, ids)
        self.assertGreater(np.abs(got - other).max(), 1e-2)
        _, other = mf.forward(c, t, ids, window=False)
        self.assertGreater(np.abs(got - other).max(), 1e-2)

    def test_phi3_window_and_longrope_short_factors(self):
        # Phi-3 applies its sliding_window (transformers' Phi3Attention); llama.cpp disables it,
        # so this one is checked against numpy. longrope: sequences within the original context
        # use short_factor, with cos/sin scaled by sqrt(1 + ln(f) / ln(original)).
        rng = np.random.default_rng(4)
        scaling = {"rope_type": "longrope", "short_factor": list(1 + 3 * rng.random(4)),
                   "long_factor": list(1 + 30 * rng.random(4))}
        c, t, hf = self.model("phi3", sliding_window=8, rope_scaling=scaling,
                              original_max_position_embeddings=64, max_position_embeddings=512)
        ids = self.ids(c)
        _, nll = mf.forward(c, t, ids)
        with self.dump(hf, ids, what="") as f:
            got = f["nll"][()]
            self.assertEqual(list(f.attrs["layer_rope_scaling"]), ["longrope"] * 2)
        self.assertLess(np.abs(got - nll).max(), NUMPY_TOLERANCE)
        for control in ({"window": False}, {"scaling": False}):
            _, other = mf.forward(c, t, ids, **control)
            self.assertGreater(np.abs(got - other).max(), 1e-2, control)
        # Past the original context transformers switches to long_factor: refused, not run.
        r = run("rope-dump", hf, "--ids", " ".join(["1"] * 65), "--what", "", "-o",
                self.path("long.h5"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("long_factor", r.stderr)


class GptNeox(FamilyTest):
    """Pythia: a quarter of each head rotates (rotary_pct), attention and MLP read the same
    input (use_parallel_residual), LayerNorm with biases, the exact GELU, query_key_value
    interleaved per head."""

    def test_partial_rotary_passes_the_other_dims_through(self):
        c, t, hf = self.model("gpt_neox")
        ids = self.ids(c, length=12)
        rot_q, _ = mf.forward(c, t, ids)
        with self.dump(hf, ids, what="q,rot_q") as f:
            self.assertEqual(f.attrs["rotary_dim"], 4)
            q, got = f["blocks.1.attn.hook_q"][()], f["blocks.1.attn.hook_rot_q"][()]
        np.testing.assert_array_equal(got[..., 4:], q[..., 4:])
        np.testing.assert_allclose(got, rot_q[1], atol=1e-4 * np.abs(rot_q[1]).max())
        self.assertGreater(np.abs(got[:, 1:, :, :4] - q[:, 1:, :, :4]).max(), 1e-2)

    def test_parallel_and_sequential_residual(self):
        for parallel in (True, False):
            with self.subTest(use_parallel_residual=parallel):
                c, t, hf = self.model("gpt_neox", use_parallel_residual=parallel)
                ids = self.ids(c)
                _, nll = mf.forward(c, t, ids)
                with self.dump(hf, ids, what="") as f:
                    got = f["nll"][()]
                self.assertLess(np.abs(got - nll).max(), NUMPY_TOLERANCE)
                _, other = mf.forward(dict(c, use_parallel_residual=not parallel), t, ids)
                difference = np.abs(got - other).max()
                self.report(f"gpt_neox parallel={parallel}, control the other residual",
                            difference)
                self.assertGreater(difference, 1e-2)

    def test_rope_keys_under_both_transformers_namings(self):
        # v4 (Pythia's config.json): rotary_pct and rotary_emb_base, which override any
        # partial_rotary_factor / rope_theta; v5: rope_parameters' own keys.
        v4 = {"rotary_pct": 0.5, "rotary_emb_base": 500, "partial_rotary_factor": 1.0,
              "rope_theta": 10000.0}
        v5 = {"rope_parameters": {"rope_type": "default", "rope_theta": 500.0,
                                  "partial_rotary_factor": 0.5}, "rotary_pct": 0.25}
        for name, extra in (("v4", v4), ("v5", v5)):
            with self.subTest(naming=name):
                c, t, hf = self.model("gpt_neox", **extra)
                ids = self.ids(c)
                _, nll = mf.forward(dict(c, rotary_pct=0.5, rotary_emb_base=500), t, ids)
                with self.dump(hf, ids, what="") as f:
                    self.assertEqual(f.attrs["rotary_dim"], 8)
                    np.testing.assert_array_equal(f.attrs["layer_rope_theta"], [500.0] * 2)
                    self.assertLess(np.abs(f["nll"][()] - nll).max(), NUMPY_TOLERANCE)

    def test_sampling_decodes_through_the_kv_cache(self):
        c, t, hf = self.model("gpt_neox")
        out = self.path("sampled.h5")
        run("rope-dump", hf, "--sample", "2", "--length", "12", "--seed", "3", "--what", "",
            "-o", out, check=0)
        with h5py.File(out, "r") as f:
            ids, sampled = f["tokens"][()], f["nll"][()]
        _, nll = mf.forward(c, t, ids)
        self.assertLess(np.abs(sampled - nll).max(), NUMPY_TOLERANCE)

    def test_other_activations_are_refused_by_name(self):
        _, _, hf = self.model("gpt_neox", hidden_act="gelu_new")
        r = run("rope-dump", hf, "--ids", "1 2 3", "--what", "", "-o", self.path("x.h5"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("hidden_act", r.stderr)
        self.assertIn('expected "gelu", found "gelu_new"', r.stderr)


class FamiliesAsGguf(FamilyTest):
    def gguf(self, family, c, t):
        path = self.path(f"{family}.gguf")
        mf.to_gguf(c, t, path)
        return path

    def test_each_gguf_runs_as_its_directory(self):
        for family in mf.FAMILIES:
            with self.subTest(family=family):
                # Mistral's converter drops the window: compare with a window the sequence fits.
                extra = {"window": LENGTH} if family == "mistral" else {}
                c, t, hf = self.model(family, **extra)
                ids = self.ids(c)
                with self.dump(hf, ids, what="", name="hf.h5") as a, \
                        self.dump(self.gguf(family, c, t), ids, what="", name="gguf.h5") as b:
                    np.testing.assert_allclose(b["nll"][()], a["nll"][()], atol=1e-5)
                    self.assertEqual(b.attrs["family"], mf.GGUF_ARCH[family])
                    np.testing.assert_allclose(b.attrs["rope_inv_freq"], a.attrs["rope_inv_freq"],
                                               rtol=1e-6)


    def test_phi3_longrope_gguf_runs_as_its_directory(self):
        c, t, hf = self.model("phi3", **phi3_longrope())
        ids = self.ids(c)
        gguf = self.gguf("phi3", c, t)
        with self.dump(hf, ids, what="", name="hf.h5") as a, \
                self.dump(gguf, ids, what="", name="gguf.h5") as b:
            np.testing.assert_allclose(b["nll"][()], a["nll"][()], atol=1e-5)
            np.testing.assert_allclose(b.attrs["rope_inv_freq"], a.attrs["rope_inv_freq"],
                                       rtol=1e-6)
            self.assertAlmostEqual(b.attrs["rope_attention_factor"], np.sqrt(1.5), places=6)
            self.assertEqual(list(b.attrs["layer_rope_scaling"]), ["longrope"] * 2)
        # Past the original context llama.cpp divides by the long factors: refused, not run.
        r = run("rope-dump", gguf, "--ids", " ".join(["1"] * 257), "--what", "", "-o",
                self.path("long.h5"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("long_factor", r.stderr)
        self.assertIn("at most 256", r.stderr)


class FamiliesAgainstLlamaCpp(FamilyTest):
    @classmethod
    def setUpClass(cls):
        require_oracle()

    def test_llama_cpp_agrees_with_rope_dump_and_not_with_the_control(self):
        for family in mf.FAMILIES:
            with self.subTest(family=family):
                extra = {"window": LENGTH} if family == "mistral" else {}
                c, t, hf = self.model(family, **extra)
                gguf = self.path(f"{family}.gguf")
                mf.to_gguf(c, t, gguf)
                ids = self.ids(c)
                got = llama_cpp_logprobs(gguf, ids, self.tmp)
                for model in (hf, gguf):
                    with self.dump(model, ids, what="") as f:
                        difference = float(np.abs(got + f["nll"][()]).max())
                    self.report(f"{family} {os.path.basename(model)} against llama.cpp",
                                difference)
                    self.assertLess(difference, TOLERANCE)
                if family != "mistral":
                    _, control = mf.forward(c, t, ids, **CONTROLS[family])
                    difference = np.abs(got + control).max()
                    self.report(f"{family} control {CONTROLS[family]} against llama.cpp",
                                difference)
                    self.assertGreater(difference, 1e-2, "the control agrees")

    def test_phi3_longrope_gguf_in_llama_cpp(self):
        c, t, hf = self.model("phi3", **phi3_longrope())
        gguf = self.path("phi3.gguf")
        mf.to_gguf(c, t, gguf)
        ids = self.ids(c)
        got = llama_cpp_logprobs(gguf, ids, self.tmp)  # context 96, padded to 256: short factors
        for model in (hf, gguf):
            with self.dump(model, ids, what="") as f:
                dumped = f["nll"][()]
            difference = float(np.abs(got + dumped).max())
            self.report(f"phi3 longrope {os.path.basename(model)} against llama.cpp", difference)
            self.assertLess(difference, TOLERANCE)
        # Controls: the same GGUF without the factor tensors, or without the attention factor.
        for drop in (("rope_factors_short.weight", "rope_factors_long.weight"),
                     ("phi3.rope.scaling.attn_factor",)):
            control = self.path("control.gguf")
            mf.to_gguf(c, t, control, drop=drop)
            difference = float(np.abs(llama_cpp_logprobs(control, ids, self.tmp) + dumped).max())
            self.report(f"phi3 longrope control without {drop[0]}", difference)
            self.assertGreater(difference, 1e-2, drop)
        # A context past the original: llama.cpp divides by the long factors at every position,
        # as the numpy forward with the long factors does (what rope-dump refuses to run).
        r, answer = run_oracle(gguf, ids, self.tmp, "--context-size", 512)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(answer) as f:
            long = np.array(json.load(f)["logprobs"])
        _, numpy_long = mf.forward(c, t, ids, scaling="long")
        difference = float(np.abs(long + numpy_long).max())
        self.report("phi3 llama.cpp at context 512 against numpy with long factors", difference)
        self.assertLess(difference, TOLERANCE)
        self.assertGreater(np.abs(long - got).max(), 1e-2)

    def test_prope_convert_of_phi3_ggufs_runs_like_rope_dump_p(self):
        # llama.cpp's phi3 reads the longrope pair, not rope_freqs.weight: prope-convert writes
        # p-RoPE into both factor tensors, and adds them to a file without longrope.
        cases = {"longrope": (phi3_longrope(), ["--p", "0.5"], [2, 3]),
                 "longrope reversed": (phi3_longrope(), ["--p", "0.25", "--reverse"], [0, 1, 2]),
                 "plain": ({}, ["--p", "0.5"], [2, 3])}
        for case, (extra, args, dropped) in cases.items():
            with self.subTest(case=case):
                c = mf.config("phi3", **extra)
                t = mf.tensors(c, 5)
                gguf, converted = self.path("phi3.gguf"), self.path("phi3-p.gguf")
                mf.to_gguf(c, t, gguf)
                run("prope-convert", gguf, *args, "-o", converted, "--force", check=0)
                ids = self.ids(c)
                got = llama_cpp_logprobs(converted, ids, self.tmp)
                with self.dump(gguf, ids, what="", args=args) as f:
                    difference = float(np.abs(got + f["nll"][()]).max())
                self.report(f"phi3 {case} prope-convert {' '.join(args)} in llama.cpp vs "
                            f"rope-dump {' '.join(args)}", difference)
                self.assertLess(difference, TOLERANCE)
                with self.dump(gguf, ids, what="") as f:  # control: rope-dump without --p
                    difference = float(np.abs(got + f["nll"][()]).max())
                self.report(f"phi3 {case} control, rope-dump without {' '.join(args)}",
                            difference)
                self.assertGreater(difference, 1e-2)
                if extra:  # the long factors carry it too: llama.cpp past the original context
                    r, answer = run_oracle(converted, ids, self.tmp, "--context-size", 512)
                    self.assertEqual(r.returncode, 0, r.stderr[-2000:])
                    with open(answer) as f:
                        long = np.array(json.load(f)["logprobs"])
                    _, want = mf.forward(c, t, ids, scaling="long", drop=dropped)
                    difference = float(np.abs(long + want).max())
                    self.report(f"phi3 {case} converted, llama.cpp at context 512 vs numpy "
                                "with the long factors", difference)
                    self.assertLess(difference, TOLERANCE)

    def test_gpt_neox_difference_is_llama_cpps_gelu(self):
        # llama.cpp runs gptneox's GELU as the tanh form through an f16 table (f16 in, f16 out):
        # the numpy forward with that GELU matches llama.cpp to float32 noise, the exact (erf)
        # one matches rope-dump. rope-dump is the exact side.
        for parallel in (True, False):
            with self.subTest(use_parallel_residual=parallel):
                c, t, hf = self.model("gpt_neox", use_parallel_residual=parallel)
                gguf = self.path("gpt_neox.gguf")
                mf.to_gguf(c, t, gguf)
                ids = self.ids(c)
                got = llama_cpp_logprobs(gguf, ids, self.tmp)
                _, exact = mf.forward(c, t, ids)
                exact_difference = np.abs(got + exact).max()
                table = mf.forward(c, t, ids, gelu=llama_cpp_gelu)[1]
                table_difference = np.abs(got + table).max()
                self.report(f"gpt_neox parallel={parallel} llama.cpp against numpy, exact GELU",
                            exact_difference)
                self.report(f"gpt_neox parallel={parallel} llama.cpp against numpy, its GELU",
                            table_difference)
                self.assertLess(table_difference, 5e-5)
                self.assertGreater(exact_difference, 4 * table_difference)
                _, other = mf.forward(dict(c, use_parallel_residual=not parallel), t, ids)
                self.assertGreater(np.abs(got + other).max(), 1e-2, "the other residual agrees")


def llama_cpp_gelu(x):
    """ggml_vec_gelu_f32 with GGML_GELU_FP16: the tanh GELU of x rounded to f16, read from an f16
    table."""
    x16 = x.astype(np.float16).astype(np.float64)
    y = 0.5 * x16 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x16 + 0.044715 * x16 ** 3)))
    return y.astype(np.float16).astype(np.float64)


if __name__ == "__main__":
    unittest.main()
