"""rope-dump on Gemma 3 (issue 14, step 2): a six-layer random model (gemma3_model.py) with five
sliding-window layers on the local RoPE base 10⁴ and a sixth, global, on base 10⁶ with linear
scaling by 8, q/k norms, gemma2's four norms. rope-dump on the HF directory (three config styles)
and on the GGUF must give the NLL and hook_rot_q of an independent numpy forward and of llama.cpp
(1e-3 nats per token at F32), and controls with one schedule for all layers, without the q/k
norms, or with every layer global must not."""
import json
import os
import sys
import unittest

import h5py
import numpy as np

import gemma3_model as g3
from llama_cpp import llama_cpp_logprobs, require_oracle
from ropekit_test import TempDirTest, run

TOLERANCE = 1e-3  # nats per token, against llama.cpp at F32
NUMPY_TOLERANCE = 1e-4  # nats per token, float32 rope-dump against the float64 numpy forward
LENGTH = 40  # tokens per sequence: five times the window of 8
CONTROLS = ({"schedules": "global"}, {"schedules": "local"}, {"qk_norm": False},
            {"all_global": True})
LOCAL = [True] * 5 + [False]  # layer 5 is the global one ((l + 1) % 6 == 0)


def rope_half(v, g):
    """transformers' rotate_half RoPE of v [B, T, heads, hd] at positions 0.. (float64)."""
    angle = np.arange(v.shape[1])[:, None] * g[None, :]
    cos = np.concatenate([np.cos(angle)] * 2, -1)[None, :, None, :]
    sin = np.concatenate([np.sin(angle)] * 2, -1)[None, :, None, :]
    half = v.shape[-1] // 2
    return v * cos + np.concatenate([-v[..., half:], v[..., :half]], -1) * sin


def prope(g, p):
    """The frequencies p-RoPE keeps (the highest floor(p·n)), the others 0."""
    kept = int(np.floor(p * len(g) + 1e-9))
    return np.where(np.arange(len(g)) < kept, g, 0.0)


class Gemma3Test(TempDirTest):
    def model(self, seed=0, name="gemma3-hf", **extra):
        c = g3.config(**extra)
        t = g3.tensors(c, seed)
        hf = self.path(name)
        g3.write_hf(hf, c, t)
        return c, t, hf

    def ids(self, seed=1, length=LENGTH):
        ids = np.random.default_rng(seed).integers(0, 300, size=(2, length))
        ids[:, 0] = 1
        return ids

    def dump(self, model, ids, *args, what="rot_q", name="dump.h5"):
        tokens, out = self.path("tokens.txt"), self.path(name)
        np.savetxt(tokens, ids, fmt="%d")
        run("rope-dump", model, "--tokens", tokens, "--what", what, "-o", out, "--force", *args,
            check=0)
        return h5py.File(out, "r")

    def gguf(self, c, t, name="gemma3.gguf"):
        path = self.path(name)
        g3.to_gguf(c, t, path)
        return path

    def report(self, case, difference):
        print(f"\n  gemma3 {case}: max |NLL difference| {difference:.2e} nats", file=sys.stderr,
              end="")

    def assert_controls_differ(self, got, c, t, ids, sign=-1):
        for control in CONTROLS:
            _, other = g3.forward(c, t, ids, **control)
            difference = np.abs(got + sign * other).max()
            self.report(f"control {control}", difference)
            self.assertGreater(difference, 1e-2, f"the control {control} agrees")


class Gemma3AgainstNumpy(Gemma3Test):
    def test_each_config_style_matches_numpy_and_the_controls_do_not(self):
        ids = self.ids()
        for style in ("pattern", "types", "v5"):
            with self.subTest(style=style):
                c, t, hf = self.model(style=style, name=f"hf-{style}")
                rot_q, nll = g3.forward(c, t, ids)
                with self.dump(hf, ids) as f:
                    got = f["nll"][()]
                    for layer in range(6):
                        want = rot_q[layer]
                        np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_q"][()], want,
                                                   atol=1e-4 * np.abs(want).max())
                difference = np.abs(got - nll).max()
                self.report(f"HF ({style}) against numpy", difference)
                self.assertLess(difference, NUMPY_TOLERANCE)
                self.assert_controls_differ(got, c, t, ids)

    def test_rot_q_of_a_local_and_a_global_layer_is_rope_at_its_own_base(self):
        c, _, hf = self.model()
        g_global, g_local = g3.inv_freqs(c)
        np.testing.assert_allclose(g_global[1], 1e6 ** (-2 / 32) / 8)
        with self.dump(hf, self.ids(), what="q,rot_q") as f:
            for layer, own, other in ((0, g_local, g_global), (5, g_global, g_local)):
                q, rot_q = f[f"blocks.{layer}.attn.hook_q"][()], f[f"blocks.{layer}.attn.hook_rot_q"][()]
                np.testing.assert_allclose(rot_q, rope_half(q.astype(np.float64), own),
                                           atol=1e-5 * np.abs(q).max())
                self.assertGreater(np.abs(rot_q - rope_half(q, other)).max(), 0.1 * np.abs(q).max())

    def test_the_dump_records_each_layers_schedule(self):
        c, _, hf = self.model()
        with self.dump(hf, self.ids(length=5), what="") as f:
            a = f.attrs
            self.assertEqual(a["family"], "gemma3_text")
            np.testing.assert_array_equal(a["layer_rope_theta"], [1e4] * 5 + [1e6])
            self.assertEqual(list(a["layer_rope_scaling"]), ["default"] * 5 + ["linear"])
            np.testing.assert_array_equal(a["layer_sliding_window"], [8] * 5 + [0])
            np.testing.assert_allclose(a["layer_attn_scale"], [32 ** -0.5] * 6)
            np.testing.assert_array_equal(a["layer_attn_softcap"], [0.0] * 6)
            np.testing.assert_allclose(a["rope_inv_freq"], g3.inv_freqs(c)[0], rtol=1e-12)

    def test_p_applies_to_both_schedules_and_theta_replaces_both(self):
        c, _, hf = self.model()
        g_global, g_local = g3.inv_freqs(c)
        with self.dump(hf, self.ids(length=12), "--p", "0.25", what="q,rot_q") as f:
            for layer, own in ((0, g_local), (5, g_global)):
                q = f[f"blocks.{layer}.attn.hook_q"][()].astype(np.float64)
                np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_q"][()],
                                           rope_half(q, prope(own, 0.25)), atol=1e-5 * np.abs(q).max())
            np.testing.assert_array_equal(f.attrs["layer_rope_theta"], [1e4] * 5 + [1e6])
        with self.dump(hf, self.ids(length=12), "--theta", "500", what="q,rot_q") as f:
            plain = 500.0 ** (-np.arange(0, 32, 2) / 32)
            for layer in (0, 5):
                q = f[f"blocks.{layer}.attn.hook_q"][()].astype(np.float64)
                np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_q"][()],
                                           rope_half(q, plain), atol=1e-5 * np.abs(q).max())
            np.testing.assert_array_equal(f.attrs["layer_rope_theta"], [500.0] * 6)
            self.assertEqual(list(f.attrs["layer_rope_scaling"]), ["default"] * 6)

    def test_query_pre_attn_scalar_other_than_head_dim(self):
        # llama.cpp ignores query_pre_attn_scalar except at 27B's 62 layers: numpy's alone.
        c, t, hf = self.model(query_pre_attn_scalar=24)
        ids = self.ids()
        _, nll = g3.forward(c, t, ids)
        with self.dump(hf, ids, what="") as f:
            got = f["nll"][()]
            np.testing.assert_allclose(f.attrs["layer_attn_scale"], [24 ** -0.5] * 6)
        self.assertLess(np.abs(got - nll).max(), NUMPY_TOLERANCE)
        _, other = g3.forward(dict(c, query_pre_attn_scalar=32), t, ids)
        self.assertGreater(np.abs(got - other).max(), 1e-2)

    def test_refusals(self):
        cases = (  # (config change, key the message names)
            ({"model_type": "gemma3", "text_config": {}}, "gemma3_text"),
            ({"layer_types": ["sliding_attention"] * 6}, "sliding_window_pattern"),
            ({"use_bidirectional_attention": True}, "use_bidirectional_attention"))
        for i, (change, key) in enumerate(cases):
            with self.subTest(change=change):
                _, _, hf = self.model(name=f"bad-{i}")
                path = os.path.join(hf, "config.json")
                with open(path) as f:
                    c = json.load(f)
                with open(path, "w") as f:
                    json.dump(dict(c, **change), f)
                r = run("rope-dump", hf, "--ids", "1 2 3", "--what", "", "-o", self.path("x.h5"))
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(key, r.stderr)
                self.assertFalse(os.path.exists(self.path("x.h5")))


class Gemma3AsGguf(Gemma3Test):
    def test_the_gguf_runs_as_its_directory(self):
        c, t, hf = self.model()
        ids = self.ids()
        with self.dump(hf, ids, what="", name="hf.h5") as a, \
                self.dump(self.gguf(c, t), ids, what="", name="gguf.h5") as b:
            np.testing.assert_allclose(b["nll"][()], a["nll"][()], atol=1e-5)
            self.assertEqual(b.attrs["family"], "gemma3")
            for key in ("rope_inv_freq", "layer_rope_theta", "layer_sliding_window"):
                np.testing.assert_allclose(b.attrs[key], a.attrs[key], rtol=1e-6)
            self.assertEqual(list(b.attrs["layer_rope_scaling"]), list(a.attrs["layer_rope_scaling"]))


    def test_a_gguf_with_rope_freqs_is_refused(self):
        # llama.cpp's gemma3 graph passes no frequency factors: such a file would run unscaled.
        c, t, _ = self.model()
        factors = np.ones(16, dtype=np.float32)
        path = self.path("freqs.gguf")
        g3.to_gguf(c, t, path, extra_tensors=[("rope_freqs.weight", (16,), 0, factors.tobytes())])
        r = run("rope-dump", path, "--ids", "1 2 3", "--what", "", "-o", self.path("x.h5"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("rope_freqs.weight: llama.cpp's gemma3 ignores this tensor", r.stderr)


class Gemma3AgainstLlamaCpp(Gemma3Test):
    @classmethod
    def setUpClass(cls):
        require_oracle()

    def test_llama_cpp_agrees_with_rope_dump_and_not_with_the_controls(self):
        c, t, hf = self.model()
        gguf = self.gguf(c, t)
        ids = self.ids()
        got = llama_cpp_logprobs(gguf, ids, self.tmp)
        for model in (hf, gguf):
            with self.dump(model, ids, what="") as f:
                difference = float(np.abs(got + f["nll"][()]).max())
            self.report(f"{os.path.basename(model)} against llama.cpp", difference)
            self.assertLess(difference, TOLERANCE)
        self.assert_controls_differ(got, c, t, ids, sign=1)

    def test_without_a_window_key_llama_cpp_and_rope_dump_run_every_layer_global(self):
        # The trap: a GGUF without gemma3.attention.sliding_window (the converter leaves it out
        # for sliding_window_pattern 1) runs every layer as a global one in llama.cpp.
        c, t, _ = self.model()
        gguf = self.gguf(dict(c, sliding_window_pattern=1), t, name="global.gguf")
        ids = self.ids()
        got = llama_cpp_logprobs(gguf, ids, self.tmp)
        _, everywhere = g3.forward(c, t, ids, all_global=True)
        self.report("GGUF without the window key: llama.cpp against all-global numpy",
                    np.abs(got + everywhere).max())
        self.assertLess(np.abs(got + everywhere).max(), TOLERANCE)
        with self.dump(gguf, ids, what="") as f:
            self.assertLess(np.abs(got + f["nll"][()]).max(), TOLERANCE)
            np.testing.assert_array_equal(f.attrs["layer_sliding_window"], [0] * 6)
            np.testing.assert_array_equal(f.attrs["layer_rope_theta"], [1e6] * 6)
        _, two = g3.forward(c, t, ids)
        self.assertGreater(np.abs(got + two).max(), 1e-2)

    def test_another_window_pattern_needs_its_key_in_the_gguf(self):
        # The converter writes no sliding_window_pattern: llama.cpp then assumes 6, so a
        # pattern-3 model converted as is runs with the wrong pattern in both llama.cpp and
        # rope-dump; with gemma3.attention.sliding_window_pattern written they match the HF one.
        c, t, hf = self.model(sliding_window_pattern=3)
        ids = self.ids()
        _, want = g3.forward(c, t, ids)
        with self.dump(hf, ids, what="", name="hf.h5") as f:
            self.assertLess(np.abs(f["nll"][()] - want).max(), NUMPY_TOLERANCE)
            np.testing.assert_array_equal(f.attrs["layer_sliding_window"], [8, 8, 0] * 2)
        as_converted = self.gguf(c, t, name="converted.gguf")
        got = llama_cpp_logprobs(as_converted, ids, self.tmp)
        self.report("pattern 3, GGUF without the pattern key: llama.cpp against numpy",
                    np.abs(got + want).max())
        self.assertGreater(np.abs(got + want).max(), 1e-2)
        keyed = self.path("keyed.gguf")
        g3.to_gguf(c, t, keyed, extra_kvs=[("gemma3.attention.sliding_window_pattern", g3.U32, 3)])
        got = llama_cpp_logprobs(keyed, ids, self.tmp)
        self.report("pattern 3, GGUF with the key: llama.cpp against numpy", np.abs(got + want).max())
        self.assertLess(np.abs(got + want).max(), TOLERANCE)
        with self.dump(keyed, ids, what="", name="keyed.h5") as f:
            self.assertLess(np.abs(got + f["nll"][()]).max(), TOLERANCE)
            np.testing.assert_array_equal(f.attrs["layer_sliding_window"], [8, 8, 0] * 2)

    def test_at_62_layers_llama_cpp_scales_by_dim_over_heads(self):
        # llama.cpp's 27B rule: 1/sqrt(dim / heads) = 1/4 here, whatever query_pre_attn_scalar says
        # (the file does not carry it); the HF config says 16 to match.
        c, t, hf = self.model(layers=62, query_pre_attn_scalar=16)
        gguf = self.gguf(c, t)
        ids = self.ids(length=16)
        got = llama_cpp_logprobs(gguf, ids, self.tmp)
        for model in (hf, gguf):
            with self.dump(model, ids, what="") as f:
                difference = np.abs(got + f["nll"][()]).max()
                self.report(f"62 layers, {os.path.basename(model)} against llama.cpp", difference)
                self.assertLess(difference, TOLERANCE)
                np.testing.assert_allclose(f.attrs["layer_attn_scale"], [0.25] * 62)
        _, other = g3.forward(dict(c, query_pre_attn_scalar=32), t, ids)
        self.assertGreater(np.abs(got + other).max(), 1e-2)


class Gemma3PropeConvert(Gemma3Test):
    def test_converted_directory_runs_as_rope_dump_p_on_the_original(self):
        ids = self.ids()
        for style in ("pattern", "types", "v5"):
            c, _, hf = self.model(style=style, name=f"hf-{style}")
            with self.dump(hf, ids, "--p", "0.5", name="p.h5") as f:
                want, want_rot = f["nll"][()], [f[f"blocks.{l}.attn.hook_rot_q"][()] for l in (0, 5)]
            with self.dump(hf, ids, name="plain.h5") as f:
                plain = f["nll"][()]
            for encoding, extra in (("longrope", ()), ("proportional", ())):
                with self.subTest(style=style, encoding=encoding):
                    out = self.path(f"{style}-{encoding}")
                    r = run("prope-convert", hf, "--p", "0.5", "--encoding", encoding, "-o", out,
                            *extra, check=0)
                    self.assertIn("full_attention: kept 8 of 16", r.stderr)
                    self.assertIn("sliding_attention: kept 8 of 16", r.stderr)
                    with open(os.path.join(out, "config.json")) as f:
                        written = json.load(f)
                    self.assertEqual(set(written["rope_parameters"]),
                                     {"full_attention", "sliding_attention"})
                    self.assertNotIn("rope_scaling", written)
                    with self.dump(out, ids, name="converted.h5") as f:
                        got = f["nll"][()]
                        for layer, rot in zip((0, 5), want_rot):
                            np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_q"][()],
                                                       rot, atol=1e-5 * np.abs(rot).max())
                        np.testing.assert_array_equal(f.attrs["layer_rope_theta"],
                                                      [1e4] * 5 + [1e6])
                    self.assertLess(np.abs(got - want).max(), 1e-5)
                    self.assertGreater(np.abs(got - plain).max(), 1e-2)  # p-RoPE changed it

    def test_reverse_and_the_refusals(self):
        c, _, hf = self.model()
        ids = self.ids(length=12)
        out = self.path("reverse")
        run("prope-convert", hf, "--p", "0.25", "--reverse", "--encoding", "longrope", "-o", out,
            check=0)
        with self.dump(hf, ids, "--p", "0.25", "--reverse", what="", name="a.h5") as a, \
                self.dump(out, ids, what="", name="b.h5") as b:
            self.assertLess(np.abs(a["nll"][()] - b["nll"][()]).max(), 1e-5)
        # llama3 keeps only unscaled frequencies: the global layers' linear 8 is refused.
        r = run("prope-convert", hf, "--p", "0.5", "--encoding", "llama3", "-o", self.path("l3"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("full_attention: kept frequency 0 is scaled", r.stderr)
        self.assertFalse(os.path.exists(self.path("l3")))
        # llama.cpp's gemma3 graph reads no rope_freqs.weight: a GGUF cannot carry p-RoPE.
        _, t, _ = self.model(name="for-gguf")
        r = run("prope-convert", self.gguf(c, t), "--p", "0.5", "-o", self.path("p.gguf"))
        self.assertEqual(r.returncode, 1)
        self.assertIn('llama.cpp\'s "gemma3" ignores rope_freqs.weight', r.stderr)
        self.assertFalse(os.path.exists(self.path("p.gguf")))


if __name__ == "__main__":
    unittest.main()
