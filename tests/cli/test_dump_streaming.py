"""Dumps larger than the memory the tools may use: freq-norms runs under an address-space limit
(RLIMIT_AS) smaller than the dump, and both tools' peak RSS stays far below the dump size."""
import os
import unittest

import h5py
import numpy as np

from dump_fixtures import chunk_norms
from ropekit_test import SANITIZED, TempDirTest, run_measured, tool_path

MiB = 1 << 20


@unittest.skipIf(SANITIZED, "memory limits cannot be measured under AddressSanitizer")
class Streaming(TempDirTest):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="ropekit-stream-")
        cls.dump = os.path.join(cls.dir, "big.h5")
        B, T, H, KV, D, cls.L = 16, 1024, 8, 2, 64, 8
        rng = np.random.default_rng(0)
        with h5py.File(cls.dump, "w") as f:
            f.attrs["rope_theta"] = 10000.0
            for layer in range(cls.L):
                for hook, heads in (("hook_rot_q", H), ("hook_rot_k", KV)):
                    d = f.create_dataset(f"blocks.{layer}.attn.{hook}", (B, T, heads, D), "f4",
                                         chunks=(1, T, heads, D))
                    for b in range(B):
                        x = rng.standard_normal((T, heads, D), dtype=np.float32)
                        x *= np.linspace(0.5, 2.0, D, dtype=np.float32)
                        d[b] = x
                if layer == cls.L - 1:
                    cls.last_q = f[f"blocks.{layer}.attn.hook_rot_q"][...]
        cls.size = os.path.getsize(cls.dump)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_freq_norms_under_an_address_space_limit_smaller_than_the_dump(self):
        limit = 250 * MiB
        self.assertGreater(self.size, limit + 50 * MiB)
        out = os.path.join(self.dir, "norms.h5")
        code, _, err, rss = run_measured([tool_path("freq-norms"), self.dump, "-o", out, "-q",
                                          "--force"], address_space=limit)
        self.assertEqual(code, 0, err)
        self.assertLess(rss, 64 * MiB)
        with h5py.File(out) as f:
            np.testing.assert_allclose(f["q_norms"][self.L - 1], chunk_norms(self.last_q, "half"),
                                       rtol=1e-5)

    def test_find_positional_heads_peak_rss_is_far_below_the_dump(self):
        code, out, err, rss = run_measured([tool_path("find-positional-heads"), self.dump,
                                            "--from", "qk", "-q"])
        self.assertEqual(code, 0, err)
        self.assertEqual(len(out.decode().strip().split("\n")), 1 + self.L * 8)
        self.assertLess(rss, 80 * MiB)
        self.assertLess(rss, self.size / 4)


if __name__ == "__main__":
    unittest.main()
