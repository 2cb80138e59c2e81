"""A dump split into shards (several files, or @LIST) reads as the whole dump concatenated along
batch: freq-norms and find-positional-heads give the whole dump's output, whatever the split."""
import unittest

import h5py
import numpy as np

from dump_fixtures import random_qk, write_dump
from ropekit_test import TempDirTest, run

BATCH, TOKENS, HEADS, KV_HEADS, DIM = 7, 10, 4, 2, 16
SPLITS = [[7], [3, 4], [1, 6], [2, 1, 4], [1, 1, 1, 1, 1, 1, 1]]


def make_layers(seed=3):
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(2):
        q, k = random_qk(rng, BATCH, TOKENS, HEADS, KV_HEADS, DIM)
        layers.append({"hook_q": q, "hook_k": k})
    return layers


def shard_layers(layers, begin, end):
    return [{h: a[begin:end] for h, a in hooks.items()} for hooks in layers]


def datasets(path):
    with h5py.File(path) as f:
        return {k: f[k][...] for k in f}


def write_split(path, layers, sizes, prefix, **kw):
    """Consecutive shards PREFIX-0.h5, ... of `sizes` sequences each; path(name) places them."""
    paths, begin = [], 0
    for i, n in enumerate(sizes):
        paths.append(path(f"{prefix}-{i}.h5"))
        write_dump(paths[-1], shard_layers(layers, begin, begin + n), bos=1, **kw)
        begin += n
    return paths


class ShardedDumps(TempDirTest):
    def write_split(self, layers, sizes, prefix, **kw):
        return write_split(self.path, layers, sizes, prefix, **kw)

    def assertSameOutputs(self, a, b):
        da, db = datasets(a), datasets(b)
        self.assertEqual(sorted(da), sorted(db))
        for k in da:
            np.testing.assert_allclose(da[k], db[k], rtol=1e-12, atol=0, err_msg=k)

    def test_freq_norms_of_shards_equal_the_whole_dump(self):
        layers = make_layers()
        whole = self.write_split(layers, [BATCH], "whole")[0]
        run("freq-norms", whole, "--exclude-bos", "-o", self.path("whole.out.h5"), "-q", check=0)
        for sizes in SPLITS[1:]:
            with self.subTest(sizes=sizes):
                shards = self.write_split(layers, sizes, "s" + "_".join(map(str, sizes)))
                out = self.path(f"shards{len(sizes)}.out.h5")
                run("freq-norms", *shards, "--exclude-bos", "-o", out, "--force", "-q", check=0)
                self.assertSameOutputs(self.path("whole.out.h5"), out)

    def test_a_list_file_names_the_shards(self):
        layers = make_layers()
        whole = self.write_split(layers, [BATCH], "whole")[0]
        shards = self.write_split(layers, [2, 5], "part")
        with open(self.path("list.txt"), "w") as f:
            f.write("# the shards\n" + "\n".join(shards) + "\n\n")
        run("freq-norms", whole, "-o", self.path("a.h5"), "-q", check=0)
        run("freq-norms", "@" + self.path("list.txt"), "-o", self.path("b.h5"), "-q", check=0)
        self.assertSameOutputs(self.path("a.h5"), self.path("b.h5"))

    def test_shards_without_a_batch_axis_are_one_sequence_each(self):
        layers = make_layers()
        whole = self.write_split(layers, [BATCH], "whole")[0]
        shards = self.write_split(layers, [1] * BATCH, "single", axes=("pos", "head", "dim"))
        run("freq-norms", whole, "-o", self.path("a.h5"), "-q", check=0)
        run("freq-norms", *shards, "--axes", "pos,head,dim", "-o", self.path("b.h5"), "-q", check=0)
        self.assertSameOutputs(self.path("a.h5"), self.path("b.h5"))

    def test_find_positional_heads_of_shards_equal_the_whole_dump(self):
        layers = make_layers()
        whole = self.write_split(layers, [BATCH], "whole")[0]
        shards = self.write_split(layers, [1, 4, 2], "part")
        run("find-positional-heads", whole, "--from", "qk", "-o", self.path("a.h5"), "-q", check=0)
        run("find-positional-heads", *shards, "--from", "qk", "-o", self.path("b.h5"), "-q",
            check=0)
        self.assertSameOutputs(self.path("a.h5"), self.path("b.h5"))

    def test_a_nan_is_reported_in_its_own_shard_and_sequence(self):
        layers = make_layers()
        layers[0]["hook_q"][5, 2, 1, 3] = np.nan
        shards = self.write_split(layers, [4, 3], "nan")
        r = run("freq-norms", *shards, "--exclude-bos", "-o", self.path("out.h5"))
        self.assertOneLineError(r, 1, shards[1], "blocks.0.attn.hook_q",
                                "NaN at batch 1, pos 2, head 1, dim 3")


if __name__ == "__main__":
    unittest.main()
