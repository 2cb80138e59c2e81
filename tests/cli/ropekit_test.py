"""Shared helpers for the end-to-end tests: run the real binaries, make temp dirs, hash files.

Tests run under Debian's /usr/bin/python3 (ctest sets it up) so that python3-h5py and
python3-numpy serve as an independent second implementation.
"""
import hashlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import unittest

BIN = os.environ.get("ROPEKIT_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("ROPEKIT_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED_DATA = os.path.join(SOURCE, "..", "shared", "data")
# Built with AddressSanitizer (make sanitize): it reserves terabytes of address space for its
# shadow memory and inflates RSS, so memory-bound tests cannot measure anything there.
SANITIZED = os.environ.get("ROPEKIT_SANITIZED") == "1"
# The product's tools: one binary per tools/*.cpp (CMakeLists.txt), so a new tool is covered by
# the contract tests without being listed here.
TOOLS = sorted(name[:-len(".cpp")] for name in os.listdir(os.path.join(SOURCE, "tools"))
               if name.endswith(".cpp"))


def tool_path(name):
    """The built binary `name` (a tool or a test helper). A binary that failed to build fails the
    test that needs it, naming it: it never turns into a skipped test."""
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        raise AssertionError(f"{name} is not built: {path} does not exist")
    return path


def run(tool, *args, stdin=None, check=None, text=True, timeout=600, prefix=(), preexec_fn=None):
    """Runs a built tool. `check` = expected exit code (asserted by the caller's helper);
    `prefix` = a command that runs the tool (setpriv ...); `preexec_fn` as in subprocess."""
    cmd = list(prefix) + [tool_path(tool)] + [str(a) for a in args]
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=text, timeout=timeout,
                            preexec_fn=preexec_fn)
    if check is not None and result.returncode != check:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}, expected {check}\n"
            f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}")
    return result


def run_measured(args, address_space=None):
    """Runs a command (a list) and returns (exit code, stdout bytes, stderr bytes, peak RSS in
    bytes of that process alone, from wait4's ru_maxrss), optionally under an address-space
    limit (RLIMIT_AS). One malloc arena, so the RSS does not depend on the thread count."""
    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    env = dict(os.environ, MALLOC_ARENA_MAX="1")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(args, stdout=out, stderr=err, preexec_fn=limit, env=env)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS, KiB on Linux
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, out.read(), err.read(), usage.ru_maxrss * 1024


def pipe(*commands, timeout=600):
    """Runs tools connected by pipes: pipe(["rope-decay", ...], ["rope-plot", "-", ...])."""
    procs = []
    prev = None
    for i, (tool, *args) in enumerate(commands):
        p = subprocess.Popen([tool_path(tool)] + [str(a) for a in args], stdin=prev,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append(p)
    out = procs[-1].stdout.read()
    results = []
    for p in procs:
        p.wait(timeout=timeout)
        results.append((p.returncode, p.stderr.read().decode()))
    return out, results


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def edit_json(path, change):
    """Loads a JSON file, lets change(data) modify it in place, writes it back."""
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)


def tree_state(path):
    """sha256 of a file, or of every file below a directory (by relative path): compare before
    and after a run to prove an input was not modified."""
    if os.path.isdir(path):
        state = {}
        for root, _, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                state[os.path.relpath(full, path)] = sha256(full)
        return state
    return sha256(path)


class TempDirTest(unittest.TestCase):
    """A test case with a fresh temporary directory in self.tmp."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ropekit-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def assertOneLineError(self, result, code, *fragments):
        """Exit code `code`, exactly one line on stderr, starting with the tool name."""
        self.assertEqual(result.returncode, code, result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
