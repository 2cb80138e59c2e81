"""Per-layer RoPE schedules and partial rotary (issue 14, "What the dump records"): dumps written
by h5py with two schedules (layers 0 and 2 at base 1e4, layer 1 at base 1e6 with linear scaling
1/8, as Gemma 3 mixes them) and rotary_dim = head_dim/4 (Pythia), read by freq-norms,
find-positional-heads --from qk and rope-decay --mode file, each checked against numpy; controls
read the same dump with one schedule (--theta) and get other numbers. Then rope-dump on
stories260K records layer_rope_inv_freq as the schedule's closed form."""
import os
import unittest

import h5py
import numpy as np

from dump_fixtures import chunk_pairs, random_qk, write_dump
from ropekit_test import TempDirTest, run

DIM, ROTARY, HEADS, KV_HEADS, BATCH, TOKENS = 32, 8, 4, 2, 2, 24
LOCAL = 1e4 ** (-np.arange(ROTARY // 2) * 2.0 / ROTARY)  # [1, 0.1, 0.01, 0.001]
GLOBAL = (1e6 ** (-np.arange(ROTARY // 2) * 2.0 / ROTARY)) / 8  # base 1e6, linear factor 8
TABLE = np.stack([LOCAL, GLOBAL, LOCAL])  # [layer, rotary_dim / 2]
STORIES = "/work/shared/data/stories260K.bin"


def rotate_by(x, freqs, layout="half"):
    """x [B, T, H, D] rotated at positions 0..T-1 by `freqs` on its leading 2 * len(freqs) dims;
    the other dims unchanged (partial rotary)."""
    x = np.array(x, dtype=np.float64)
    a, b = chunk_pairs(2 * len(freqs), layout)
    ang = np.arange(x.shape[1])[:, None] * np.asarray(freqs)[None, :]
    c, s = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]
    xa, xb = x[..., a].copy(), x[..., b].copy()
    x[..., a] = xa * c - xb * s
    x[..., b] = xa * s + xb * c
    return x


def offset_mass(q, k, scale, max_offset):
    """Post-RoPE q [B, T, H, D], k [B, T, KV, D] -> [H, offsets]: mean over sequences of the mean
    over queries i >= r of softmax(scale q.k)[i, i - r]."""
    B, T, H, _ = q.shape
    group = H // k.shape[2]
    out = np.zeros((H, max_offset + 1))
    for h in range(H):
        for bi in range(B):
            s = scale * q[bi, :, h] @ k[bi, :, h // group].T
            s[np.triu(np.ones((T, T), bool), 1)] = -np.inf
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            for r in range(max_offset + 1):
                out[h, r] += np.mean([p[i, i - r] for i in range(r, T)]) / B
    return out


class LayerSchedules(TempDirTest):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(14)
        self.qk = []
        for _ in range(3):
            q, k = random_qk(rng, BATCH, TOKENS, HEADS, KV_HEADS, DIM)
            # large high-frequency chunks, so the rotation (and its frequencies) moves patterns
            q[..., :ROTARY] *= 3
            k[..., :ROTARY] *= 3
            self.qk.append((q, k))
        self.dump = self.path("dump.h5")
        write_dump(self.dump, [{"hook_q": q, "hook_k": k} for q, k in self.qk], theta=1e4,
                   extra_attrs={"rotary_dim": ROTARY, "layer_rope_inv_freq": TABLE})
        with h5py.File(self.dump) as f:  # what the tools read: float32
            self.stored = [(f[f"blocks.{L}.attn.hook_q"][...].astype(np.float64),
                            f[f"blocks.{L}.attn.hook_k"][...].astype(np.float64)) for L in range(3)]

    def read(self, path):
        with h5py.File(path) as f:
            return {k: f[k][...] for k in f}

    def test_freq_norms_partial_rotary_and_per_layer_frequencies(self):
        out = self.path("norms.h5")
        r = run("freq-norms", self.dump, "-o", out, "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.read(out)
        a, b = chunk_pairs(ROTARY, "half")
        for L, (q, k) in enumerate(self.stored):
            for name, x in (("q", q), ("k", k)):
                want = np.sqrt(x[..., a] ** 2 + x[..., b] ** 2).mean(axis=(0, 1))
                np.testing.assert_allclose(got[f"{name}_norms"][L], want, rtol=1e-5)
                rest = np.sqrt((x[..., ROTARY:] ** 2).sum(axis=-1)).mean(axis=(0, 1))
                np.testing.assert_allclose(got[f"{name}_unrotated_norms"][L], rest, rtol=1e-6)
        self.assertEqual(got["q_norms"].shape, (3, HEADS, ROTARY // 2))
        self.assertEqual(got["k_unrotated_norms"].shape, (3, KV_HEADS))
        np.testing.assert_allclose(got["layer_frequency"], TABLE, rtol=1e-15)
        self.assertNotIn("frequency", got)  # layers differ: no single frequency axis
        # chunked datasets go through HDF5, not the in-place reader: the same numbers
        chunked = self.path("chunked.h5")
        with h5py.File(self.dump) as f, h5py.File(chunked, "w") as g:
            for key, value in f.attrs.items():
                g.attrs[key] = value
            for name in f:
                g.create_dataset(name, data=f[name][...], chunks=True)
        run("freq-norms", chunked, "-o", self.path("chunked-norms.h5"), "-q", check=0)
        other = self.read(self.path("chunked-norms.h5"))
        for name in ("q_norms", "q_unrotated_norms", "k_unrotated_norms"):
            np.testing.assert_allclose(other[name], got[name], rtol=1e-6)
        # control: --theta gives every layer base 1e4, and one frequency axis
        r = run("freq-norms", self.dump, "--theta", "1e4", "-o", self.path("one.h5"), "-q")
        one = self.read(self.path("one.h5"))
        np.testing.assert_allclose(one["frequency"], LOCAL, rtol=1e-12)
        self.assertGreater(np.abs(one["layer_frequency"][1] - TABLE[1]).max(), 0.5)
        # control: read as full rotary, the unrotated dims become frequencies of their own
        r = run("freq-norms", self.dump, "--theta", "1e4", "--rotary-dim", DIM, "-o",
                self.path("full.h5"), "-q")
        full = self.read(self.path("full.h5"))
        self.assertEqual(full["q_norms"].shape, (3, HEADS, DIM // 2))
        self.assertNotIn("q_unrotated_norms", full)

    def test_freq_norms_merge_keeps_the_new_datasets(self):
        parts = []
        for i, (first, count) in enumerate(((0, 1), (1, 1))):
            part = self.path(f"part{i}.h5")
            write_dump(part, [{"hook_q": q[first:first + count], "hook_k": k[first:first + count]}
                              for q, k in self.qk], theta=1e4,
                       extra_attrs={"rotary_dim": ROTARY, "layer_rope_inv_freq": TABLE})
            run("freq-norms", part, "-o", self.path(f"n{i}.h5"), "-q", check=0)
            parts.append(self.path(f"n{i}.h5"))
        run("freq-norms", self.dump, "-o", self.path("whole.h5"), "-q", check=0)
        r = run("rope-merge", *parts, "-o", self.path("merged.h5"), "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        merged, whole = self.read(self.path("merged.h5")), self.read(self.path("whole.h5"))
        for name in ("q_norms", "q_unrotated_norms", "k_unrotated_norms", "layer_frequency"):
            np.testing.assert_allclose(merged[name], whole[name], rtol=1e-12)

    def heads(self, *extra):
        out = self.path("heads.h5")
        r = run("find-positional-heads", self.dump, "--from", "qk", "--max-offset", 6, "-o", out,
                "-q", "--force", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return self.read(out)

    def numpy_heads(self, table):
        scale = 1 / np.sqrt(DIM)
        mass, shares = [], []
        a, b = chunk_pairs(ROTARY, "half")
        for L, (q, k) in enumerate(self.stored):
            rq, rk = rotate_by(q, table[L]), rotate_by(k, table[L])
            m = offset_mass(rq, rk, scale, 6)
            mass.append(m)
            layer_shares = []
            for h in range(HEADS):
                o = int(np.argmax(m[h]))
                qi, kj = rq[:, o:, h], rk[:, :TOKENS - o, h // 2]
                chunk = np.abs((qi[..., a] * kj[..., a] + qi[..., b] * kj[..., b]).sum(axis=(0, 1)))
                layer_shares.append(chunk / chunk.sum())
            shares.append(layer_shares)
        return np.array(mass), np.array(shares)

    def test_find_positional_heads_rotates_each_layer_by_its_own_schedule(self):
        got = self.heads()
        mass, shares = self.numpy_heads(TABLE)
        np.testing.assert_allclose(got["offset_mass"], mass, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(got["frequency_share"], shares, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(got["layer_frequency"], TABLE, rtol=1e-15)
        # --from auto says which frequencies it rotated with
        r = run("find-positional-heads", self.dump, "--max-offset", 2, check=0)
        self.assertIn("the frequencies the dump recorded (layer_rope_inv_freq)", r.stderr)
        # control: one schedule for all layers is what --theta 1e4 computes, and it differs
        one = self.heads("--theta", "1e4")
        one_mass, _ = self.numpy_heads(np.stack([LOCAL] * 3))
        np.testing.assert_allclose(one["offset_mass"], one_mass, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(one["offset_mass"][[0, 2]], got["offset_mass"][[0, 2]])
        self.assertGreater(np.abs(one["offset_mass"][1] - mass[1]).max(), 1e-2)

    def decay(self, layer, *extra):
        out = self.path(f"decay{layer}.h5")
        r = run("rope-decay", "--mode", "file", "--input", self.dump, "--query",
                f"blocks.{layer}.attn.hook_q", "--key", f"blocks.{layer}.attn.hook_k",
                "--offsets", "0,1,2,5,10,23", "-o", out, "-q", "--force", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(out) as f:
            return f["activation"][...], dict(f.attrs)

    def numpy_decay(self, layer, freqs, offsets=(0, 1, 2, 5, 10, 23)):
        """mean over rows (query head h with key head h // 2, same position) of q^T R^-o k / d."""
        q, k = self.stored[layer]
        qs = q.reshape(-1, HEADS, DIM)
        ks = np.repeat(k.reshape(-1, KV_HEADS, DIM), HEADS // KV_HEADS, axis=1)
        a, b = chunk_pairs(ROTARY, "half")
        out = []
        for o in offsets:
            # R^-o rotates k by +o relative to q: q_a k_a + q_b k_b) cos + (q_a k_b - q_b k_a) sin
            c, s = np.cos(o * freqs), np.sin(o * freqs)
            dots = ((qs[..., a] * ks[..., a] + qs[..., b] * ks[..., b]) * c
                    + (qs[..., a] * ks[..., b] - qs[..., b] * ks[..., a]) * s).sum(-1)
            dots += (qs[..., ROTARY:] * ks[..., ROTARY:]).sum(-1)
            out.append(dots.mean() / DIM)
        return np.array(out)

    def test_rope_decay_file_mode_uses_the_querys_layer(self):
        got, attrs = self.decay(1)
        want = self.numpy_decay(1, GLOBAL)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        self.assertEqual(attrs["layer"], 1)
        self.assertEqual(attrs["rotary_dim"], ROTARY)
        # the sign convention: the same curve with R^+o would differ
        self.assertGreater(np.abs(self.numpy_decay(1, -GLOBAL) - want).max(), 1e-3)
        # control: --theta 1e4 (one schedule) gives layer 0's curve for layer 1's vectors
        one, _ = self.decay(1, "--theta", "1e4", "--head-dim", DIM)
        self.assertGreater(np.abs(one - want).max(), 1e-3)
        # --layer overrides the name; a name without a layer needs it
        other, attrs = self.decay(1, "--layer", 0)
        np.testing.assert_allclose(other, self.numpy_decay(1, LOCAL), rtol=1e-4, atol=1e-6)
        with h5py.File(self.dump, "r+") as f:
            f["q1"] = f["blocks.1.attn.hook_q"][...]
        r = run("rope-decay", "--mode", "file", "--input", self.dump, "--query", "q1", "--key",
                "blocks.1.attn.hook_k", "-o", self.path("x.h5"))
        self.assertOneLineError(r, 2, "--layer")

    def test_bad_tables_are_one_line_errors(self):
        for name, value, fragment in (("layer_rope_inv_freq", TABLE[:2], "2 rows"),
                                      ("layer_rope_inv_freq", TABLE[:, :3], "rotary_dim 8"),
                                      ("layer_rope_inv_freq", -TABLE, ">= 0"),
                                      ("layer_rope_inv_freq", TABLE[0], "2-D"),
                                      ("rope_inv_freq", TABLE, "1-D")):
            with self.subTest(name=name, fragment=fragment):
                path = self.path("bad.h5")
                write_dump(path, [{"hook_q": q, "hook_k": k} for q, k in self.qk],
                           extra_attrs={"rotary_dim": ROTARY, name: value})
                r = run("find-positional-heads", path, "--from", "qk", "-o", self.path("o.h5"))
                self.assertOneLineError(r, 1, name, fragment)
                self.assertFalse(os.path.exists(self.path("o.h5")))

    @unittest.skipUnless(os.path.exists(STORIES), "stories260K not present")
    def test_rope_dump_records_the_closed_form_and_freq_norms_reads_it(self):
        dump = self.path("stories.h5")
        r = run("rope-dump", STORIES, "--sample", 2, "--length", 16, "--seed", 1, "--what", "q,k",
                "-o", dump, "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(dump) as f:
            head_dim, layers = int(f.attrs["d_head"]), int(f.attrs["n_layers"])
            closed = 1e4 ** (-np.arange(head_dim // 2) * 2.0 / head_dim)
            table = f.attrs["layer_rope_inv_freq"]
            self.assertEqual(table.shape, (layers, head_dim // 2))
            np.testing.assert_allclose(table, np.stack([closed] * layers), rtol=1e-15)
            np.testing.assert_array_equal(f.attrs["layer_rotary_dim"], [head_dim] * layers)
        # p-RoPE: the recorded table keeps the highest half, zeros the rest
        half = self.path("half.h5")
        run("rope-dump", STORIES, "--sample", 1, "--length", 8, "--what", "q", "--p", 0.5, "-o",
            half, "-q", check=0)
        with h5py.File(half) as f:
            kept = np.where(np.arange(head_dim // 2) < head_dim // 4, closed, 0.0)
            np.testing.assert_allclose(f.attrs["layer_rope_inv_freq"][0], kept, rtol=1e-15, atol=0)
        out = self.path("norms.h5")
        run("freq-norms", dump, "-o", out, "-q", check=0)
        got = self.read(out)
        np.testing.assert_allclose(got["frequency"], closed, rtol=1e-15)
        np.testing.assert_allclose(got["layer_frequency"], np.stack([closed] * layers), rtol=1e-15)
        self.assertNotIn("q_unrotated_norms", got)  # every dim rotates
        # one schedule for every layer: the recorded table and --theta 1e4 find the same heads
        outs = []
        for extra in ((), ("--theta", "10000")):
            heads = self.path(f"heads{len(extra)}.h5")
            run("find-positional-heads", dump, "--from", "qk", "-o", heads, "-q", *extra, check=0)
            outs.append(self.read(heads))
        np.testing.assert_allclose(outs[0]["offset_mass"], outs[1]["offset_mass"], rtol=1e-6)
        np.testing.assert_allclose(outs[0]["layer_frequency"], outs[1]["layer_frequency"],
                                   rtol=1e-15)


if __name__ == "__main__":
    unittest.main()
