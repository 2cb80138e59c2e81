"""The demo dump (data/make-demo-dump) against an independent numpy reimplementation:
RoPE rotation (half split), GQA, causal scaled scores and softmax, and the planted heads."""
import json
import os
import unittest

import h5py
import numpy as np

from ropekit_test import TempDirTest, tool_path
import subprocess


def rotate_half_layout(x, positions, theta):
    """Hugging Face's formula, written independently: x*cos + rotate_half(x)*sin."""
    d = x.shape[-1]
    inv_freq = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angles = positions[:, None] * inv_freq[None, :]               # [T, d/2]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rotated_half = np.concatenate([-x2, x1], axis=-1)
    return x * cos + rotated_half * sin


class DemoDump(TempDirTest):
    def make(self, *args):
        out = self.path("demo.h5")
        r = subprocess.run([tool_path("make-demo-dump"), "-o", out, *args],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return h5py.File(out, "r")

    def test_rotation_scores_and_pattern_match_numpy(self):
        f = self.make()
        theta = f.attrs["rope_theta"]
        for layer in range(3):
            q = f[f"blocks.{layer}.attn.hook_q"][...].astype(np.float64)
            k = f[f"blocks.{layer}.attn.hook_k"][...].astype(np.float64)
            B, T, H, D = q.shape
            KV = k.shape[2]
            pos = np.arange(T, dtype=np.float64)
            rq = np.stack([rotate_half_layout(q[b], pos, theta) for b in range(B)])
            rk = np.stack([rotate_half_layout(k[b], pos, theta) for b in range(B)])
            np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_q"][...], rq, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(f[f"blocks.{layer}.attn.hook_rot_k"][...], rk, rtol=1e-5, atol=1e-4)
            scores = f[f"blocks.{layer}.attn.hook_attn_scores"][...]
            pattern = f[f"blocks.{layer}.attn.hook_pattern"][...]
            mask = np.triu(np.ones((T, T), dtype=bool), 1)
            for b in range(B):
                for h in range(H):
                    s = rq[b, :, h, :] @ rk[b, :, h // (H // KV), :].T / np.sqrt(D)
                    self.assertTrue(np.all(np.isneginf(scores[b, h][mask])))
                    np.testing.assert_allclose(scores[b, h][~mask], s[~mask], rtol=1e-4, atol=1e-3)
                    s[mask] = -np.inf
                    p = np.exp(s - s.max(axis=1, keepdims=True))
                    p /= p.sum(axis=1, keepdims=True)
                    np.testing.assert_allclose(pattern[b, h], p, atol=1e-5)

    def test_planted_heads_attend_at_their_offset_and_no_other_head_does(self):
        f = self.make()
        planted = {(p["layer"], p["head"]): p["offset"] for p in json.loads(f.attrs["planted_heads"])}
        self.assertEqual(len(planted), 4)
        for layer in range(3):
            P = f[f"blocks.{layer}.attn.hook_pattern"][...]
            B, H, T, _ = P.shape
            for h in range(H):
                masses = {r: P[:, h, np.arange(r, T), np.arange(r, T) - r].min() for r in range(8)}
                if (layer, h) in planted:
                    self.assertGreater(masses[planted[(layer, h)]], 0.99)
                else:
                    self.assertLess(max(masses.values()), 0.5, (layer, h))

    def planted_bands(self, f):
        bands = json.loads(f.attrs["planted_bands"])
        self.assertTrue(bands, "the demo planted no bands: the band tests would check nothing")
        return bands

    def test_planted_bands_are_the_heads_sharing_no_key_head_with_a_positional_one(self):
        # 4 query heads share 2 key heads; a positional head's key head carries psi, so only
        # heads of the other key head are semantic (demo_dump.hpp), each with one band among the
        # four lowest frequencies, 12..15 of 16 (docs/formats.md).
        f = self.make()
        planted = json.loads(f.attrs["planted_heads"])
        positional_groups = {(p["layer"], p["head"] // 2) for p in planted}
        semantic = sorted((layer, h) for layer in range(3) for h in range(4)
                          if (layer, h // 2) not in positional_groups)
        bands = self.planted_bands(f)
        self.assertEqual(sorted((b["layer"], b["head"]) for b in bands), semantic)
        self.assertEqual(len(semantic), 6)
        for band in bands:
            self.assertIn(band["frequency"], range(12, 16), band)

    def test_bands_carry_the_most_norm_of_semantic_heads(self):
        f = self.make()
        for band in self.planted_bands(f):
            q = f[f"blocks.{band['layer']}.attn.hook_q"][:, :, band["head"], :]
            d = q.shape[-1]
            chunk_norms = np.sqrt(q[..., : d // 2] ** 2 + q[..., d // 2:] ** 2).mean(axis=(0, 1))
            self.assertEqual(int(np.argmax(chunk_norms)), band["frequency"])

    def test_f16_output_reads_back_as_float16_in_h5py(self):
        f = self.make("--dtype", "f16", "--tokens", "16")
        self.assertEqual(f["blocks.0.attn.hook_q"].dtype, np.float16)
        self.assertEqual(f["blocks.0.attn.hook_q"].shape, (2, 16, 4, 32))

    def test_too_small_spec_is_a_usage_error(self):
        r = subprocess.run([tool_path("make-demo-dump"), "--layers", "2", "-o",
                            self.path("x.h5")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertFalse(os.path.exists(self.path("x.h5")))
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == "__main__":
    unittest.main()
