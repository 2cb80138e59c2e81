"""freq-norms and find-positional-heads on the lead's demo dump (data/make-demo-dump): they must
find exactly the heads and bands it planted (root attributes planted_heads, planted_bands)."""
import json
import subprocess
import unittest

import h5py

from ropekit_test import TempDirTest, run, tool_path
from test_find_positional_heads import parse_tsv


class DemoAnalysis(TempDirTest):
    def make(self, *args):
        out = self.path("demo.h5")
        r = subprocess.run([tool_path("make-demo-dump"), "-o", out, "--force", *args],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(out) as f:
            heads = json.loads(f.attrs["planted_heads"])
            bands = json.loads(f.attrs["planted_bands"])
        # Empty lists would make the tests below check nothing.
        self.assertTrue(heads, "the demo planted no positional heads")
        self.assertTrue(bands, "the demo planted no bands")
        return out, sorted((h["layer"], h["head"], h["offset"]) for h in heads), bands

    def test_finds_exactly_the_planted_heads(self):
        for dtype in ("f32", "f16"):
            path, planted, _ = self.make("--dtype", dtype)
            for flags in ([], ["--from", "qk"], ["--from", "qk", "--scale", "none"],
                          ["--exclude-bos"], ["--epsilon", "0.01"]):
                with self.subTest(dtype=dtype, flags=flags):
                    rows = parse_tsv(run("find-positional-heads", path, "-q", *flags, check=0).stdout)
                    found = sorted((x["layer"], x["head"], x["offset"]) for x in rows if x["positional"])
                    self.assertEqual(found, planted)
                    for x in rows:
                        if x["positional"]:
                            # the demo builds them from the four highest frequencies
                            self.assertGreater(x["top_freq_share"], 0.95)
                        else:
                            self.assertLess(x["min_mass"], 0.5)

    def test_freq_norms_finds_the_planted_bands(self):
        path, planted, bands = self.make()
        r = run("freq-norms", path, "--tensor", "q", "-o", self.path("n.h5"), "-q", check=0)
        rows = [line.split("\t") for line in r.stdout.strip().split("\n")[1:]]
        found = {(int(c[1]), int(c[2])): [int(b.split(":")[0]) for b in c[4].split(",")] if c[4] != "-" else []
                 for c in rows}
        for b in bands:
            self.assertIn(b["frequency"], found[(b["layer"], b["head"])], b)
        positional = {(l, h) for l, h, _ in planted}
        for (layer, head), freqs in found.items():
            if (layer, head) in positional:
                self.assertEqual(freqs, [], (layer, head))
            # at most one band per head: the demo plants one
            self.assertLessEqual(len(freqs), 1)
        shares = {(int(c[1]), int(c[2])): float(c[3]) for c in rows}
        for key in positional:
            self.assertGreater(shares[key], 0.95)


class ConstructedHeads(TempDirTest):
    """construct-key --head (issue 3) builds one positional head: we must find it, and only it."""

    def test_finds_the_constructed_head_at_its_offset(self):
        for kind, offset in (("diagonal", 0), ("previous", 1), ("offset:4", 4), ("offset:11", 11)):
            for scale in ("sqrt", "none"):
                with self.subTest(kind=kind, scale=scale):
                    path = self.path("head.h5")
                    run("construct-key", "--query-ones", "--head", kind, "--tokens", "64",
                        "--epsilon", "0.01", "--scale", scale, "-o", path, "--force", "-q", check=0)
                    for flags in ([], ["--from", "qk", "--scale", scale]):
                        rows = parse_tsv(run("find-positional-heads", path, "-q", "--epsilon", "0.01",
                                             "--max-offset", "16", *flags, check=0).stdout)
                        self.assertEqual(len(rows), 1)
                        self.assertEqual((rows[0]["layer"], rows[0]["head"], rows[0]["offset"]), (0, 0, offset))
                        self.assertTrue(rows[0]["positional"], rows[0])
                        self.assertGreaterEqual(rows[0]["min_mass"], 0.99)


if __name__ == "__main__":
    unittest.main()
