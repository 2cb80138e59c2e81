"""prope-convert on gpt_neox (Pythia, issue 14): p applies to the rotated part (rotary_pct of each
head), which transformers and rope-dump read from rotary_pct / rotary_emb_base (v4) or
rope_parameters (v5). The converted directory must run in rope-dump exactly as the original with
--p, and as the numpy forward with the dropped frequencies at 0; a gptneox GGUF is refused, since
llama.cpp's gptneox graph never reads rope_freqs.weight."""
import json
import os
import unittest

import h5py
import numpy as np

import model_families as mf
from gguf_writer import read_safetensors
from ropekit_test import TempDirTest, run

IDS = "1 5 9 2 7 7 3 11 4 6 8 1 13 17 2 5"
# head_dim 16. v4 as Pythia: rotary_pct 0.25 -> 4 rotated dims, 2 frequencies, --p 0.5 keeps 1.
# v5 with 0.5 (not v5's default 0.25, so that losing it shows): 8 dims, 4 frequencies, keeps 2.
V4 = {}
V5 = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                          "partial_rotary_factor": 0.5}, "transformers_version": "5.0.0"}
STYLES = (("v4", V4, 0.25), ("v5", V5, 0.5))


class NeoxToPRope(TempDirTest):
    def model(self, name, **extra):
        c = mf.config("gpt_neox", **extra)
        if "rope_parameters" in extra:  # v5 saves no rotary_pct / rotary_emb_base
            del c["rotary_pct"], c["rotary_emb_base"]
        t = mf.tensors(c, 3)
        path = self.path(name)
        mf.write_hf(path, c, t)
        return c, t, path

    def dump(self, model, name, *options):
        out = self.path(name)
        r = run("rope-dump", model, "--ids", IDS, "--what", "rot_q,rot_k", "-o", out, *options)
        self.assertEqual(r.returncode, 0, r.stderr)
        return h5py.File(out, "r")

    def convert(self, src, name, *options, pairs=2):
        out = self.path(name)
        r = run("prope-convert", src, "--p", "0.5", "-o", out, *options)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"kept {pairs // 2} of {pairs} frequencies", r.stderr)
        with open(os.path.join(out, "config.json")) as f:
            return out, json.load(f)

    def assert_same_run(self, a, b):
        np.testing.assert_allclose(b["nll"][()], a["nll"][()], rtol=1e-5, atol=1e-6)
        for layer in range(2):
            for hook in ("hook_rot_q", "hook_rot_k"):
                name = f"blocks.{layer}.attn.{hook}"
                np.testing.assert_allclose(b[name][()], a[name][()], rtol=1e-5, atol=1e-5)

    def test_converted_runs_as_the_original_with_p_on_the_rotated_part(self):
        for style, extra, factor in STYLES:
            c, t, src = self.model(f"{style}-model", **extra)
            ids = np.array([[int(i) for i in IDS.split()]])
            pairs = int(16 * factor) // 2
            _, exact = mf.forward(mf.config("gpt_neox", rotary_pct=factor), t, ids,
                                  kept=pairs // 2)
            with self.dump(src, f"{style}-want.h5", "--p", "0.5") as want, \
                    self.dump(src, f"{style}-original.h5") as original:
                self.assertLess(np.abs(want["nll"][()] - exact).max(), 1e-4)
                # control: the unconverted model
                self.assertGreater(np.abs(original["nll"][()] - exact).max(), 1e-2)
                for encoding in ("llama3", "longrope"):
                    with self.subTest(style=style, encoding=encoding):
                        out, cfg = self.convert(src, f"{style}-{encoding}", "--encoding", encoding,
                                                pairs=pairs)
                        if style == "v4":  # rotary_pct stays what transformers v4 reads
                            self.assertEqual(cfg["rotary_pct"], 0.25)
                            self.assertEqual(cfg["rope_scaling"]["rope_type"], encoding)
                        else:  # v5 reads partial_rotary_factor from the dict it replaced
                            self.assertEqual(cfg["rope_parameters"]["partial_rotary_factor"], 0.5)
                        if encoding == "longrope":
                            self.assertEqual(len(cfg["rope_" + ("scaling" if style == "v4" else
                                                                "parameters")]["short_factor"]),
                                             pairs)
                        with self.dump(out, f"{style}-{encoding}.h5") as got:
                            self.assertEqual(got.attrs["rotary_dim"], 2 * pairs)
                            g = got.attrs["rope_inv_freq"]
                            kept = want.attrs["rope_inv_freq"][:pairs // 2]
                            np.testing.assert_allclose(g[:pairs // 2], kept, rtol=1e-12)
                            self.assertLess(np.abs(g[pairs // 2:]).max(), 1e-30)
                            self.assert_same_run(want, got)

    def test_theta_rebases_rotary_emb_base_too(self):
        _, _, src = self.model("model")
        out, cfg = self.convert(src, "rebased", "--theta", "500")
        self.assertEqual(cfg["rotary_emb_base"], 500)  # what GPTNeoXConfig v4 reads
        with self.dump(src, "want.h5", "--p", "0.5", "--theta", "500") as want, \
                self.dump(out, "got.h5") as got:
            self.assertAlmostEqual(float(got.attrs["rope_theta"]), 500.0)
            self.assert_same_run(want, got)

    def test_saved_inv_freq_buffers_are_rewritten(self):
        # Pythia's checkpoints carry each layer's rotary_emb.inv_freq (rotary_dim / 2 entries),
        # which transformers versions that load them use instead of the config.
        c = mf.config("gpt_neox")
        t = mf.tensors(c, 3)
        saved = np.array([1.0, 0.01], dtype=np.float32)  # 10000^(-2k/4)
        for layer in range(2):
            t[f"gpt_neox.layers.{layer}.attention.rotary_emb.inv_freq"] = saved
        src = self.path("model")
        mf.write_hf(src, c, t)
        with self.dump(src, "want.h5", "--p", "0.5") as want:
            out, _ = self.convert(src, "converted")
            with self.dump(out, "got.h5") as got:
                self.assert_same_run(want, got)
        rewritten = read_safetensors(os.path.join(out, "model.safetensors"))
        for layer in range(2):
            g = rewritten[f"gpt_neox.layers.{layer}.attention.rotary_emb.inv_freq"]
            self.assertEqual(g[0], 1.0)
            self.assertLess(abs(g[1]), 1e-30)
        np.testing.assert_array_equal(rewritten["embed_out.weight"], t["embed_out.weight"])

    def test_proportional_and_gguf_are_refused(self):
        c, t, src = self.model("model")
        r = run("prope-convert", src, "--p", "0.5", "--encoding", "proportional", "-o",
                self.path("p"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("partial rotary (rotary_dim 4 of head_dim 16)", r.stderr)
        gguf = self.path("m.gguf")
        mf.to_gguf(c, t, gguf)
        r = run("prope-convert", gguf, "--p", "0.5", "-o", self.path("p.gguf"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("general.architecture: llama.cpp's \"gptneox\" ignores rope_freqs.weight",
                      r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["m.gguf", "model"])


if __name__ == "__main__":
    unittest.main()
