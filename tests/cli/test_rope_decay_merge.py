"""rope-decay stores the sums behind its sampled curves (gaussian and file modes), and rope-merge
combines the outputs of any split into the output of one run over the union; gaussian runs split
by --first-sample ranges, because pair i is drawn from streams 2i and 2i + 1 of the seed whichever
run draws it. Options that do not merge are refused by attribute.

Tolerance (docs/tools/rope-merge.md): a split changes only the order of the sums, so std and
stderr agree to 1e-12 relative; the sums of signed terms (moment_sum, moment_sum_outer and the
mean curve) cancel towards zero, so they agree to 1e-12 of their Cauchy-Schwarz scale (the sum of
the terms' absolute values is at most that scale), not of their own value."""
import unittest

import h5py
import numpy as np

from ropekit_test import TempDirTest, run
from test_rope_decay import inv_freq, ropekit_normals, rotate_half
from test_sharded_dumps import BATCH, SPLITS, make_layers, write_split

PROVENANCE = {"ropekit_version", "command_line", "history"}
QUERY, KEY = "blocks.1.attn.hook_q", "blocks.1.attn.hook_k"


def contents(path):
    with h5py.File(path) as f:
        data = {k: f[k][...] for k in f}
        attrs = {k: v for k, v in f.attrs.items() if k not in PROVENANCE}
    return data, attrs


def scaled_differences(whole, merged):
    """Per dataset: the largest difference over its scale (see the module docstring)."""
    (w, _), (m, _) = contents(whole), contents(merged)
    n = contents(whole)[1]["samples"]
    diag = np.diag(w["moment_sum_outer"])
    rms = np.sqrt(w["std"] ** 2 * (n - 1) / n + w["activation"] ** 2)  # of the pairs' curves
    scale = {"moment_sum_outer": np.sqrt(np.outer(diag, diag)), "moment_sum": np.sqrt(n * diag),
             "activation": rms, "std": np.abs(w["std"]), "stderr": np.abs(w["stderr"])}
    worst = {}
    for k, sc in scale.items():
        diff = np.abs(m[k] - w[k])  # where the scale is 0 (the unrotated column at p = 1), exact
        worst[k] = np.max(np.where(sc > 0, diff / np.where(sc > 0, sc, 1), np.where(diff > 0,
                                                                                  np.inf, 0)))
    return worst


class RopeDecayMerge(TempDirTest):
    def decay(self, out, *args):
        run("rope-decay", *args, "-o", self.path(out), "-q", check=0)
        return self.path(out)

    def gaussian(self, out, *args, d=32, seed=11, offsets="0-600"):
        return self.decay(out, "--mode", "gaussian", "--head-dim", d, "--offsets", offsets,
                          "--seed", seed, *args)

    def file_mode(self, out, dump, *args):
        return self.decay(out, "--mode", "file", "--input", dump, "--query", QUERY, "--key", KEY,
                          "--offsets", "0-40,100-3000:100", *args)

    def assertSameDecay(self, whole, merged):
        (dw, aw), (dm, am) = contents(whole), contents(merged)
        self.assertEqual(sorted(dw), sorted(dm))
        np.testing.assert_array_equal(dm["offset"], dw["offset"])
        self.assertEqual({k: str(v) for k, v in am.items()}, {k: str(v) for k, v in aw.items()})
        for k, worst in scaled_differences(whole, merged).items():
            self.assertLessEqual(worst, 1e-12, k)

    def merge(self, out, *parts):
        run("rope-merge", *parts, "-o", self.path(out), "-q", check=0)
        return self.path(out)

    def test_merged_file_mode_outputs_of_any_split_equal_the_whole_dump(self):
        layers = make_layers(seed=4)
        whole = self.file_mode("whole.out.h5", write_split(self.path, layers, [BATCH], "w")[0])
        with h5py.File(whole) as f:
            self.assertEqual(f["moment_sum"].dims[0].label, "coefficient")
            self.assertEqual(f["moment_sum_outer"].attrs["units"], "(logit / d)^2")
            self.assertEqual(f.attrs["samples"], BATCH * 10 * 4)  # rows of the GQA query
        for sizes in SPLITS[1:]:  # unequal shards, one-sequence shards
            with self.subTest(sizes=sizes):
                tag = "_".join(map(str, sizes))
                shards = write_split(self.path, layers, sizes, "s" + tag)
                parts = [self.file_mode(f"p{tag}-{i}.h5", s) for i, s in enumerate(shards)]
                self.assertSameDecay(whole, self.merge(f"m{tag}.h5", *reversed(parts)))

    def test_the_stored_sums_are_the_numpy_moments_of_the_pairs(self):
        # Independent: numpy's chunk coefficients of every (q, k) pair, summed.
        m, d = 40, 8
        out = self.gaussian("g.h5", "--samples", m, d=d)
        normals = ropekit_normals(11, np.arange(2 * m), d).astype(np.float64)
        q, k = normals[0::2], normals[1::2]
        h = d // 2
        cos = (q[:, :h] * k[:, :h] + q[:, h:] * k[:, h:]) / d
        sin = (q[:, h:] * k[:, :h] - q[:, :h] * k[:, h:]) / d
        c = np.concatenate([cos, sin, np.zeros((m, 1))], axis=1)
        data, attrs = contents(out)
        # The sign convention of the sin row is the tool's: compare it through the curve.
        g = inv_freq(d, 1e4)
        curve = np.array([np.sum(q * rotate_half(k, -o * g), axis=-1) / d for o in range(5)])
        table = np.concatenate([np.cos(np.outer(g, -np.arange(5))),
                                np.sin(np.outer(g, -np.arange(5))), np.ones((1, 5))])
        np.testing.assert_allclose(data["moment_sum"][:h], c.sum(axis=0)[:h], rtol=1e-6)
        np.testing.assert_allclose(table.T @ data["moment_sum"], curve.sum(axis=1), rtol=1e-6,
                                   atol=1e-12)
        np.testing.assert_allclose(np.einsum("io,ij,jo->o", table, data["moment_sum_outer"],
                                             table), (curve ** 2).sum(axis=1), rtol=1e-6)
        self.assertEqual(attrs["samples"], m)

    def test_gaussian_sample_ranges_are_the_global_pairs(self):
        # Pairs 5..7 of seed 11 are streams 10..15: a run with --first-sample 5 averages them.
        d, offsets = 16, [0, 3, 90]
        out = self.gaussian("r.h5", "--samples", 3, "--first-sample", 5, d=d, offsets="0,3,90")
        normals = ropekit_normals(11, np.arange(10, 16), d).astype(np.float64)
        q, k = normals[0::2], normals[1::2]
        g = inv_freq(d, 1e4)
        curves = np.array([np.sum(q * rotate_half(k, -o * g), axis=-1) / d for o in offsets])
        data, attrs = contents(out)
        np.testing.assert_allclose(data["activation"], curves.mean(axis=1), rtol=1e-9, atol=1e-15)
        self.assertEqual(attrs["first_sample"], 5)
        # Control: the same count from pair 0 is other pairs.
        control = contents(self.gaussian("c.h5", "--samples", 3, d=d, offsets="0,3,90"))[0]
        self.assertGreater(np.max(np.abs(control["activation"] - data["activation"])), 1e-3)

    def test_merged_gaussian_partial_runs_equal_one_run_of_the_total(self):
        whole = self.gaussian("whole.h5", "--samples", 3000)
        ranges = {"unequal": [(0, 1000), (1000, 1999), (2999, 1)],
                  "one sample first": [(0, 1), (1, 2999)],
                  "blocks of 2048 crossed": [(0, 2047), (2047, 2), (2049, 951)]}
        for name, parts in ranges.items():
            with self.subTest(split=name):
                outs = [self.gaussian(f"{name}{i}.h5", "--first-sample", first, "--samples", n)
                        for i, (first, n) in enumerate(parts)]
                self.assertSameDecay(whole, self.merge(f"{name}.h5", *outs[::-1]))
        # Merged outputs merge again: ([0, 1000) + [1000, 2999)) + [2999, 3000).
        two = self.merge("two.h5", self.path("unequal0.h5"), self.path("unequal1.h5"))
        self.assertSameDecay(whole, self.merge("three.h5", two, self.path("unequal2.h5")))

    def test_outputs_that_do_not_merge_are_refused_by_name(self):
        plain = self.gaussian("plain.h5", "--samples", 50)
        rest = ("--first-sample", 50, "--samples", 50)
        cases = {
            "/@theta": self.gaussian("theta.h5", *rest, "--theta", 500000),
            "/@seed": self.gaussian("seed.h5", *rest, seed=12),
            "/@p": self.gaussian("p.h5", *rest, "--p", 0.5),
            "/@d": self.gaussian("d.h5", *rest, d=16),
            "offset": self.gaussian("offsets.h5", *rest, offsets="1-601"),
            "/@first_sample": self.gaussian("overlap.h5", "--first-sample", 49, "--samples", 50),
        }
        for what, other in cases.items():
            with self.subTest(what=what):
                r = run("rope-merge", plain, other, "-o", self.path("out.h5"))
                self.assertOneLineError(r, 1, other, what)
        ones = self.decay("ones.h5", "--head-dim", 32, "--offsets", "0-600")
        checked = self.gaussian("check.h5", *rest, "--check")
        for what, other in {"/@mode": ones, "/@check_passed": checked}.items():
            with self.subTest(what=what):
                r = run("rope-merge", plain, other, "-o", self.path("out.h5"))
                self.assertOneLineError(r, 1, other, what)
        shards = write_split(self.path, make_layers(), [3, 4], "s")
        file_part = self.file_mode("file.h5", shards[0])
        r = run("rope-merge", plain, file_part, "-o", self.path("out.h5"))
        self.assertOneLineError(r, 1, file_part)

    def test_first_sample_is_gaussian_mode_only(self):
        r = run("rope-decay", "--first-sample", 3, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 2, "--first-sample")


if __name__ == "__main__":
    unittest.main()
