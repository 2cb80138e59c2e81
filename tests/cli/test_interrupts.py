"""Interrupted runs leave nothing behind (issue 18). Each long-running tool is interrupted with
SIGINT, SIGTERM or SIGHUP at three moments: as soon as its handler is installed (right after
start), while its hidden temporary exists (during the write, or while stdin is being spooled),
and once its output is in place (after). Its output pipe is also closed under it (SIGPIPE, and
EPIPE when the parent ignores SIGPIPE). Every interrupted run must exit 128 + signal with the one
line "TOOL: interrupted; nothing written", leave no file in the output directory or $TMPDIR, and
leave every input byte for byte as it was; a run interrupted after its commit exits 0 with a
complete output."""
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

from ropekit_test import SANITIZED, SHARED_DATA, tool_path

STORIES = os.path.join(SHARED_DATA, "stories260K.bin")
MOMENTS = ("start", "write", "after")
# Sizes that keep each write going for a second or more in a release build; the sanitizer build
# is several times slower, so a quarter of that still gives time to interrupt it mid-write.
TOKENS = "256" if SANITIZED else "512"
SEQUENCES = "4" if SANITIZED else "16"
KEY_TOKENS = "1536" if SANITIZED else "3072"
WEIGHTS = (10 if SANITIZED else 40) << 20
DEMO = ["--batch", "2", "--tokens", TOKENS, "--heads", "8", "--kv-heads", "4", "--head-dim", "64"]


def tree_digest(path):
    """sha256 over a file, or over every file of a directory with its relative path."""
    digest = hashlib.sha256()
    paths = [path]
    if os.path.isdir(path):
        paths = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    for p in paths:
        digest.update(os.path.relpath(p, path).encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def catches(pid, sig):
    """True once the process has a handler for `sig` (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except FileNotFoundError:
        pass
    return False


def write_safetensors(path, name, array):
    header = json.dumps({name: {"dtype": "F32", "shape": list(array.shape),
                                "data_offsets": [0, array.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.write(array.astype("<f4").tobytes())


class InterruptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inputs = tempfile.mkdtemp(prefix="ropekit-interrupt-inputs-")
        cls.dump = os.path.join(cls.inputs, "dump.h5")  # about 100 MB, mostly patterns
        subprocess.run([tool_path("make-demo-dump"), "-q", "-o", cls.dump, *DEMO], check=True)
        cls.checkpoint = os.path.join(cls.inputs, "hf")  # a 160 MB weight file to copy
        os.makedirs(os.path.join(cls.checkpoint, "extra"))
        config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                  "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
                  "num_hidden_layers": 1, "rope_theta": 10000.0,
                  "max_position_embeddings": 2048}
        with open(os.path.join(cls.checkpoint, "config.json"), "w") as f:
            json.dump(config, f)
        write_safetensors(os.path.join(cls.checkpoint, "model.safetensors"), "w",
                          np.ones(WEIGHTS, dtype=np.float32))
        with open(os.path.join(cls.checkpoint, "extra", "notes.txt"), "w") as f:
            f.write("kept as is\n")
        cls.digests = {p: tree_digest(p) for p in (cls.dump, cls.checkpoint, STORIES)}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.inputs, ignore_errors=True)

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ropekit-interrupt-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.fresh_directories()

    def fresh_directories(self):
        """An empty output directory and an empty $TMPDIR for the next run."""
        self.out_dir = tempfile.mkdtemp(prefix="out-", dir=self.base)
        self.tmpdir = tempfile.mkdtemp(prefix="tmpdir-", dir=self.base)

    # The long-running tools: (tool, arguments with OUT for the output, output name).
    def commands(self):
        return {
            "prope-convert-dump": ("prope-convert", [self.dump, "--p", "0.5", "-o", "OUT"],
                                   "out.h5"),
            "prope-convert-checkpoint": ("prope-convert",
                                         [self.checkpoint, "--p", "0.5", "--copy", "-o", "OUT"],
                                         "out"),
            "rope-dump": ("rope-dump", [STORIES, "--sample", SEQUENCES, "--length", "256", "-o",
                                        "OUT"], "out.h5"),
            "construct-key": ("construct-key", ["--query-ones", "--head", "previous", "--tokens",
                                                KEY_TOKENS, "-o", "OUT"], "out.h5"),
            "make-demo-dump": ("make-demo-dump", DEMO + ["-o", "OUT"], "out.h5"),
        }

    def start(self, tool, args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
              preexec_fn=None):
        env = dict(os.environ, TMPDIR=self.tmpdir)
        return subprocess.Popen([tool_path(tool), "-q"] + args, stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE, env=env, preexec_fn=preexec_fn)

    def wait_for(self, proc, condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            if proc.poll() is not None:
                self.fail(f"the run ended (exit {proc.returncode}) before {what}: "
                          f"{proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                proc.kill()
                self.fail(f"no {what} within {timeout} s")
            time.sleep(0.002)

    def temporaries(self):
        return glob.glob(os.path.join(self.out_dir, ".*.tmp-*"))

    def assert_interrupted(self, proc, tool, sig, stderr):
        self.assertEqual(proc.returncode, 128 + sig, stderr)
        self.assertEqual(stderr.strip().splitlines(), [f"{tool}: interrupted; nothing written"])
        self.assertEqual(os.listdir(self.out_dir), [], "no output and no temporary left")
        self.assertEqual(os.listdir(self.tmpdir), [], "nothing left in $TMPDIR")

    def assert_inputs_unchanged(self):
        for path, digest in self.digests.items():
            self.assertEqual(tree_digest(path), digest, f"input {path} was modified")

    def interrupt(self, name, moment, sig):
        tool, args, out_name = self.commands()[name]
        out = os.path.join(self.out_dir, out_name)
        proc = self.start(tool, [out if a == "OUT" else a for a in args])
        if moment == "start":
            self.wait_for(proc, lambda: catches(proc.pid, sig), "handler installed")
        elif moment == "write":
            self.wait_for(proc, self.temporaries, "temporary output")
        else:
            self.wait_for(proc, lambda: os.path.exists(out), "committed output")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        stderr = stderr.decode()
        if moment == "after":
            self.assertEqual(proc.returncode, 0, stderr)
            self.assertEqual(os.listdir(self.out_dir), [out_name], "only the finished output")
            if out.endswith(".h5"):
                with h5py.File(out, "r") as f:
                    self.assertIn("command_line", f.attrs)
        else:
            self.assert_interrupted(proc, tool, sig, stderr)
        self.assert_inputs_unchanged()

    def test_every_long_running_tool_at_every_moment(self):
        signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
        for i, name in enumerate(self.commands()):
            for j, moment in enumerate(MOMENTS):
                sig = signals[(i + j) % len(signals)]
                with self.subTest(tool=name, moment=moment, signal=sig.name):
                    self.fresh_directories()
                    self.interrupt(name, moment, sig)

    def test_ctrl_c_exits_130(self):
        self.interrupt("make-demo-dump", "write", signal.SIGINT)

    def test_freq_norms_interrupted_while_spooling_a_pipe(self):
        out = os.path.join(self.out_dir, "norms.h5")
        proc = self.start("freq-norms", ["-", "-o", out], stdin=subprocess.PIPE)
        with open(self.dump, "rb") as f:
            proc.stdin.write(f.read(8 << 20))  # part of the dump: the tool waits for the rest
            proc.stdin.flush()
        self.wait_for(proc, lambda: os.listdir(self.tmpdir), "spooled copy of stdin")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc.stdin.close()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        self.assert_interrupted(proc, "freq-norms", signal.SIGTERM, stderr)
        self.assert_inputs_unchanged()

    def test_freq_norms_from_a_pipe_finishes_when_not_interrupted(self):
        out = os.path.join(self.out_dir, "norms.h5")
        with open(self.dump, "rb") as f:
            proc = self.start("freq-norms", ["-", "-o", out], stdin=f)
            _, stderr = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertEqual(os.listdir(self.out_dir), ["norms.h5"])
        self.assertEqual(os.listdir(self.tmpdir), [], "the spooled copy is gone")

    def closed_pipe(self, tool, args, preexec_fn=None):
        """Runs `tool args -o -`, reads a little of its output, then closes the pipe."""
        proc = self.start(tool, args + ["-o", "-"], stdout=subprocess.PIPE, preexec_fn=preexec_fn)
        first = proc.stdout.read(4096)
        proc.stdout.close()
        _, stderr = proc.communicate(timeout=120)
        self.assertEqual(first[:8], b"\x89HDF\r\n\x1a\n", "the run had started writing")
        self.assert_interrupted(proc, tool, signal.SIGPIPE, stderr.decode())
        self.assert_inputs_unchanged()

    def test_closed_output_pipe_ends_the_run(self):
        for tool, args in (("make-demo-dump", DEMO), ("prope-convert", [self.dump, "--p", "0.5"]),
                           ("rope-dump", [STORIES, "--sample", SEQUENCES, "--length", "256"])):
            with self.subTest(tool=tool):
                self.fresh_directories()
                self.closed_pipe(tool, args)

    def test_closed_output_pipe_with_sigpipe_ignored(self):
        # A parent that ignores SIGPIPE passes that on: writes then fail with EPIPE.
        self.closed_pipe("make-demo-dump", DEMO,
                         preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))

    def test_inherited_ignored_sighup_stays_ignored(self):
        # nohup: the run must not stop on SIGHUP, and then finishes normally.
        tool, args, _ = self.commands()["make-demo-dump"]
        out = os.path.join(self.out_dir, "out.h5")
        proc = self.start(tool, [out if a == "OUT" else a for a in args],
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        self.wait_for(proc, self.temporaries, "temporary output")
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertEqual(os.listdir(self.out_dir), ["out.h5"])


if __name__ == "__main__":
    unittest.main()
