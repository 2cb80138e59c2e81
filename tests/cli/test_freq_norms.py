"""freq-norms against numpy on dumps written by h5py (TransformerLens names), f32/f16, GQA,
half and interleaved layouts, other axis orders, pipes and bad inputs."""
import os
import subprocess
import unittest

import h5py
import numpy as np

from dump_fixtures import chunk_norms, random_qk, rotate, write_dump
from ropekit_test import TempDirTest, pipe, run, tool_path


class FreqNorms(TempDirTest):
    def make(self, name="dump.h5", dtype=np.float32, layout="half", layers=2, heads=4, kv_heads=2,
             dim=16, batch=2, tokens=12, post_rope=False, **kw):
        rng = np.random.default_rng(7)
        data = []
        for _ in range(layers):
            q, k = random_qk(rng, batch, tokens, heads, kv_heads, dim)
            hooks = {"hook_q": q, "hook_k": k}
            if post_rope:
                pos = np.arange(tokens)
                hooks = {"hook_rot_q": np.stack([rotate(q[b], pos, 1e4, layout) for b in range(batch)]),
                         "hook_rot_k": np.stack([rotate(k[b], pos, 1e4, layout) for b in range(batch)])}
            data.append(hooks)
        path = self.path(name)
        write_dump(path, data, dtype=dtype, layout=layout, **kw)
        # the reference reads back exactly what is stored (f16 rounding included)
        with h5py.File(path) as f:
            stored = {}
            for L in range(layers):
                for h in data[L]:
                    stored[(L, h)] = f[f"blocks.{L}.attn.{h}"][...].astype(np.float64)
        return path, stored

    def norms(self, out):
        with h5py.File(out) as f:
            return {k: f[k][...] for k in f}, dict(f.attrs), {k: [d.label for d in f[k].dims] for k in f}

    def assertClose(self, got, want):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)

    def check(self, layout, dtype):
        path, stored = self.make(layout=layout, dtype=dtype)
        out = self.path("norms.h5")
        r = run("freq-norms", path, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        got, attrs, labels = self.norms(out)
        for L in range(2):
            self.assertClose(got["q_norms"][L], chunk_norms(stored[(L, "hook_q")], layout))
            self.assertClose(got["k_norms"][L], chunk_norms(stored[(L, "hook_k")], layout))
        self.assertEqual(got["q_norms"].shape, (2, 4, 8))
        self.assertEqual(got["k_norms"].shape, (2, 2, 8))  # GQA: 2 kv heads
        self.assertClose(got["layer_q_norms"], got["q_norms"].mean(axis=1))
        np.testing.assert_allclose(got["frequency"], 1e4 ** (-np.arange(8) / 8), rtol=1e-12)
        self.assertEqual(labels["q_norms"], ["layer", "head", "freq"])
        self.assertEqual(labels["k_norms"], ["layer", "kv_head", "freq"])
        self.assertEqual(list(got["layer"]), [0, 1])
        self.assertEqual(attrs["rope_layout"], layout)
        self.assertIn("freq-norms", attrs["history"])
        return r

    def test_half_f32(self):
        self.check("half", np.float32)

    def test_threads_change_no_bit_and_help_says_so(self):
        path, _ = self.make(layers=3)
        outputs = []
        for threads in (1, 2, 3):
            out = self.path(f"t{threads}.h5")
            r = run("freq-norms", path, "--threads", threads, "-o", out, "-q", check=0)
            with h5py.File(out) as f:
                outputs.append((r.stdout, {k: f[k][...] for k in f}))
        for stdout, data in outputs[1:]:
            self.assertEqual(stdout, outputs[0][0])
            for key, value in outputs[0][1].items():
                np.testing.assert_array_equal(data[key], value, err_msg=key)
        help_text = " ".join(run("freq-norms", "--help", check=0).stdout.split())
        self.assertIn("the result is the same at any count", help_text)

    def test_interleaved_f16(self):
        self.check("interleaved", np.float16)

    def test_layout_matters(self):
        # the same data read with the other layout gives different norms: the test can fail
        path, stored = self.make(layout="half")
        out = self.path("n.h5")
        run("freq-norms", path, "-o", out, "--layout", "interleaved", check=0)
        got, _, _ = self.norms(out)
        self.assertClose(got["q_norms"][0], chunk_norms(stored[(0, "hook_q")], "interleaved"))
        self.assertFalse(np.allclose(got["q_norms"][0], chunk_norms(stored[(0, "hook_q")], "half")))

    def test_post_rope_only_gives_the_same_norms(self):
        path, stored = self.make(post_rope=True, layout="interleaved")
        out = self.path("n.h5")
        run("freq-norms", path, "-o", out, check=0)
        got, _, _ = self.norms(out)
        self.assertClose(got["q_norms"][1], chunk_norms(stored[(1, "hook_rot_q")], "interleaved"))

    def test_layers_select_among_post_rope_hooks_when_the_dump_has_only_those(self):
        # --layers indexes the layers the norms are read from: with only hook_rot_q/hook_rot_k in
        # the dump, those (it was resolved against hook_q, found none, and was ignored).
        path, stored = self.make(layers=3, post_rope=True)
        out = self.path("n.h5")
        run("freq-norms", path, "-o", out, "--layers", "-1", check=0)
        got, _, _ = self.norms(out)
        self.assertEqual(list(got["layer"]), [2])
        self.assertEqual(got["q_norms"].shape, (1, 4, 8))
        self.assertClose(got["q_norms"][0], chunk_norms(stored[(2, "hook_rot_q")], "half"))
        self.assertClose(got["k_norms"][0], chunk_norms(stored[(2, "hook_rot_k")], "half"))
        r = run("freq-norms", path, "-o", self.path("n99.h5"), "--layers", "99")
        self.assertOneLineError(r, 2, "--layers", "99")
        self.assertFalse(os.path.exists(self.path("n99.h5")))

    def test_exclude_bos_layers_and_summary(self):
        path, stored = self.make(layers=3)
        out = self.path("n.h5")
        r = run("freq-norms", path, "-o", out, "--exclude-bos", "--layers", "-1", "--tensor", "q",
                check=0)
        got, attrs, _ = self.norms(out)
        self.assertEqual(list(got["layer"]), [2])
        self.assertNotIn("k_norms", got)
        want = chunk_norms(stored[(2, "hook_q")], "half", exclude_bos=True)
        self.assertClose(got["q_norms"][0], want)
        self.assertEqual(attrs["positions_averaged"], 2 * 11)
        lines = r.stdout.strip().split("\n")
        self.assertEqual(lines[0].split("\t"), ["tensor", "layer", "head", "top_quarter_share", "bands"])
        self.assertEqual(len(lines), 1 + 4)
        for line, head in zip(lines[1:], range(4)):
            cols = line.split("\t")
            self.assertEqual(cols[:3], ["q", "2", str(head)])
            share = want[head, :2].sum() / want[head].sum()  # top quarter of 8 = 2 frequencies
            self.assertAlmostEqual(float(cols[3]), share, places=4)

    def test_other_axis_orders_and_names(self):
        rng = np.random.default_rng(3)
        q, k = random_qk(rng, 1, 10, 4, 4, 8)
        for axes in (("pos", "head", "dim"), ("head", "pos", "dim"), ("batch", "head", "pos", "dim")):
            with self.subTest(axes=axes):
                path = self.path("ax.h5")
                write_dump(path, [{"hook_q": q}], axes=axes, name="model.layers.{layer}.self_attn.{hook}")
                out = self.path("ax-n.h5")
                run("freq-norms", path, "-o", out, "--force", "--tensor", "q", "--axes", ",".join(axes),
                    "--name", "model.layers.{layer}.self_attn.{hook}", check=0)
                got, _, _ = self.norms(out)
                self.assertClose(got["q_norms"][0], chunk_norms(q.astype(np.float32), "half"))
        # one tensor per layer, named by a template without {hook}
        path = self.path("one.h5")
        with h5py.File(path, "w") as f:
            f["layers.0.q"] = q[0].astype(np.float32)
            f["layers.1.q"] = (2 * q[0]).astype(np.float32)
        out = self.path("one-n.h5")
        run("freq-norms", path, "-o", out, "--tensor", "q", "--axes", "pos,head,dim",
            "--name", "layers.{layer}.q", check=0)
        got, _, _ = self.norms(out)
        self.assertClose(got["q_norms"][1], 2 * chunk_norms(q.astype(np.float32), "half"))

    def test_in_place_and_hdf5_reads_agree_exactly(self):
        # h5py writes contiguous datasets (read in place, through a mapping); a chunked, gzip
        # copy and the same bytes through a pipe go through HDF5. The norms are bit-identical.
        for dtype in (np.float32, np.float16):
            # d = 64: 32 chunks, so f16 also takes the widen-in-registers kernel (AVX-512)
            path, stored = self.make(dtype=dtype, tokens=40, dim=64)
            chunked = self.path("chunked.h5")
            with h5py.File(path) as src, h5py.File(chunked, "w") as dst:
                for key, value in src.attrs.items():
                    dst.attrs[key] = value
                for name in src:
                    dst.create_dataset(name, data=src[name][...], chunks=True, compression="gzip")
                self.assertIsNone(src["blocks.0.attn.hook_q"].chunks)
            outs = {}  # which reader each run takes: tests/cli/test_read_in_place.py
            for label, source in (("mapped", path), ("chunked", chunked)):
                outs[label] = self.path(label + "-norms.h5")
                run("freq-norms", source, "-o", outs[label], "--exclude-bos", "-q", "--force", check=0)
            with open(path, "rb") as f:
                r = run("freq-norms", "-", "-o", "-", "--exclude-bos", "-q", stdin=f.read(), text=False)
            outs["pipe"] = self.path("pipe-norms.h5")
            with open(outs["pipe"], "wb") as f:
                f.write(r.stdout)
            got = {label: self.norms(out)[0] for label, out in outs.items()}
            for name in ("q_norms", "k_norms"):
                np.testing.assert_array_equal(got["mapped"][name], got["chunked"][name])
                np.testing.assert_array_equal(got["mapped"][name], got["pipe"][name])
            self.assertClose(got["mapped"]["q_norms"][1],
                             chunk_norms(stored[(1, "hook_q")][:, 1:], "half"))

    def test_pipes(self):
        path, stored = self.make()
        with open(path, "rb") as f:
            r = run("freq-norms", "-", "-o", "-", "--quiet", stdin=f.read(), text=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.path("piped.h5")
        with open(out, "wb") as f:
            f.write(r.stdout)
        got, _, _ = self.norms(out)
        self.assertClose(got["k_norms"][1], chunk_norms(stored[(1, "hook_k")], "half"))
        svg, results = pipe(["freq-norms", path, "-o", "-", "-q"], ["rope-plot", "-:layer_q_norms", "-o", "-"])
        self.assertTrue(all(code == 0 for code, _ in results), results)
        self.assertIn(b"<svg", svg)

    def test_plots(self):
        path, _ = self.make()
        prefix = self.path("fig")
        run("freq-norms", path, "-o", self.path("n.h5"), "--plot", prefix, check=0)
        for name in ("q-layers", "k-layers", "q-layer0", "q-layer1", "k-layer0", "k-layer1"):
            self.assertTrue(os.path.exists(f"{prefix}-{name}.svg"), name)
        # the plots refuse to overwrite, like every output
        r = run("freq-norms", path, "-o", self.path("n2.h5"), "--plot", prefix, "-q")
        self.assertOneLineError(r, 2, "fig-q-layers.svg")
        self.assertFalse(os.path.exists(self.path("n2.h5")))

    def test_bad_inputs(self):
        out = self.path("bad.h5")
        bad = self.path("bad_in.h5")
        rng = np.random.default_rng(0)
        cases = [
            ("missing", {"something": np.zeros(3, np.float32)}, 1, "no layers found"),
            ("rank", {"blocks.0.attn.hook_q": np.zeros((2, 3, 4), np.float32)}, 1, "expected rank 4"),
            ("int", {"blocks.0.attn.hook_q": np.zeros((1, 3, 2, 4), np.int32)}, 1, "int"),
            ("zero", {"blocks.0.attn.hook_q": np.zeros((1, 0, 2, 4), np.float32)}, 1, "length 0"),
            ("kv", {"blocks.0.attn.hook_q": rng.normal(size=(1, 3, 4, 4)).astype(np.float32),
                    "blocks.0.attn.hook_k": rng.normal(size=(1, 3, 3, 4)).astype(np.float32)}, 1,
             "3 kv heads do not divide the 4 query heads"),
            ("pos", {"blocks.0.attn.hook_q": rng.normal(size=(1, 3, 4, 4)).astype(np.float32),
                     "blocks.0.attn.hook_k": rng.normal(size=(1, 5, 2, 4)).astype(np.float32)}, 1,
             "positions"),
            ("odd", {"blocks.0.attn.hook_q": rng.normal(size=(1, 3, 2, 5)).astype(np.float32)}, 1, "odd"),
        ]
        nan = rng.normal(size=(2, 4, 2, 4)).astype(np.float32)
        nan[1, 2, 1, 3] = np.nan
        cases.append(("nan", {"blocks.0.attn.hook_q": nan}, 1, "NaN at batch 1, pos 2, head 1, dim 3"))
        for label, datasets, code, fragment in cases:
            with self.subTest(label):
                with h5py.File(bad, "w") as f:
                    for k, v in datasets.items():
                        f[k] = v
                r = run("freq-norms", bad, "-o", out, "--tensor", "both" if label in ("kv", "pos") else "q")
                self.assertOneLineError(r, code, "freq-norms: ", fragment)
                self.assertFalse(os.path.exists(out))
        r = run("freq-norms", bad, "-o", out, "--axes", "pos,head")
        self.assertOneLineError(r, 2, "--axes")
        r = run("freq-norms", bad, "-o", out, "--tensor", "v")
        self.assertOneLineError(r, 2, "--tensor")


if __name__ == "__main__":
    unittest.main()
