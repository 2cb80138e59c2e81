"""Under an address-space limit (ulimit -v) the tools finish: OpenBLAS's pool threads, started
when the library loads, retry forever to map buffers they cannot get, and a normal exit would
wait for them. Tools that need BLAS refuse in one line; the others run. A hang fails the test
through the timeout."""
import os
import resource
import subprocess
import unittest

from ropekit_test import SANITIZED, TempDirTest, tool_path

MiB = 1 << 20


def limited(megabytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (megabytes * MiB, megabytes * MiB))
    return apply


@unittest.skipIf(SANITIZED, "AddressSanitizer needs terabytes of address space")
class AddressSpaceLimit(TempDirTest):
    def run_limited(self, megabytes, *args):
        return subprocess.run([tool_path(args[0])] + [str(a) for a in args[1:]],
                              capture_output=True, text=True, timeout=60,
                              preexec_fn=limited(megabytes))

    def setUp(self):
        super().setUp()
        self.dump = self.path("demo.h5")
        subprocess.run([tool_path("make-demo-dump"), "-o", self.dump, "-q"], check=True)

    def test_tools_without_blas_run_under_a_small_limit(self):
        out = self.path("norms.h5")
        r = self.run_limited(200, "freq-norms", self.dump, "-o", out, "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(out))
        for flag in ("--help", "--version"):
            self.assertEqual(self.run_limited(200, "freq-norms", flag).returncode, 0)
        self.assertEqual(self.run_limited(200, "freq-norms", "--bogus").returncode, 2)

    def test_tools_that_need_blas_refuse_in_one_line(self):
        cases = [("find-positional-heads", self.dump, "--from", "qk"),
                 ("rope-decay", "--mode", "gaussian", "--samples", 100)]
        for case in cases:
            with self.subTest(tool=case[0]):
                out = self.path(case[0] + ".h5")
                r = self.run_limited(300, *case, "--threads", 2, "-o", out, "-q")
                self.assertEqual(r.returncode, 1, r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn("ulimit -v", lines[0])
                self.assertTrue(lines[0].startswith(case[0] + ": "), lines[0])
                self.assertFalse(os.path.exists(out))
                self.assertEqual(sorted(os.listdir(self.tmp)), ["demo.h5"])


if __name__ == "__main__":
    unittest.main()
