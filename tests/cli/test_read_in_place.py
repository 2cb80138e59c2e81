"""freq-norms and find-positional-heads read contiguous f32 q/k datasets (h5py's default) in
place, through a mapping of the file, instead of copying them out of the page cache through
HDF5's pread calls (issue 17), also across the shards of one dump. Seen from outside with strace (scripts/install-deps installs it):
the bytes the tool pread()s from a contiguous dump are a small part of its q/k data (HDF5's
metadata), and from a chunked copy of the same dump at least all of it. This caught a
regression where every run restricted the dump to a sequence range, which turned the fast
path off without changing any result."""
import os
import re
import subprocess

import h5py
import numpy as np

from dump_fixtures import write_dump
from ropekit_test import SHARED_DATA, TempDirTest, run, tool_path

PREAD = re.compile(r"pread64\(\d+, .*\) = (\d+)$")


class ReadInPlace(TempDirTest):
    def dumps(self):
        rng = np.random.default_rng(3)
        shape = (2, 256, 4, 64)  # 2 sequences x 256 tokens x 4 heads x d = 64: 0.5 MB per tensor
        layers = [{"hook_q": rng.normal(size=shape), "hook_k": rng.normal(size=shape)}
                  for _ in range(2)]
        contiguous, chunked = self.path("contiguous.h5"), self.path("chunked.h5")
        write_dump(contiguous, layers)
        with h5py.File(contiguous) as src, h5py.File(chunked, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                self.assertIsNone(src[name].chunks)
                dst.create_dataset(name, data=src[name][...], chunks=(1, 64, 4, 64))
        data_bytes = 4 * int(np.prod(shape)) * 4  # four f32 tensors
        return contiguous, chunked, data_bytes

    def traced(self, name, *command):
        """The strace lines of one system call made while the command ran."""
        log = self.path("strace.txt")
        # LeakSanitizer cannot run under ptrace (the sanitizer build): leaks are checked by
        # every other test; here only the system calls matter.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS"), "detect_leaks=0") if o)
        r = subprocess.run(["strace", "-f", "-qq", "-e", f"trace={name}", "-o", log,
                            tool_path(command[0])] + list(command[1:]),
                           capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(log) as f:
            lines = [line.strip() for line in f if f"{name}(" in line]
        os.remove(log)
        return lines

    def syscalls(self, name, *command):
        """How many times the command made one system call."""
        return len(self.traced(name, *command))

    def test_short_sequences_are_mapped_in_runs(self):
        # 3000 sequences of 2 KB: mapped a run at a time, not one mmap per sequence (which, with
        # one HDF5 lookup per sequence, made this 7.5x slower than before shards were supported).
        rng = np.random.default_rng(4)
        path = self.path("short.h5")
        write_dump(path, [{"hook_q": rng.normal(size=(3000, 4, 2, 32)),
                           "hook_k": rng.normal(size=(3000, 4, 2, 32))}])
        one = self.path("one.h5")  # the same tool on one sequence: its own mmaps (libraries,
        write_dump(one, [{"hook_q": rng.normal(size=(1, 4, 2, 32)),  # malloc, sanitizers)
                          "hook_k": rng.normal(size=(1, 4, 2, 32))}])
        out = self.path("short-norms.h5")
        base = self.syscalls("mmap", "freq-norms", one, "-o", out, "-q", "--force")
        maps = self.syscalls("mmap", "freq-norms", path, "-o", out, "-q", "--force")
        self.assertLess(maps - base, 600, f"{maps - base} more mmap calls for 2 x 3000 sequences")
        data_bytes = 2 * 3000 * 4 * 2 * 32 * 4
        self.assertLess(self.pread_bytes("freq-norms", path, "-o", out, "-q", "--force"),
                        data_bytes // 10)

    def pread_bytes(self, *command):
        """The bytes the command read with pread()."""
        return sum(int(m.group(1)) for line in self.traced("pread64", *command)
                   if (m := PREAD.search(line)))

    def check_tool(self, tool, *flags):
        contiguous, chunked, data_bytes = self.dumps()
        out = self.path(tool + ".h5")
        mapped = self.pread_bytes(tool, contiguous, *flags, "-o", out, "-q", "--force")
        copied = self.pread_bytes(tool, chunked, *flags, "-o", out, "-q", "--force")
        self.assertLess(mapped, data_bytes // 10, f"{tool} pread {mapped} B of a {data_bytes} B dump")
        self.assertGreaterEqual(copied, data_bytes, f"{tool} on the chunked copy pread {copied} B")

    def test_freq_norms(self):
        self.check_tool("freq-norms")

    def test_freq_norms_on_two_threads(self):
        self.check_tool("freq-norms", "--threads", "2")

    def test_find_positional_heads_from_qk(self):
        self.check_tool("find-positional-heads", "--from", "qk")

    def test_shards_are_read_in_place_with_the_same_result(self):
        # Sequence 0 in one file, sequence 1 in another: the two shards of one dump.
        contiguous, _, data_bytes = self.dumps()
        shards = [self.path("shard-0.h5"), self.path("shard-1.h5")]
        with h5py.File(contiguous) as src:
            for b, shard in enumerate(shards):
                with h5py.File(shard, "w") as dst:
                    for key, value in src.attrs.items():
                        dst.attrs[key] = value
                    for name in src:
                        dst[name] = src[name][b:b + 1]
        for tool, flags in (("freq-norms", ()), ("find-positional-heads", ("--from", "qk"))):
            with self.subTest(tool=tool):
                whole, split = self.path("whole.h5"), self.path("split.h5")
                self.pread_bytes(tool, contiguous, *flags, "-o", whole, "-q", "--force")
                copied = self.pread_bytes(tool, *shards, *flags, "-o", split, "-q", "--force")
                self.assertLess(copied, data_bytes // 10, f"{tool} pread {copied} B of two shards")
                with h5py.File(whole) as a, h5py.File(split) as b:
                    for key in a:
                        np.testing.assert_array_equal(a[key][...], b[key][...], err_msg=key)

    def test_ropekit_dumps_are_contiguous_and_read_in_place(self):
        # rope-dump and make-demo-dump write contiguous datasets (they were chunked, which sent
        # freq-norms and find-positional-heads on ropekit's own dumps through HDF5's copy).
        dumps = [self.path("demo.h5")]
        run("make-demo-dump", "--heads", "4", "--kv-heads", "2", "--tokens", "256", "--batch",
            "2", "-o", dumps[0], "-q", check=0)
        model = os.path.join(SHARED_DATA, "stories260K.bin")
        if os.path.exists(model):
            dumps.append(self.path("rope-dump.h5"))
            run("rope-dump", model, "--ids", " ".join(["1"] * 512), "-o", dumps[1], "-q", check=0)
        for dump in dumps:
            with self.subTest(dump=os.path.basename(dump)), h5py.File(dump) as f:
                names = [n for n in f if n.endswith(("hook_q", "hook_k"))]
                self.assertTrue(names)
                for name in names:
                    self.assertIsNone(f[name].chunks, name)
                    self.assertIsNotNone(f[name].id.get_offset(), name)
                data_bytes = sum(f[n].size * f[n].dtype.itemsize for n in names)
                copied = self.pread_bytes("freq-norms", dump, "-o", self.path("n.h5"), "-q",
                                          "--force")
                self.assertLess(copied, data_bytes // 10, f"pread {copied} B of {data_bytes} B")
