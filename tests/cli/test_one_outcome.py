"""One run, one outcome (issue 18): a run that writes an HDF5 output and --plot figures commits
all of them or none, and every output location is checked before the work starts."""
import os
import unittest

import numpy as np

from dump_fixtures import random_qk, write_dump
from ropekit_test import TempDirTest, run


class OneOutcomeTest(TempDirTest):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(3)
        q, k = random_qk(rng, 2, 24, 2, 2, 16)
        self.dump = self.path("dump.h5")
        write_dump(self.dump, [{"hook_q": q, "hook_k": k}] * 2)

    def leftovers(self, folder=None):
        folder = folder or self.tmp
        return sorted(n for n in os.listdir(folder) if n != "dump.h5")

    def test_an_output_that_is_a_directory_is_refused_before_the_work(self):
        os.mkdir(self.path("adir"))
        cases = [("freq-norms", self.dump, "--plot", self.path("fig")),
                 ("find-positional-heads", self.dump, "--from", "qk", "--plot", self.path("fig")),
                 ("rope-decay", "--mode", "ones", "--plot", self.path("fig.svg"))]
        for tool, *args in cases:
            with self.subTest(tool=tool):
                r = run(tool, *args, "-o", self.path("adir"), "--force")
                self.assertOneLineError(r, 2, f"{tool}: ", "adir: is a directory")
                self.assertEqual(self.leftovers(), ["adir"])
                self.assertEqual(os.listdir(self.path("adir")), [])

    def test_a_missing_figure_folder_stops_the_run_before_any_output(self):
        for tool, extra in [("freq-norms", ()), ("find-positional-heads", ("--from", "qk"))]:
            with self.subTest(tool=tool):
                r = run(tool, self.dump, *extra, "-o", self.path("n.h5"),
                        "--plot", self.path("missing/fig"))
                self.assertOneLineError(r, 1, f"{tool}: ", "missing", "does not exist")
                self.assertEqual(self.leftovers(), [])
                self.assertNotIn("wrote", r.stdout + r.stderr)

    def test_a_figure_that_cannot_be_written_leaves_no_hdf5_output(self):
        # The HDF5 output is finished first; a figure whose place is taken by a directory then
        # fails, and the finished HDF5 output must go with it.
        for tool, extra, figure in [("freq-norms", (), "fig-k-layers.svg"),
                                    ("find-positional-heads", ("--from", "qk"), "fig-mass.svg")]:
            with self.subTest(tool=tool):
                os.mkdir(self.path(figure))
                r = run(tool, self.dump, *extra, "-q", "-o", self.path("n.h5"), "--plot",
                        self.path("fig"), "--force")
                self.assertOneLineError(r, 2, f"{tool}: ", figure, "is a directory")
                self.assertEqual(self.leftovers(), [figure])
                os.rmdir(self.path(figure))


if __name__ == "__main__":
    unittest.main()
