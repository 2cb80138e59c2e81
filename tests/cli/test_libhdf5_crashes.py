"""Files that crash or hang libhdf5 itself (issue 18). tests/fuzz-known-libhdf5/ keeps corrupt
files on which libhdf5 1.10.8 overreads the heap (a crash under AddressSanitizer) or loops
forever reading an attribute. Every tool that reads HDF5 must still end within a few seconds with
exit 1 and one line naming the file, write nothing (no output, no temporary, nothing left in
$TMPDIR), and leave the file as it was: the first touch of an input happens in a forked child
with a time limit (docs/reliability.md)."""
import concurrent.futures
import glob
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from ropekit_test import SOURCE, sha256, tool_path

KNOWN = sorted(glob.glob(os.path.join(SOURCE, "tests", "fuzz-known-libhdf5", "fuzz_h5_dump", "*")))
# Each tool as it reads a dump; OUT is replaced by a path in a fresh output directory.
COMMANDS = {
    "freq-norms": ["INPUT", "-o", "OUT.h5"],
    "find-positional-heads": ["INPUT", "-o", "OUT.h5"],
    "rope-plot": ["INPUT:blocks.0.attn.hook_q", "-o", "OUT.svg"],
    "prope-convert": ["INPUT", "--input-kind", "h5", "--p", "0.5", "-o", "OUT.h5"],
    "rope-decay": ["--mode", "file", "--input", "INPUT", "--query", "blocks.0.attn.hook_q",
                   "--key", "blocks.0.attn.hook_k", "--head-dim", "4", "-o", "OUT.h5"],
}
LIMIT_SECONDS = 20  # the child gives up after 3 s without progress; the rest is a loaded machine


def run_one(tool, path, via_stdin, extra=()):
    """Runs one tool on one file; returns (exit code, stderr, seconds, leftovers)."""
    base = tempfile.mkdtemp(prefix="ropekit-libhdf5-")
    try:
        out_dir, tmpdir = os.path.join(base, "out"), os.path.join(base, "tmp")
        os.mkdir(out_dir)
        os.mkdir(tmpdir)
        source = "-" if via_stdin else path
        args = [a.replace("INPUT", source).replace("OUT", os.path.join(out_dir, "out"))
                for a in COMMANDS[tool]]
        start = time.monotonic()
        with open(path, "rb") if via_stdin else open(os.devnull, "rb") as stdin:
            feed = subprocess.PIPE if via_stdin else stdin
            proc = subprocess.Popen([tool_path(tool), "-q", *args, *extra], stdin=feed,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=dict(os.environ, TMPDIR=tmpdir))
            try:
                _, stderr = proc.communicate(stdin.read() if via_stdin else None,
                                             timeout=3 * LIMIT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
        seconds = time.monotonic() - start
        leftovers = os.listdir(out_dir) + os.listdir(tmpdir)
        return proc.returncode, stderr.decode(errors="replace"), seconds, leftovers
    finally:
        shutil.rmtree(base, ignore_errors=True)


class KnownLibhdf5Crashes(unittest.TestCase):
    def test_the_corpus_is_there(self):
        self.assertGreaterEqual(len(KNOWN), 7, "tests/fuzz-known-libhdf5/fuzz_h5_dump/")

    def check_all(self, cases, extra=()):
        digests = {path: sha256(path) for path in KNOWN}
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = {case: pool.submit(run_one, *case, extra) for case in cases}
        for (tool, path, via_stdin), future in results.items():
            code, stderr, seconds, leftovers = future.result()
            name = "<stdin>" if via_stdin else path
            with self.subTest(tool=tool, file=os.path.basename(path), stdin=via_stdin):
                self.assertEqual(code, 1, stderr)
                lines = stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, stderr)
                self.assertTrue(lines[0].startswith(f"{tool}: {name}: "), lines[0])
                self.assertNotIn("internal error", lines[0])
                self.assertLess(seconds, LIMIT_SECONDS, lines[0])
                self.assertEqual(leftovers, [], "no output, temporary or spooled copy left")
        for path, digest in digests.items():
            self.assertEqual(sha256(path), digest, f"{path} was modified")

    def test_every_tool_ends_with_one_line_on_every_known_file(self):
        self.check_all([(tool, path, False) for tool in COMMANDS for path in KNOWN])

    def test_known_files_on_stdin(self):
        self.check_all([("freq-norms", path, True) for path in KNOWN])

    def test_allow_external_does_not_skip_the_guard(self):
        self.check_all([("freq-norms", path, False) for path in KNOWN], ["--allow-external"])


if __name__ == "__main__":
    unittest.main()
