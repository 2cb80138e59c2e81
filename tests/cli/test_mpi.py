"""The MPI build (make mpi -> build-mpi/): under mpirun -n 1, 2 and 3, freq-norms,
find-positional-heads and rope-decay (gaussian: samples split; file: sequences split) give the
serial tool's output, and rope-dump's ranks write the shards of one dump equal to the serial dump; an error on any rank is one line naming the
rank and the file, every rank stops, and no output is left. Skipped while build-mpi/ does not exist (the serial build needs no MPI)."""
import os
import shutil
import subprocess
import unittest

import h5py
import numpy as np

from ropekit_test import SHARED_DATA, SOURCE, TempDirTest, run
from test_rope_decay_merge import scaled_differences
from test_sharded_dumps import make_layers, write_split

MPI_BIN = os.environ.get("ROPEKIT_MPI_BIN", os.path.join(SOURCE, "build-mpi"))
MPIRUN = shutil.which("mpirun")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def mpi_run(ranks, tool, *args):
    cmd = [MPIRUN, "--oversubscribe", "-n", str(ranks), os.path.join(MPI_BIN, tool)]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          timeout=600, env=ENV)


STORIES = os.path.join(SHARED_DATA, "stories260K.bin")
HAVE_MPI_BUILD = os.path.exists(os.path.join(MPI_BIN, "freq-norms")) and MPIRUN is not None


@unittest.skipUnless(HAVE_MPI_BUILD or os.environ.get("CI") == "true",
                     f"no MPI build ({MPI_BIN}/freq-norms; make mpi builds it)")
class MpiRuns(TempDirTest):
    def setUp(self):
        super().setUp()
        # CI builds it first (.ci/run): there, a missing MPI build fails instead of skipping.
        self.assertTrue(HAVE_MPI_BUILD, f"{MPI_BIN}/freq-norms or mpirun missing: run make mpi")

    def assert_datasets_equal(self, f, want):
        """f holds exactly want's datasets, each equal to 1e-12 relative (docs/scaling.md)."""
        self.assertEqual(sorted(f), sorted(want))
        for k in want:
            np.testing.assert_allclose(f[k][...], want[k], rtol=1e-12, atol=0, err_msg=k)

    def write_shards(self, layers, sizes):
        return write_split(self.path, layers, sizes, "shard")

    def test_freq_norms_under_1_2_and_3_ranks_is_the_serial_output(self):
        shards = self.write_shards(make_layers(), [3, 4])  # 7 sequences: 7, 4+3, 2+2+3
        serial = self.path("serial.h5")
        expected = run("freq-norms", *shards, "--exclude-bos", "-o", serial, check=0).stdout
        with h5py.File(serial) as f:
            want = {k: f[k][...] for k in f}
        for ranks in (1, 2, 3):
            with self.subTest(ranks=ranks):
                out = self.path(f"mpi{ranks}.h5")
                r = mpi_run(ranks, "freq-norms", *shards, "--exclude-bos", "-o", out, "-q")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, expected)
                with h5py.File(out) as f:
                    self.assert_datasets_equal(f, want)
                    self.assertEqual(f.attrs["positions_averaged"], 7 * 9)

    def test_find_positional_heads_under_1_2_and_3_ranks_is_the_serial_output(self):
        shards = self.write_shards(make_layers(seed=5), [1, 6])
        flags = ("--from", "qk", "--exclude-bos", "--threads", "1")
        serial = self.path("serial.h5")
        expected = run("find-positional-heads", *shards, *flags, "-o", serial, check=0).stdout
        with h5py.File(serial) as f:
            want = {k: f[k][...] for k in f}
        for ranks in (1, 2, 3):
            with self.subTest(ranks=ranks):
                out = self.path(f"heads{ranks}.h5")
                r = mpi_run(ranks, "find-positional-heads", *shards, *flags, "-o", out, "-q")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, expected)
                with h5py.File(out) as f:
                    self.assert_datasets_equal(f, want)
                    self.assertEqual(f.attrs["sequences"], 7)

    def assertSameDecay(self, serial, out):
        with h5py.File(serial) as a, h5py.File(out) as b:
            self.assertEqual(sorted(a), sorted(b))
            for k in ("mode", "d", "theta", "p", "samples", "seed"):
                self.assertEqual(str(a.attrs[k]), str(b.attrs[k]), k)
            np.testing.assert_array_equal(a["offset"][...], b["offset"][...])
        # The documented tolerance (docs/scaling.md): 1e-12 of each sum's scale.
        for k, worst in scaled_differences(serial, out).items():
            self.assertLessEqual(worst, 1e-12, k)

    def test_rope_decay_gaussian_under_1_2_and_3_ranks_is_the_serial_output(self):
        flags = ("--mode", "gaussian", "--samples", 2500, "--head-dim", 32, "--seed", 5,
                 "--offsets", "0-300,1000-9000:1000")  # 2500 pairs: 1250 + 1250, 833 + 833 + 834
        serial = self.path("serial.h5")
        run("rope-decay", *flags, "-o", serial, "-q", check=0)
        for ranks in (1, 2, 3):
            with self.subTest(ranks=ranks):
                out = self.path(f"gauss{ranks}.h5")
                r = mpi_run(ranks, "rope-decay", *flags, "-o", out, "-q")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertSameDecay(serial, out)
                with h5py.File(out) as f:
                    self.assertEqual(f.attrs["first_sample"], 0)
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         ["gauss1.h5", "gauss2.h5", "gauss3.h5", "serial.h5"])

    def test_rope_decay_file_mode_under_1_2_and_3_ranks_is_the_serial_output(self):
        dump = self.write_shards(make_layers(seed=8), [7])[0]  # 7 sequences, GQA keys
        flags = ("--mode", "file", "--input", dump, "--query", "blocks.0.attn.hook_q", "--key",
                 "blocks.0.attn.hook_k", "--max-offset", 500)
        for cap in ((), ("--samples", 150)):  # 150 of 280 rows: ranks past it read nothing
            serial = self.path("serial.h5")
            run("rope-decay", *flags, *cap, "-o", serial, "--force", "-q", check=0)
            for ranks in (1, 2, 3):
                with self.subTest(ranks=ranks, cap=cap):
                    out = self.path(f"file{ranks}.h5")
                    r = mpi_run(ranks, "rope-decay", *flags, *cap, "-o", out, "--force", "-q")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertSameDecay(serial, out)

    def test_rope_decay_errors_under_mpi(self):
        layers = make_layers()
        layers[0]["hook_q"][6, 2, 1, 3] = np.nan  # the last sequence: rank 2's of 3
        dump = self.write_shards(layers, [7])[0]
        out = self.path("out.h5")
        r = mpi_run(3, "rope-decay", "--mode", "file", "--input", dump, "--query",
                    "blocks.0.attn.hook_q", "--key", "blocks.0.attn.hook_k", "-o", out, "-q")
        self.assertEqual(r.returncode, 1, r.stderr)
        ours = [line for line in r.stderr.splitlines() if line.startswith("rope-decay:")]
        self.assertEqual(len(ours), 1, r.stderr)
        self.assertIn("rank 2: " + dump, ours[0])
        self.assertIn("blocks.0.attn.hook_q: expected finite values, found nan in row 249",
                      ours[0])  # row (6 * 10 + 2) * 4 + 1
        # --check's per-sample pass does not split: refused once, before any work.
        r = mpi_run(2, "rope-decay", "--mode", "gaussian", "--samples", 100, "--check", "-o", out)
        ours = [line for line in r.stderr.splitlines() if line.startswith("rope-decay:")]
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(ours), 1, r.stderr)
        self.assertIn("--check", ours[0])
        self.assertEqual(os.listdir(self.tmp), ["shard-0.h5"])

    def assertShardsAreTheDump(self, serial, shards):
        with h5py.File(serial) as whole:
            parts = [h5py.File(s) for s in shards]
            try:
                for k in whole:
                    got = np.concatenate([p[k][...] for p in parts])
                    np.testing.assert_array_equal(got, whole[k][...], err_msg=k)  # bit-identical
                for p in parts:
                    self.assertEqual(p.attrs["token_source"], whole.attrs["token_source"])
                    self.assertEqual(p.attrs["tool"], "rope-dump")
            finally:
                for p in parts:
                    p.close()

    @unittest.skipUnless(os.path.exists(STORIES), f"{STORIES} is absent")
    def test_rope_dump_ranks_write_the_shards_of_the_serial_dump(self):
        flags = (STORIES, "--sample", 5, "--length", 24, "--seed", 3, "--batch", 1)
        serial = self.path("serial.h5")
        line = run("rope-dump", *flags, "-o", serial, check=0).stdout
        r = mpi_run(2, "rope-dump", *flags, "-o", self.path("dump.h5"), "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        # One line, from rank 0, over all 5 sequences (the prefill rate is a timing).
        self.assertEqual(r.stdout.split("; prefill")[0], line.split("; prefill")[0])
        self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
        shards = [self.path(f"dump-0000{i}-of-00002.h5") for i in range(2)]
        self.assertShardsAreTheDump(serial, shards)
        with h5py.File(shards[0]) as f:
            self.assertEqual(f["tokens"].shape, (2, 24))  # 5 sequences: 2 on rank 0, 3 on rank 1
        # Together they are one dump: freq-norms reads them as the serial dump.
        run("freq-norms", serial, "-o", self.path("a.h5"), "-q", check=0)
        run("freq-norms", *shards, "-o", self.path("b.h5"), "-q", check=0)
        with h5py.File(self.path("a.h5")) as a, h5py.File(self.path("b.h5")) as b:
            for k in a:
                np.testing.assert_allclose(b[k][...], a[k][...], rtol=1e-12, atol=0, err_msg=k)

    @unittest.skipUnless(os.path.exists(STORIES), f"{STORIES} is absent")
    def test_rope_dump_shard_size_deals_shards_to_ranks(self):
        with open(self.path("ids.txt"), "w") as f:
            f.write("".join(f"1 {30 + i} {40 + 2 * i} 7 9 11\n" for i in range(5)))
        flags = (STORIES, "--tokens", self.path("ids.txt"), "--batch", 1, "--what", "q,k")
        serial = self.path("serial.h5")
        run("rope-dump", *flags, "-o", serial, "-q", check=0)
        # 5 sequences in shards of 2: 2 + 2 + 1, one shard per rank of 3.
        r = mpi_run(3, "rope-dump", *flags, "--shard-size", 2, "-o", self.path("d.h5"), "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertShardsAreTheDump(serial, [self.path(f"d-0000{i}-of-00003.h5")
                                             for i in range(3)])
        # Fewer sequences than ranks: a rank without sequences writes no shard (2 of 3 ranks do).
        with open(self.path("two.txt"), "w") as f:
            f.write("1 30 40 7 9 11\n1 31 42 7 9 11\n")
        two = (STORIES, "--tokens", self.path("two.txt"), "--batch", 1, "--what", "q,k")
        run("rope-dump", *two, "-o", self.path("two.h5"), "-q", check=0)
        r = mpi_run(3, "rope-dump", *two, "-o", self.path("t.h5"), "-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(self.path("t-00002-of-00002.h5")))
        self.assertShardsAreTheDump(self.path("two.h5"), [self.path(f"t-0000{i}-of-00002.h5")
                                                          for i in range(2)])

    @unittest.skipUnless(os.path.exists(STORIES), f"{STORIES} is absent")
    def test_rope_dump_error_on_one_rank_leaves_no_shard(self):
        taken = self.path("dump-00001-of-00002.h5")  # rank 1's shard exists: rank 1 refuses
        with open(taken, "w") as f:
            f.write("mine")
        r = mpi_run(2, "rope-dump", STORIES, "--sample", 4, "--length", 8, "-o",
                    self.path("dump.h5"), "-q")
        ours = [line for line in r.stderr.splitlines() if line.startswith("rope-dump:")]
        self.assertEqual(len(ours), 1, r.stderr)
        self.assertIn("rank 1: ", ours[0])
        self.assertIn(taken, ours[0])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(os.listdir(self.tmp), ["dump-00001-of-00002.h5"])
        with open(taken) as f:
            self.assertEqual(f.read(), "mine")

    def test_an_error_on_one_rank_is_one_line_with_rank_and_file_and_no_output(self):
        layers = make_layers()
        layers[1]["hook_k"][6, 3, 0, 2] = np.inf  # the last sequence: rank 2's of 3
        shards = self.write_shards(layers, [3, 4])
        out = self.path("out.h5")
        r = mpi_run(3, "freq-norms", *shards, "-o", out, "-q")
        self.assertEqual(r.returncode, 1, r.stderr)
        ours = [line for line in r.stderr.splitlines() if line.startswith("freq-norms:")]
        self.assertEqual(len(ours), 1, r.stderr)
        self.assertIn("rank 2: " + shards[1], ours[0])
        self.assertIn("blocks.1.attn.hook_k: inf at batch 3, pos 3, head 0, dim 2", ours[0])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["shard-0.h5", "shard-1.h5"])

    def test_a_usage_error_is_reported_once(self):
        r = mpi_run(2, "freq-norms", self.path("missing.h5"), "-o", self.path("out.h5"))
        ours = [line for line in r.stderr.splitlines() if line.startswith("freq-norms:")]
        self.assertEqual(len(ours), 1, r.stderr)
        self.assertIn("missing.h5", ours[0])
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()
