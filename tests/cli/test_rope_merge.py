"""rope-merge: the outputs over the shards of a dump, merged, equal the output over the whole
dump (to 1e-12 relative) whatever the split; outputs that do not merge are refused by name."""
import unittest

import h5py
import numpy as np

from dump_fixtures import chunk_norms
from ropekit_test import TempDirTest, run
from test_sharded_dumps import BATCH, SPLITS, make_layers, write_split

PROVENANCE = {"ropekit_version", "command_line", "history"}


def contents(path):
    with h5py.File(path) as f:
        data = {k: f[k][...] for k in f}
        attrs = {k: v for k, v in f.attrs.items() if k not in PROVENANCE}
    return data, attrs


class RopeMerge(TempDirTest):
    def write_split(self, layers, sizes, prefix, **kw):
        return write_split(self.path, layers, sizes, prefix, **kw)

    def assertSameOutput(self, whole, merged):
        (dw, aw), (dm, am) = contents(whole), contents(merged)
        self.assertEqual(sorted(dw), sorted(dm))
        for k in dw:
            np.testing.assert_allclose(dm[k], dw[k], rtol=1e-12, atol=0, err_msg=k)
        self.assertEqual(sorted(aw), sorted(am))
        for k in aw:
            self.assertEqual(str(am[k]), str(aw[k]), k)

    def freq_norms(self, inputs, out, *flags):
        run("freq-norms", *inputs, *flags, "-o", out, "-q", check=0)
        return out

    def test_merged_freq_norms_of_any_split_equal_the_whole_dump(self):
        layers = make_layers()
        whole = self.write_split(layers, [BATCH], "whole")
        expected = self.freq_norms(whole, self.path("whole.out.h5"), "--exclude-bos")
        for sizes in SPLITS[1:]:
            with self.subTest(sizes=sizes):
                tag = "_".join(map(str, sizes))
                shards = self.write_split(layers, sizes, "s" + tag)
                parts = [self.freq_norms([s], self.path(f"p{tag}-{i}.out.h5"), "--exclude-bos")
                         for i, s in enumerate(shards)]
                merged = self.path(f"merged{tag}.h5")
                run("rope-merge", *parts, "-o", merged, "-q", check=0)
                self.assertSameOutput(expected, merged)

    def test_the_merge_is_the_numpy_mean_over_the_union(self):
        layers = make_layers()
        shards = self.write_split(layers, [1, 6], "part")
        parts = [self.freq_norms([s], self.path(f"p{i}.h5")) for i, s in enumerate(shards)]
        run("rope-merge", *parts, "-o", self.path("m.h5"), "-q", check=0)
        data, attrs = contents(self.path("m.h5"))
        for L in range(2):
            np.testing.assert_allclose(data["q_norms"][L], chunk_norms(layers[L]["hook_q"], "half"),
                                       rtol=1e-5)
        self.assertEqual(attrs["positions_averaged"], BATCH * 10)
        self.assertEqual(attrs["tool"], "freq-norms")

    def test_merged_outputs_merge_again(self):
        layers = make_layers()
        whole = self.freq_norms(self.write_split(layers, [BATCH], "whole"), self.path("w.h5"))
        shards = self.write_split(layers, [2, 2, 3], "part")
        parts = [self.freq_norms([s], self.path(f"p{i}.h5")) for i, s in enumerate(shards)]
        run("rope-merge", parts[0], parts[1], "-o", self.path("m01.h5"), "-q", check=0)
        run("rope-merge", self.path("m01.h5"), parts[2], "-o", self.path("m.h5"), "-q", check=0)
        self.assertSameOutput(whole, self.path("m.h5"))

    def test_merged_positional_heads_of_any_split_equal_the_whole_dump(self):
        layers = make_layers(seed=11)
        flags = ("--from", "qk", "--exclude-bos", "--max-offset", "12")  # offsets 10-12: NaN
        whole = self.path("whole.out.h5")
        run("find-positional-heads", *self.write_split(layers, [BATCH], "whole"), *flags,
            "-o", whole, "-q", check=0)
        for sizes in ([3, 4], [1, 6], [2, 1, 4]):
            with self.subTest(sizes=sizes):
                tag = "_".join(map(str, sizes))
                parts = []
                for i, shard in enumerate(self.write_split(layers, sizes, "s" + tag)):
                    parts.append(self.path(f"p{tag}-{i}.out.h5"))
                    run("find-positional-heads", shard, *flags, "-o", parts[-1], "-q", check=0)
                merged = self.path(f"merged{tag}.h5")
                r = run("rope-merge", *parts, "-o", merged, check=0)
                self.assertSameOutput(whole, merged)
                table = run("find-positional-heads", self.path(f"s{tag}-0.h5"),
                            *[self.path(f"s{tag}-{i}.h5") for i in range(1, len(sizes))], *flags,
                            check=0).stdout
                self.assertEqual(r.stdout, table)

    def test_outputs_that_do_not_merge_are_refused_by_name(self):
        shards = self.write_split(make_layers(), [3, 4], "part")
        plain = self.freq_norms([shards[0]], self.path("plain.h5"))
        cases = {
            "/@exclude_bos": self.freq_norms([shards[1]], self.path("bos.h5"), "--exclude-bos"),
            "layer": self.freq_norms([shards[1]], self.path("layer.h5"), "--layers", "1"),
            "/@band_ratio": self.freq_norms([shards[1]], self.path("ratio.h5"), "--band-ratio", "3"),
            "/@rope_theta": self.freq_norms([shards[1]], self.path("theta.h5"), "--theta", "500000"),
        }
        for what, other in cases.items():
            with self.subTest(what=what):
                r = run("rope-merge", plain, other, "-o", self.path("out.h5"))
                self.assertOneLineError(r, 1, other, what, plain)
        heads = self.path("heads.h5")
        run("find-positional-heads", shards[1], "--from", "qk", "-o", heads, "-q", check=0)
        r = run("rope-merge", plain, heads, "-o", self.path("out.h5"))
        self.assertOneLineError(r, 1, heads, "/@tool", "find-positional-heads", "freq-norms")


if __name__ == "__main__":
    unittest.main()
