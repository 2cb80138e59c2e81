"""No silent NaN or infinity in an output (issue 18). Finite inputs at the edges of their types
(about 1e19 and up, where float squares overflow; near the float32 maximum 3.4e38 and the float16
maximum 65504; subnormals; mixed scales in one vector or one file) must give finite results equal
to a numpy float64 computation, or stop with exit 1 naming where the overflow happened. Audited:
freq-norms, find-positional-heads (--from qk and --from pattern), rope-decay --mode file and
prope-convert on dumps. Every output dataset is checked finite with h5py (the -inf that scores
store above the diagonal is documented, and checked to be exactly there)."""
import math
import os
import unittest

import h5py
import numpy as np

from ropekit_test import TempDirTest, run

F32_MAX = float(np.finfo(np.float32).max)
F16_MAX = 65504.0


def scaled(rng, shape, scales, dtype=np.float32):
    """Standard normal values, each multiplied by a scale drawn from `scales`."""
    values = rng.standard_normal(shape) * rng.choice(scales, size=shape)
    return np.clip(values, -0.99 * F32_MAX, 0.99 * F32_MAX).astype(dtype)


def rotate_half(x, g, positions):
    """Half-split RoPE in float64: x [..., pos, head, d], angle = position * g."""
    d = x.shape[-1]
    angle = positions[:, None] * g[None, :]
    c, s = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def causal_softmax(scores):
    """[.., T, T] scores -> attention, in float64 (masked above the diagonal)."""
    T = scores.shape[-1]
    masked = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
    e = np.exp(masked - masked.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class ExtremeValues(TempDirTest):
    def assert_outputs_finite(self, path):
        """Every floating-point dataset finite; hook_attn_scores -inf exactly above the diagonal."""
        def check(name, obj):
            if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "fiu":
                return
            data = obj[()].astype(np.float64)
            if name.endswith("hook_attn_scores"):
                T = data.shape[-1]
                upper = np.triu(np.ones((T, T), bool), 1)
                self.assertTrue(np.all(np.isneginf(data[..., upper])), name)
                data = data[..., ~upper]
            self.assertTrue(np.isfinite(data).all(), f"{path}: {name} holds NaN or inf")
        with h5py.File(path, "r") as f:
            f.visititems(check)

    def assert_close(self, got, want, rtol=1e-6):
        """Relative to each value, with a floor relative to the largest."""
        want = np.asarray(want, np.float64)
        atol = rtol * np.max(np.abs(want)) if want.size else 0.0
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)

    def assert_close_f32(self, got, want64, rtol=1e-6):
        """A float32 output against the float64 result rounded to float32 (subnormals hold only
        absolute precision: 1.4e-45)."""
        want = np.asarray(want64, np.float64).astype(np.float32).astype(np.float64)
        atol = max(rtol * np.max(np.abs(want)), 2e-45) if want.size else 0.0
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)

    def refused(self, result, *fragments):
        self.assertOneLineError(result, 1, *fragments)
        self.assertNotIn("internal error", result.stderr)

    # ------------------------------------------------------------------ freq-norms

    def freq_norms_case(self, name, q, k):
        dump, out = self.path(name + ".h5"), self.path(name + "-norms.h5")
        with h5py.File(dump, "w") as f:
            f["blocks.0.attn.hook_q"], f["blocks.0.attn.hook_k"] = q, k
        r = run("freq-norms", dump, "-o", out, "-q", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        for row in r.stdout.splitlines()[1:]:  # the printed shares are finite too
            self.assertTrue(math.isfinite(float(row.split("\t")[3])), row)
        self.assert_outputs_finite(out)
        with h5py.File(out, "r") as f:
            for tensor, x in (("q", q), ("k", k)):
                x = x.astype(np.float64)
                half = x.shape[-1] // 2
                norms = np.sqrt(x[..., :half] ** 2 + x[..., half:] ** 2).mean(axis=(0, 1))
                self.assert_close(f[f"{tensor}_norms"][0], norms)
                self.assert_close(f[f"layer_{tensor}_norms"][0], norms.mean(axis=0))

    def test_freq_norms_near_the_float32_maximum_and_from_1e19(self):
        rng = np.random.default_rng(1)
        for scales in ([1e19], [1e30], [3e38], [1e-40], [1e-40, 1.0, 1e19, 1e30, 3e38]):
            with self.subTest(scales=scales):
                self.freq_norms_case("f32", scaled(rng, (2, 8, 2, 16), scales),
                                     scaled(rng, (2, 8, 2, 16), scales))

    def test_freq_norms_of_float16_extremes(self):
        rng = np.random.default_rng(2)
        big = np.full((1, 4, 2, 8), F16_MAX, np.float16) * rng.choice([-1, 1], (1, 4, 2, 8))
        tiny = np.full((1, 4, 2, 8), 6e-8, np.float16)  # float16 subnormals
        self.freq_norms_case("f16-big", big.astype(np.float16), tiny)

    def test_freq_norms_of_exact_zeros_and_one_huge_chunk(self):
        q = np.zeros((1, 4, 1, 8), np.float32)
        q[0, 2, 0, 1] = 3e38
        q[0, 2, 0, 5] = -3e38
        self.freq_norms_case("zeros", q, np.ones((1, 4, 1, 8), np.float32))

    # ------------------------------------------------------------------ find-positional-heads

    def heads_case(self, name, q, k, max_offset=3):
        """q, k: post-RoPE [B, T, H, D]. Checks --from qk against numpy float64."""
        dump, out = self.path(name + ".h5"), self.path(name + "-heads.h5")
        with h5py.File(dump, "w") as f:
            f["blocks.0.attn.hook_rot_q"], f["blocks.0.attn.hook_rot_k"] = q, k
        r = run("find-positional-heads", dump, "--from", "qk", "--max-offset", max_offset,
                "-o", out, "-q", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_outputs_finite(out)
        B, T, H, D = q.shape
        q64, k64 = q.astype(np.float64), k.astype(np.float64)
        attn = causal_softmax(np.einsum("bihd,bjhd->bhij", q64, k64) / math.sqrt(D))
        with h5py.File(out, "r") as f:
            for h in range(H):
                masses = np.array([[attn[b, h].diagonal(-r).mean() for r in range(max_offset + 1)]
                                   for b in range(B)])
                self.assert_close(f["offset_mass"][0, h], masses.mean(axis=0), rtol=1e-5)
                offset = int(f["offset"][0, h])
                self.assertAlmostEqual(masses.mean(axis=0)[offset], masses.mean(axis=0).max(),
                                       delta=1e-5)
                prev_mul = np.mean([attn[b, h].diagonal(-1).sum() / T for b in range(B)])
                self.assert_close(f["prev_mul"][0, h], prev_mul, rtol=1e-5)
                # The logit at that offset, chunk by chunk (half layout), summed over queries.
                terms = sum((q64[b, offset:, h] * k64[b, : T - offset, h]).sum(axis=0)
                            for b in range(B))
                # Shares over absolute chunk contributions (docs/tools/find-positional-heads.md).
                chunks = np.abs(terms[: D // 2] + terms[D // 2:])
                self.assert_close(f["frequency_share"][0, h], chunks / chunks.sum(), rtol=1e-6)

    def test_positional_heads_from_huge_queries_and_keys(self):
        rng = np.random.default_rng(3)
        for scales in ([1e19], [3e38], [1e-40], [1.0, 1e19]):
            with self.subTest(scales=scales):
                self.heads_case("qk", scaled(rng, (2, 6, 2, 8), scales),
                                scaled(rng, (2, 6, 2, 8), scales))

    def test_positional_heads_with_mixed_scales_between_q_and_k(self):
        # q ~ 1e19 and k ~ 1e-19: logits of order 1, a soft (not one-hot) pattern.
        rng = np.random.default_rng(4)
        self.heads_case("mixed", scaled(rng, (2, 6, 2, 8), [1e19]),
                        scaled(rng, (2, 6, 2, 8), [1e-19]))

    def test_rotating_values_near_the_maximum_is_an_error_naming_where(self):
        q = np.ones((1, 4, 1, 8), np.float32)
        q[0, 1, 0, 0] = q[0, 1, 0, 4] = 3e38  # chunk 0 at pos 1: rotated norm 4.2e38
        dump = self.path("pre.h5")
        with h5py.File(dump, "w") as f:
            f["blocks.0.attn.hook_q"], f["blocks.0.attn.hook_k"] = q, np.ones_like(q)
            f.attrs["rope_theta"] = 10000.0
        r = run("find-positional-heads", dump, "--from", "qk", "-o", self.path("h.h5"), "-q")
        self.refused(r, f"{dump}: blocks.0.attn.hook_q: ", "batch 0, pos 1, head 0",
                     "overflows float32")
        self.assertFalse(os.path.exists(self.path("h.h5")))

    def test_the_overflow_named_is_the_first_in_position_order_at_any_thread_count(self):
        # Heads are packed by the thread that scores them; head 0 overflows at pos 2 and head 1
        # at pos 1, and the message names pos 1 (a serial pass over positions meets it first).
        q = np.ones((1, 4, 2, 8), np.float32)
        q[0, 2, 0, 0] = q[0, 2, 0, 4] = 3e38
        q[0, 1, 1, 0] = q[0, 1, 1, 4] = 3e38
        dump = self.path("pre2.h5")
        with h5py.File(dump, "w") as f:
            f["blocks.0.attn.hook_q"], f["blocks.0.attn.hook_k"] = q, np.ones_like(q)
            f.attrs["rope_theta"] = 10000.0
        for threads in ("1", "2"):
            r = run("find-positional-heads", dump, "--from", "qk", "--threads", threads,
                    "-o", self.path("h.h5"), "-q")
            self.refused(r, f"{dump}: blocks.0.attn.hook_q: ", "batch 0, pos 1, head 1",
                         "overflows float32")

    # ------------------------------------------------------------------ rope-decay --mode file

    def decay_case(self, name, q, k, offsets=(0, 1, 2, 7, 40)):
        src, out = self.path(name + ".h5"), self.path(name + "-decay.h5")
        with h5py.File(src, "w") as f:
            f["q"], f["k"] = q, k
        d = q.shape[-1]
        r = run("rope-decay", "--mode", "file", "--input", src, "--query", "q", "--key", "k",
                "--head-dim", d, "--theta", 100, "--offsets", ",".join(map(str, offsets)),
                "--check", "-o", out, "-q", "--force")
        self.assertIn(r.returncode, (0, 3), r.stderr)  # --check may fail (3); never NaN
        self.assert_outputs_finite(out)
        g = 100.0 ** (-2.0 * np.arange(d // 2) / d)
        q64, k64 = q.reshape(-1, d).astype(np.float64), k.reshape(-1, d).astype(np.float64)
        logits = np.array([np.sum(q64 * rotate_half(k64[:, None, :], g, np.array([-o]))[:, 0],
                                  axis=-1) / d for o in offsets])  # [offset, pair]
        with h5py.File(out, "r") as f:
            for attr in ("check_max_mean_z", "check_max_spread_z", "check_z_critical"):
                self.assertTrue(math.isfinite(f.attrs[attr]), attr)
            self.assert_close(f["activation"][()], logits.mean(axis=1), rtol=1e-5)
            self.assert_close(f["std"][()], logits.std(axis=1, ddof=1), rtol=1e-5)
            self.assert_close(f["stderr"][()], logits.std(axis=1, ddof=1) / math.sqrt(len(q64)),
                              rtol=1e-5)

    def test_decay_of_huge_subnormal_and_mixed_rows(self):
        rng = np.random.default_rng(5)
        for scales in ([1e19], [1e30], [3e38], [1e-40], [1e-30, 1.0, 1e30]):
            with self.subTest(scales=scales):
                shape = (64, 16)
                row_scale = rng.choice(scales, size=(64, 1))
                q = np.clip(rng.standard_normal(shape) * row_scale, -3e38, 3e38).astype(np.float32)
                k = np.clip(rng.standard_normal(shape) * row_scale, -3e38, 3e38).astype(np.float32)
                self.decay_case("decay", q, k)

    # ------------------------------------------------------------------ prope-convert on dumps

    def prope_dump(self, name, rot_q, rot_k, theta=100.0, hooks=("pattern", "scores"),
                   dtype=np.float32):
        dump = self.path(name + ".h5")
        B, T, H, _ = rot_q.shape
        with h5py.File(dump, "w") as f:
            f["blocks.0.attn.hook_rot_q"] = rot_q.astype(dtype)
            f["blocks.0.attn.hook_rot_k"] = rot_k.astype(dtype)
            for hook in hooks:
                f[f"blocks.0.attn.hook_{'attn_scores' if hook == 'scores' else hook}"] = \
                    np.zeros((B, H, T, T), dtype)
            f.attrs["rope_theta"] = theta
        return dump

    def test_prope_convert_of_huge_and_subnormal_dumps_matches_numpy(self):
        rng = np.random.default_rng(6)
        theta, p = 100.0, 0.5
        for scales in ([1e15], [1e-40], [1e-3, 1e15]):
            with self.subTest(scales=scales):
                shape = (2, 6, 2, 8)
                dump = self.prope_dump("pc", scaled(rng, shape, scales), scaled(rng, shape, scales))
                out = self.path("pc-out.h5")
                r = run("prope-convert", dump, "--p", p, "-o", out, "-q", "--force")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assert_outputs_finite(out)
                D, T = shape[-1], shape[1]
                g = theta ** (-2.0 * np.arange(D // 2) / D)
                kept = g.copy()
                kept[int(np.floor(p * D / 2 + 1e-9)):] = 0.0
                pos = np.arange(T, dtype=np.float64)
                with h5py.File(dump, "r") as f, h5py.File(out, "r") as o:
                    for hook in ("rot_q", "rot_k"):
                        x = f[f"blocks.0.attn.hook_{hook}"][()].astype(np.float64)
                        want = rotate_half(rotate_half(x, g, -pos), kept, pos)
                        self.assert_close_f32(o[f"blocks.0.attn.hook_{hook}"][()], want)
                    q = o["blocks.0.attn.hook_rot_q"][()].astype(np.float64)
                    k = o["blocks.0.attn.hook_rot_k"][()].astype(np.float64)
                    scores = np.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(D)
                    lower = np.tril(np.ones((T, T), bool))
                    got = o["blocks.0.attn.hook_attn_scores"][()]
                    self.assert_close_f32(got[..., lower], scores[..., lower])
                    self.assert_close(o["blocks.0.attn.hook_pattern"][()], causal_softmax(scores),
                                      rtol=1e-5)

    def test_prope_convert_scores_beyond_float32_are_an_error_but_patterns_are_fine(self):
        rng = np.random.default_rng(7)
        q, k = scaled(rng, (1, 5, 1, 8), [1e20]), scaled(rng, (1, 5, 1, 8), [1e20])
        r = run("prope-convert", self.prope_dump("big", q, k), "--p", 0.5, "-o",
                self.path("big-out.h5"), "-q")
        self.refused(r, "blocks.0.attn.hook_attn_scores: recomputed score", "does not fit float32")
        self.assertFalse(os.path.exists(self.path("big-out.h5")))
        out = self.path("pattern-out.h5")
        r = run("prope-convert", self.prope_dump("pattern-only", q, k, hooks=("pattern",)),
                "--p", 0.5, "-o", out, "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_outputs_finite(out)

    def test_prope_convert_past_the_float16_maximum_is_an_error_naming_where(self):
        q = np.full((1, 12, 1, 8), 100.0)
        q[0, 8, 0, 2] = q[0, 8, 0, 6] = 60000.0  # chunk 2, dropped by p = 0.5: un-rotated
        r = run("prope-convert", self.prope_dump("f16", q, np.ones_like(q), hooks=(),
                                                 dtype=np.float16),
                "--p", 0.5, "-o", self.path("f16-out.h5"), "-q")
        self.refused(r, "blocks.0.attn.hook_rot_q: value", "at [0, 8, 0, ", "does not fit float16")
        # Recomputed scores past 65504 in a float16 scores hook are refused the same way.
        q = np.full((1, 4, 1, 8), 200.0)
        r = run("prope-convert", self.prope_dump("f16s", q, q, hooks=("scores",),
                                                 dtype=np.float16),
                "--p", 1.0, "-o", self.path("f16s-out.h5"), "-q")
        self.refused(r, "blocks.0.attn.hook_attn_scores: value", "does not fit float16")
        self.assertEqual(sorted(os.listdir(self.tmp)), ["f16.h5", "f16s.h5"])


if __name__ == "__main__":
    unittest.main()
