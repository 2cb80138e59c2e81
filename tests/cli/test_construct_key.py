"""construct-key against numpy: the rotated key, its logit curve, and the constructed heads."""
import io
import json
import unittest

import h5py
import numpy as np

from ropekit_test import TempDirTest, pipe, run
from test_rope_decay import inv_freq, rotate_half


def offset_curve(q, k, theta, n):
    """q^T R^(-o) k for o = 0..n-1, by rotating k explicitly (half-split layout)."""
    g = inv_freq(len(q), theta)
    o = np.arange(n)[:, None]
    return rotate_half(np.broadcast_to(k, (n, len(k))), -o * g) @ q


def minimal_scale(unit_logits, offset, eps):
    """Bisection on the last row's exact softmax weight on the target."""
    lo, hi = 0.0, 1e5
    for _ in range(200):
        mid = (lo + hi) / 2
        alpha = 1 / np.exp(mid * (unit_logits - unit_logits[offset])).sum()
        lo, hi = (lo, mid) if alpha >= 1 - eps else (mid, hi)
    return hi


class ConstructKey(TempDirTest):
    def test_key_peaks_at_the_offset_like_numpy(self):
        out = self.path("k.h5")
        run("construct-key", "--query-random", 3, "--head-dim", 32, "--theta", 1e4,
            "--offset", 7, "--tokens", 600, "-o", out, "-q", check=0)
        with h5py.File(out, "r") as f:
            q, k = f["query"][:], f["key"][:]
            g = inv_freq(32, 1e4)
            np.testing.assert_allclose(k, rotate_half(q, 7 * g), atol=1e-12)
            expected = offset_curve(q, k, 1e4, 600)
            np.testing.assert_allclose(f["logit"][:], expected, atol=1e-9)
            np.testing.assert_array_equal(f["offset"][:], np.arange(600))
            self.assertEqual(f.attrs["argmax_offset"], 7)
            self.assertEqual(np.argmax(expected), 7)
            runner = np.sort(expected)[-2]
            self.assertAlmostEqual(f.attrs["margin"], 1 - runner / expected[7], places=12)
            self.assertAlmostEqual(f.attrs["peak"], float(q @ q), places=9)

    def test_highest_frequency_chunks_give_the_sharpest_peak(self):
        margins = {}
        for spec in ("top:8", "bottom:8", "1-4"):
            out = self.path(spec.replace(":", "") + ".h5")
            run("construct-key", "--query-ones", "--offset", 3, "--chunks", spec, "-o", out,
                "-q", check=0)
            with h5py.File(out, "r") as f:
                margins[spec] = f.attrs["margin"]
                q = f["query"][:]
                if spec == "1-4":  # half split: chunk c (1-based) is dims (c-1, c-1+128)
                    kept = [0, 1, 2, 3, 128, 129, 130, 131]
                    np.testing.assert_array_equal(np.flatnonzero(q), kept)
                self.assertEqual(f.attrs["chunks"], spec)
        self.assertGreater(margins["top:8"], 100 * margins["bottom:8"])
        # Fewer chunks do not always help: 4 frequencies realign somewhere within 8192 tokens.
        self.assertGreater(margins["1-4"], 100 * margins["bottom:8"])

    def test_interleaved_layout_is_the_same_construction_after_the_dim_permutation(self):
        q = np.random.default_rng(9).standard_normal(16)
        perm = np.empty(16, dtype=int)  # interleaved dim 2c <- half dim c, 2c + 1 <- c + 8
        perm[0::2], perm[1::2] = np.arange(8), np.arange(8) + 8
        src = self.path("q.h5")
        with h5py.File(src, "w") as f:
            f["half"], f["interleaved"] = q, q[perm]
        results = {}
        for layout in ("half", "interleaved"):
            out = self.path(f"{layout}.h5")
            run("construct-key", "--query", f"{src}:{layout}", "--head-dim", 16, "--offset", 4,
                "--tokens", 100, "--layout", layout, "-o", out, "-q", check=0)
            with h5py.File(out, "r") as f:
                results[layout] = (f["logit"][:], f["key"][:], f.attrs["rope_layout"])
        np.testing.assert_allclose(results["interleaved"][0], results["half"][0], atol=1e-9)
        np.testing.assert_allclose(results["interleaved"][1], results["half"][1][perm], atol=1e-12)
        self.assertEqual(results["interleaved"][2], "interleaved")
        self.assertEqual(int(np.argmax(results["interleaved"][0])), 4)

    def test_query_from_a_file_row(self):
        src = self.path("q.h5")
        rows = np.random.default_rng(5).standard_normal((2, 3, 16)).astype(np.float16)
        with h5py.File(src, "w") as f:
            f["hook_q"] = rows
        out = self.path("k.h5")
        run("construct-key", "--query", f"{src}:hook_q", "--row", 4, "--head-dim", 16,
            "--offset", 2, "--tokens", 50, "-o", out, "-q", check=0)
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["query"][:], rows.reshape(-1, 16)[4].astype(np.float64))
            self.assertEqual(f.attrs["argmax_offset"], 2)
        r = run("construct-key", "--query", f"{src}:hook_q", "--row", 6, "--head-dim", 16,
                "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, "hook_q", "row")

    def test_papers_diagonal_head_scales(self):
        # paper.md: equal chunk norms, d=256, theta=1e4, N=8192, no 1/sqrt(d).
        g = inv_freq(256, 1e4)
        unit = np.cos(np.outer(np.arange(8192), g)).mean(axis=1)  # psi_hat^T R^(-o) psi_hat
        for eps, smallest, bound in [(0.1, 79.0, 402), (0.01, 164.9, 488), (0.001, 247.8, 571)]:
            with self.subTest(eps=eps):
                r = run("construct-key", "--query-ones", "--head", "diagonal", "--tokens", 8192,
                        "--epsilon", eps, "--no-pattern", "-o", "-", "-q", text=False, check=0)
                with h5py.File(io.BytesIO(r.stdout), "r") as f:
                    self.assertAlmostEqual(f.attrs["scale_min"], smallest, delta=0.05)
                    self.assertAlmostEqual(f.attrs["scale_bound"], bound, delta=0.5)
                    self.assertAlmostEqual(f.attrs["scale_min"], minimal_scale(unit, 0, eps),
                                           delta=1e-6 * smallest)
                    self.assertNotIn("blocks.0.attn.hook_pattern", f)

    def test_previous_head_dump_matches_numpy_attention(self):
        out = self.path("head.h5")
        n, d, eps = 300, 64, 0.02
        run("construct-key", "--query-ones", "--head", "previous", "--head-dim", d,
            "--tokens", n, "--epsilon", eps, "-o", out, "-q", check=0)
        with h5py.File(out, "r") as f:
            hooks = {h: f[f"blocks.0.attn.{h}"] for h in
                     ("hook_q", "hook_k", "hook_rot_q", "hook_rot_k", "hook_pattern",
                      "hook_attn_scores")}
            for h in ("hook_q", "hook_k", "hook_rot_q", "hook_rot_k"):
                self.assertEqual(hooks[h].shape, (1, n, 1, d))
                self.assertEqual([dim.label for dim in hooks[h].dims],
                                 ["batch", "pos", "head", "dim"])
            self.assertEqual(hooks["hook_pattern"].shape, (1, 1, n, n))
            self.assertEqual(f.attrs["rope_theta"], 1e4)
            self.assertEqual(f.attrs["rope_layout"], "half")
            self.assertEqual(f.attrs["bos"], 0)
            self.assertEqual(f.attrs["head_offset"], 1)
            self.assertAlmostEqual(f.attrs["attn_scale"], 1 / np.sqrt(d))
            self.assertEqual(f.attrs["scale"], "sqrt")
            q = hooks["hook_q"][0, :, 0].astype(np.float64)
            k = hooks["hook_k"][0, :, 0].astype(np.float64)
            g = inv_freq(d, 1e4)
            pos = np.arange(n)[:, None]
            # Keys are R^1 psi, queries psi; post-RoPE vectors are R^i of the pre-RoPE ones.
            np.testing.assert_allclose(k, rotate_half(q, 1 * g), atol=1e-3)
            rq, rk = rotate_half(q, pos * g), rotate_half(k, pos * g)
            np.testing.assert_allclose(hooks["hook_rot_q"][0, :, 0], rq, atol=1e-3)
            scores = (rq @ rk.T) / np.sqrt(d)
            scores[np.triu_indices(n, 1)] = -np.inf
            np.testing.assert_allclose(hooks["hook_attn_scores"][0, 0], scores, rtol=1e-5,
                                       atol=1e-3)
            pattern = np.exp(scores - scores.max(axis=1, keepdims=True))
            pattern /= pattern.sum(axis=1, keepdims=True)
            np.testing.assert_allclose(hooks["hook_pattern"][0, 0], pattern, atol=1e-5)
            target = pattern[np.arange(1, n), np.arange(0, n - 1)]
            self.assertGreaterEqual(target.min(), 1 - eps)
            self.assertLess(target.min(), 1 - eps + 1e-3)  # the smallest scale, not just any
            # Scale: numpy bisection over the exact unit logits; stored ||psi||^2 = scale*sqrt(d).
            unit = offset_curve(q[0] / np.linalg.norm(q[0]), k[0] / np.linalg.norm(k[0]), 1e4, n)
            smallest = minimal_scale(unit, 1, eps)
            self.assertAlmostEqual(f.attrs["scale_min"], smallest, delta=1e-6 * smallest)
            self.assertAlmostEqual(f.attrs["psi_norm2"], float(q[0] @ q[0]), delta=1e-3 * smallest)
            self.assertAlmostEqual(f.attrs["psi_norm2"], smallest * 1.001 * np.sqrt(d),
                                   delta=1e-6 * smallest * np.sqrt(d))

    def test_scale_none_drops_the_sqrt_d(self):
        out = self.path("head.h5")
        run("construct-key", "--query-ones", "--head", "offset:3", "--head-dim", 16,
            "--tokens", 64, "--scale", "none", "-o", out, "-q", check=0)
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["attn_scale"], 1.0)
            self.assertEqual(f.attrs["scale"], "none")
            self.assertEqual(f.attrs["head_kind"], "offset")
            p = f["blocks.0.attn.hook_pattern"][0, 0]
            self.assertTrue(np.all(p[np.arange(3, 64), np.arange(0, 61)] >= 0.99))
            self.assertAlmostEqual(f.attrs["psi_norm2"], f.attrs["scale_min"] * 1.001, places=6)

    def test_pipe_into_rope_decay_recovers_the_offset(self):
        out, results = pipe(["construct-key", "--query-ones", "--head", "offset:4", "--head-dim",
                             32, "--tokens", 32, "--no-pattern", "-o", "-", "-q"],
                            ["rope-decay", "--mode", "file", "--input", "-", "--query",
                             "blocks.0.attn.hook_q", "--key", "blocks.0.attn.hook_k",
                             "--head-dim", 32, "--max-offset", 20, "-o", "-", "-q"])
        self.assertEqual([code for code, _ in results], [0, 0], results)
        with h5py.File(io.BytesIO(out), "r") as f:
            self.assertEqual(int(np.argmax(f["activation"][:])), 4)
            self.assertIn("construct-key", f.attrs["history"])

    def test_find_positional_heads_finds_exactly_the_constructed_head(self):
        # The contract of docs/formats.md ("Constructed heads"): threshold 1 - epsilon, one head,
        # layer 0, head 0, offset R, from the stored pattern and from the post-RoPE vectors.
        for head, offset in [("diagonal", 0), ("previous", 1), ("offset:5", 5)]:
            for source in ("pattern", "qk"):
                with self.subTest(head=head, source=source):
                    out, results = pipe(
                        ["construct-key", "--query-ones", "--head", head, "--head-dim", 64,
                         "--tokens", 200, "--epsilon", 0.01, "-o", "-", "-q"],
                        ["find-positional-heads", "-", "--from", source, "--epsilon", 0.01,
                         "--format", "json", "-q"])
                    self.assertEqual([code for code, _ in results], [0, 0], results)
                    rows = json.loads(out)
                    self.assertEqual(len(rows), 1, rows)
                    self.assertEqual((rows[0]["layer"], rows[0]["head"], rows[0]["offset"]),
                                     (0, 0, offset))
                    self.assertTrue(rows[0]["positional"])
                    self.assertGreaterEqual(rows[0]["min_mass"], 0.99)

    def test_find_positional_heads_reads_the_heads_logit_scale(self):
        # A head built for unscaled logits (--scale none) records attn_scale = 1; find-positional-
        # heads uses it without being told, and only misses the head when forced to 1/sqrt(d).
        path = self.path("head.h5")
        run("construct-key", "--query-ones", "--head", "previous", "--head-dim", 64, "--tokens",
            200, "--epsilon", 0.01, "--scale", "none", "-o", path, "-q", check=0)
        for flags, positional in [([], True), (["--scale", "none"], True),
                                  (["--scale", "sqrt"], False)]:
            with self.subTest(flags=flags):
                r = run("find-positional-heads", path, "--from", "qk", "--epsilon", 0.01,
                        "--format", "json", "-q", *flags, check=0)
                rows = json.loads(r.stdout)
                self.assertEqual(rows[0]["positional"], positional, rows[0])
                if positional:
                    self.assertEqual(rows[0]["offset"], 1)

    def test_errors(self):
        self.assertOneLineError(run("construct-key", "--offset", 2, "-o", self.path("x.h5")), 2,
                                "--query")
        self.assertOneLineError(run("construct-key", "--query-ones", "--chunks", "0-3",
                                    "-o", self.path("x.h5")), 2, "--chunks")
        self.assertOneLineError(run("construct-key", "--query-ones", "--head", "next",
                                    "-o", self.path("x.h5")), 2, "--head")
        self.assertOneLineError(run("construct-key", "--query-ones", "--head", "diagonal",
                                    "--epsilon", 1.5, "-o", self.path("x.h5")), 2, "epsilon")
        self.assertOneLineError(run("construct-key", "--query", "missing.h5:q",
                                    "-o", self.path("x.h5")), 1, "missing.h5")


if __name__ == "__main__":
    unittest.main()
