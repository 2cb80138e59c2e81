"""rope-decay against the paper's printed values and an independent numpy computation."""
import os
import unittest

import h5py
import numpy as np

from ropekit_test import TempDirTest, run

PAPER_OFFSETS = [0, 1, 10, 100, 1000, 5000]
PAPER_VALUES = [1.0, 0.972, 0.675, 0.456, 0.193, -0.029]  # paper.md, Figure 2a (3 decimals)


def inv_freq(d, theta, p=1.0):
    g = theta ** (-2.0 * np.arange(d // 2) / d)
    kept = int(np.floor(p * (d // 2) + 1e-9))
    g[kept:] = 0.0
    return g


def rotate_half(v, angle):
    """R^n applied to v[..., d] in the half-split layout, angle[..., C] = n * g."""
    c = v.shape[-1] // 2
    a, b = v[..., :c], v[..., c:]
    cos, sin = np.cos(angle), np.sin(angle)
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def numpy_decay(q, k, offsets, theta, p=1.0):
    """mean over rows of q^T R^(-o) k / d, computed by rotating k explicitly."""
    d = q.shape[-1]
    g = inv_freq(d, theta, p)
    out = []
    for o in offsets:
        rk = rotate_half(k, -o * g)
        out.append(np.mean(np.sum(q * rk, axis=-1)) / d)
    return np.array(out)


M64 = (1 << 64) - 1


def splitmix64(state):
    """One splitmix64 step on uint64 arrays: (new state, output)."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(M64)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


def ropekit_normals(seed, streams, n):
    """Second implementation of core/normal_samples.cpp (sampler v3): per stream 8 xoshiro256+
    lanes seeded by 32 splitmix64 words from (seed, stream); per step every lane draws a radius
    uniform then an angle's bits, and Box-Muller's log, cos and sin are the same polynomials in
    the same order of IEEE double operations, so the floats are bit-identical.
    Returns [len(streams), n] float32."""
    u64, lanes = np.uint64, 8
    steps = (n + 2 * lanes - 1) // (2 * lanes)
    with np.errstate(over="ignore"):
        _, mixed = splitmix64(np.asarray(streams, dtype=u64))
        state = u64(seed) ^ mixed
        words = []  # lane-major: lane 0's four words, then lane 1's, ...
        for _ in range(4 * lanes):
            state, word = splitmix64(state)
            words.append(word)
        s = [np.stack(words[w::4], axis=-1) for w in range(4)]  # [streams, lanes] each

        def next_bits():
            result = s[0] + s[3]
            t = s[1] << u64(17)
            s[2] ^= s[0]
            s[3] ^= s[1]
            s[1] ^= s[2]
            s[0] ^= s[3]
            s[2] ^= t
            s[3] = (s[3] << u64(45)) | (s[3] >> u64(19))
            return result

        def as_double(bits):
            return bits.astype(u64).view(np.float64)

        out = []
        for _ in range(steps):
            bits = next_bits()
            u = 2.0 - as_double((bits >> u64(12)) | u64(0x3FF0000000000000))
            ubits = u.view(u64)
            m = as_double((ubits & u64(0x000FFFFFFFFFFFFF)) | u64(0x3FF0000000000000))
            e = as_double((ubits >> u64(52)) | u64(0x4330000000000000)) - (2.0**52 + 1023.0)
            high = m > 1.4142135623730951
            m, e = np.where(high, m * 0.5, m), np.where(high, e + 1.0, e)
            sv = (m - 1.0) / (m + 1.0)
            z = sv * sv
            series = 1.0 / 15
            for k in (13, 11, 9, 7, 5, 3):
                series = 1.0 / k + z * series
            radius = np.sqrt(-2.0 * (e * 0.6931471805599453 + (2.0 * sv + 2.0 * sv * (z * series))))
            bits = next_bits()
            x = (as_double(((bits >> u64(10)) & u64(0x000FFFFFFFFFFFFF)) |
                           u64(0x3FF0000000000000)) - 1.5) * 1.5707963267948966
            x2 = x * x
            sin_poly = 1.0 / 6227020800
            for c in (-1.0 / 39916800, 1.0 / 362880, -1.0 / 5040, 1.0 / 120, -1.0 / 6):
                sin_poly = c + x2 * sin_poly
            sin_x = x + x * x2 * sin_poly
            cos_poly = -1.0 / 87178291200
            for c in (1.0 / 479001600, -1.0 / 3628800, 1.0 / 40320, -1.0 / 720, 1.0 / 24, -0.5):
                cos_poly = c + x2 * cos_poly
            cos_x = 1.0 + x2 * cos_poly
            quadrant = bits >> u64(62)
            swap = (quadrant & u64(1)) != 0
            c = np.where(swap, sin_x, cos_x) * np.where(((quadrant + u64(1)) >> u64(1)) & u64(1), -1.0, 1.0)
            sn = np.where(swap, cos_x, sin_x) * np.where(quadrant >> u64(1), -1.0, 1.0)
            out += [(radius * c).astype(np.float32), (radius * sn).astype(np.float32)]
    return np.concatenate(out, axis=-1)[:, :n]


class RopeDecay(TempDirTest):
    def decay(self, *args, check=0):
        out = self.path("d.h5")
        run("rope-decay", *args, "-o", out, "--force", "-q", check=check)
        return h5py.File(out, "r")

    def test_ones_reproduces_the_papers_printed_values(self):
        with self.decay("--offsets", ",".join(map(str, PAPER_OFFSETS))) as f:
            np.testing.assert_array_equal(f["offset"][:], PAPER_OFFSETS)
            np.testing.assert_allclose(f["activation"][:], PAPER_VALUES, atol=5e-4)
            ones = np.ones((1, 256))
            np.testing.assert_allclose(f["activation"][:],
                                       numpy_decay(ones, ones, PAPER_OFFSETS, 1e4), atol=1e-12)
            self.assertEqual(f.attrs["mode"], "ones")
            self.assertEqual(f.attrs["d"], 256)
            self.assertEqual(f.attrs["theta"], 1e4)
            self.assertEqual(f["activation"].dims[0].label, "offset")
            self.assertIn("rope-decay", f.attrs["history"])

    def test_ones_with_prope_counts_unrotated_chunks_as_constant(self):
        # p = 0.25, d = 64: 8 of 32 chunks rotate, the other 24 contribute 2 each at every offset.
        with self.decay("--head-dim", 64, "--p", 0.25, "--max-offset", 300) as f:
            g = inv_freq(64, 1e4, 0.25)
            o = np.arange(301)
            expected = (2.0 / 64) * np.cos(np.outer(o, g)).sum(axis=1)
            np.testing.assert_allclose(f["activation"][:], expected, atol=1e-12)
            self.assertEqual(f.attrs["p"], 0.25)
            self.assertGreater(f["activation"][-1], 24 * 2 / 64 - 8 * 2 / 64)

    def test_gaussian_has_no_decay_and_passes_the_check(self):
        with self.decay("--mode", "gaussian", "--samples", 4000, "--head-dim", 64,
                        "--max-offset", 2000, "--seed", 7, "--check") as f:
            self.assertEqual(f.attrs["samples"], 4000)
            self.assertEqual(f.attrs["check_passed"], 1)
            act, std, se = f["activation"][:], f["std"][:], f["stderr"][:]
            # Proposition 3.2 (derived): variance of q^T R^r k is d, so std of the activation
            # is 1/sqrt(d) at every offset; stderr = std / sqrt(samples).
            np.testing.assert_allclose(std, 1 / np.sqrt(64), rtol=0.08)
            np.testing.assert_allclose(se, std / np.sqrt(4000), rtol=1e-12)
            self.assertLess(np.max(np.abs(act)), 6 * np.max(se))

    def test_gaussian_mode_is_the_moments_of_its_documented_samples(self):
        # Pair i is q = stream 2i, k = stream 2i + 1 of the seed; numpy regenerates the samples
        # and computes every pair's curve (no moments), the tool uses the moment formulation.
        m, d, offsets = 300, 16, [0, 1, 5, 50, 700]
        with self.decay("--mode", "gaussian", "--samples", m, "--head-dim", d, "--seed", 3,
                        "--offsets", ",".join(map(str, offsets))) as f:
            self.assertEqual(f.attrs["sampler"], "v3")
            normals = ropekit_normals(3, np.arange(2 * m), d).astype(np.float64)
            q, k = normals[0::2], normals[1::2]
            g = inv_freq(d, 1e4)
            curves = np.array([np.sum(q * rotate_half(k, -o * g), axis=-1) / d for o in offsets])
            np.testing.assert_allclose(f["activation"][:], curves.mean(axis=1), rtol=1e-9,
                                       atol=1e-15)
            np.testing.assert_allclose(f["std"][:], curves.std(axis=1, ddof=1), rtol=1e-9)

    def test_check_fails_when_the_curve_decays(self):
        # Structured vectors: ones plus a little noise decay like Figure 2a.
        rng = np.random.default_rng(0)
        q = (1 + 0.1 * rng.standard_normal((300, 32))).astype(np.float16)
        k = (1 + 0.1 * rng.standard_normal((300, 32))).astype(np.float16)
        src = self.path("qk.h5")
        with h5py.File(src, "w") as f:
            f["q"], f["k"] = q, k
        out = self.path("d.h5")
        r = run("rope-decay", "--mode", "file", "--input", src, "--query", "q", "--key", "k",
                "--head-dim", 32, "--max-offset", 100, "--check", "-q", "-o", out)
        self.assertOneLineError(r, 3, "rope-decay: ", "Proposition 3.2 check FAILED")
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["check_passed"], 0)

    def test_a_failed_check_exits_3_unlike_bad_input_1_and_bad_usage_2(self):
        # Ones plus noise decay like Figure 2a: a check that runs on good data and fails.
        rng = np.random.default_rng(1)
        src = self.path("ones.h5")
        with h5py.File(src, "w") as f:
            f["q"], f["k"] = (1 + 0.1 * rng.standard_normal((2, 200, 16))).astype(np.float32)
        args = ["--mode", "file", "--query", "q", "--key", "k", "--head-dim", 16,
                "--max-offset", 40, "--check", "-q", "--force", "-o", self.path("d.h5")]
        r = run("rope-decay", "--input", src, *args)
        self.assertOneLineError(r, 3, "Proposition 3.2 check FAILED")
        r = run("rope-decay", "--input", self.path("missing.h5"), *args)
        self.assertOneLineError(r, 1, "missing.h5")
        r = run("rope-decay", "--input", src, "--alpha", "x", *args)
        self.assertOneLineError(r, 2, "--alpha")
        help_text = " ".join(run("rope-decay", "--help", check=0).stdout.split())
        self.assertIn("exits 3 when the curve decays", help_text)

    def test_file_mode_matches_numpy_for_f16_bf16_f32_and_any_leading_shape(self):
        rng = np.random.default_rng(1)
        q = rng.standard_normal((2, 37, 3, 16)).astype(np.float32)
        k = rng.standard_normal((2, 37, 3, 16)).astype(np.float32)
        src = self.path("qk.h5")
        with h5py.File(src, "w") as f:
            f["q32"], f["k32"] = q, k
            f["q16"], f["k16"] = q.astype(np.float16), k.astype(np.float16)
            f.attrs["rope_theta"] = 500.0
        offsets = [0, 1, 2, 5, 33, 400]
        for qd, kd, qv, kv in [("q32", "k32", q, k),
                               ("q16", "k16", q.astype(np.float16).astype(np.float64),
                                k.astype(np.float16).astype(np.float64))]:
            with self.subTest(dataset=qd):
                out = self.path(f"{qd}.h5")
                run("rope-decay", "--mode", "file", "--input", src, "--query", qd, "--key", kd,
                    "--head-dim", 16, "--offsets", ",".join(map(str, offsets)), "-o", out,
                    check=0)
                expected = numpy_decay(qv.reshape(-1, 16).astype(np.float64),
                                       kv.reshape(-1, 16).astype(np.float64), offsets, 500.0)
                with h5py.File(out, "r") as f:
                    self.assertEqual(f.attrs["theta"], 500.0)  # from the file's rope_theta
                    self.assertEqual(f.attrs["samples"], 2 * 37 * 3)
                    np.testing.assert_allclose(f["activation"][:], expected, atol=2e-6)

    def test_file_mode_pairs_query_heads_with_their_gqa_key_head(self):
        # 4 query heads share 2 key heads (head h uses key head h // 2); 8400 query rows stream
        # in several blocks that do not line up with the key dataset's rows.
        rng = np.random.default_rng(3)
        q = rng.standard_normal((3, 700, 4, 8)).astype(np.float32)
        k = rng.standard_normal((3, 700, 2, 8)).astype(np.float32)
        src = self.path("gqa.h5")
        with h5py.File(src, "w") as f:
            f["q"], f["k"] = q, k
        out = self.path("d.h5")
        offsets = [0, 1, 3, 50]
        run("rope-decay", "--mode", "file", "--input", src, "--query", "q", "--key", "k",
            "--head-dim", 8, "--offsets", ",".join(map(str, offsets)), "-o", out, "-q", check=0)
        k_expanded = np.repeat(k, 2, axis=2)
        expected = numpy_decay(q.reshape(-1, 8).astype(np.float64),
                               k_expanded.reshape(-1, 8).astype(np.float64), offsets, 1e4)
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["samples"], 3 * 700 * 4)
            np.testing.assert_allclose(f["activation"][:], expected, atol=2e-6)

    def test_interleaved_layout_is_the_same_maths_after_permutation(self):
        rng = np.random.default_rng(2)
        q = rng.standard_normal((50, 8))
        k = rng.standard_normal((50, 8))
        perm = np.empty(8, dtype=int)  # interleaved dim 2c <- half dim c, 2c+1 <- c+4
        perm[0::2], perm[1::2] = np.arange(4), np.arange(4) + 4
        src = self.path("qk.h5")
        with h5py.File(src, "w") as f:
            f["q"], f["k"] = q[:, perm], k[:, perm]
            f.attrs["rope_layout"] = "interleaved"
        out = self.path("d.h5")
        run("rope-decay", "--mode", "file", "--input", src, "--query", "q", "--key", "k",
            "--head-dim", 8, "--max-offset", 20, "-o", out, check=0)
        with h5py.File(out, "r") as f:
            np.testing.assert_allclose(f["activation"][:], numpy_decay(q, k, range(21), 1e4),
                                       atol=2e-6)
            self.assertEqual(f.attrs["rope_layout"], "interleaved")

    def test_repeated_gaussian_is_one_pairs_curve(self):
        with self.decay("--mode", "repeated-gaussian", "--head-dim", 32, "--max-offset", 50) as f:
            self.assertEqual(f.attrs["samples"], 1)
            self.assertNotIn("std", f)
            self.assertEqual(len(f["activation"]), 51)

    def test_plot_is_an_svg_of_the_curve(self):
        import xml.etree.ElementTree as ET
        svg = self.path("fig.svg")
        run("rope-decay", "--mode", "gaussian", "--samples", 200, "--head-dim", 32,
            "--max-offset", 300, "-o", self.path("g.h5"), "--plot", svg, "-q", check=0)
        root = ET.parse(svg).getroot()
        self.assertTrue(root.tag.endswith("svg"))
        text = open(svg).read()
        self.assertIn("gaussian, d=32, theta=10000", text)
        self.assertIn("offset", text)
        # An existing plot is not replaced without --force.
        r = run("rope-decay", "-o", self.path("o.h5"), "--plot", svg)
        self.assertOneLineError(r, 2, svg)
        self.assertFalse(os.path.exists(self.path("o.h5")))

    def test_output_to_stdout_pipes(self):
        r = run("rope-decay", "--offsets", "0,1", "-o", "-", text=False, check=0)
        import io
        with h5py.File(io.BytesIO(r.stdout), "r") as f:
            np.testing.assert_allclose(f["activation"][:], [1.0, 0.9721276639], atol=1e-9)

    def test_errors(self):
        self.assertOneLineError(run("rope-decay", "--mode", "nope", "-o", self.path("x.h5")), 2,
                                "--mode")
        self.assertOneLineError(run("rope-decay", "--mode", "file", "-o", self.path("x.h5")), 2,
                                "--input")
        src = self.path("qk.h5")
        with h5py.File(src, "w") as f:
            f["q"], f["k"] = np.zeros((4, 8), np.float32), np.zeros((5, 8), np.float32)
        r = run("rope-decay", "--mode", "file", "--input", src, "--query", "q", "--key", "k",
                "--head-dim", 8, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, src, "k", "shape")
        self.assertFalse(os.path.exists(self.path("x.h5")))
        r = run("rope-decay", "--mode", "file", "--input", src, "--query", "q", "--key", "k",
                "--head-dim", 16, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, "q", "--head-dim 16")
        self.assertOneLineError(run("rope-decay", "--check", "-o", self.path("x.h5")), 2,
                                "--check")


if __name__ == "__main__":
    unittest.main()
