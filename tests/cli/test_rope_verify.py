"""rope-verify: every check the issue names, over the default grid, with independent spot checks."""
import json
import unittest
from decimal import Decimal, getcontext

import numpy as np

from ropekit_test import TempDirTest, run

NAMES = ["rope-relative", "layout-equivalence", "prope-endpoints", "prop-3.1", "prop-3.2",
         "fig-2a", "prop-5.2", "thm-5.3-diagonal", "thm-5.3-previous", "thm-6.1", "lemma-a.1"]

# 2 pi to 40 digits, for an exact reduction in Decimal.
TWO_PI = Decimal("6.283185307179586476925286766559005768394")


class RopeVerify(TempDirTest):
    @classmethod
    def setUpClass(cls):
        r = run("rope-verify", "--json", "-q", check=0)
        cls.rows = json.loads(r.stdout)

    def row(self, name, d=256):
        return next(r for r in self.rows if r["name"] == name and r["head_dim"] == d)

    def test_every_named_check_runs_on_the_default_grid_and_passes(self):
        self.assertEqual([r["name"] for r in self.rows], NAMES + NAMES)
        self.assertEqual({(r["head_dim"], r["theta"]) for r in self.rows},
                         {(256, 1e4), (128, 5e5)})
        for r in self.rows:
            self.assertTrue(r["passed"], r)
            self.assertTrue(r["what"])
            self.assertIn(r["holds_when"], ("<=", ">=", ">"))
            self.assertRegex(r["cites"], r"(Sec\. [2-6]|App\. A)$")

    def test_report_has_one_short_line_per_check_and_a_final_count(self):
        r = run("rope-verify", "--head-dim", 64, "--theta", 100, "--check", "fig-2a",
                "--check", "prop-3.1", check=0)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertRegex(lines[0], r"^PASS prop-3.1\s+d=64 +theta=100 +smallest margin 1 - "
                                   r"runner-up/peak: [0-9.e-]+ > 0  \(Prop 3.1, Sec. 3\)$")
        self.assertRegex(lines[1], r"^PASS fig-2a\s+d=64 .*: [0-9.e-]+ <= 1e-12  "
                                   r"\(Figure 2a, Sec. 3\)$")
        self.assertEqual(lines[2], "rope-verify: 2 of 2 checks hold")
        self.assertEqual(r.stderr, "")  # results once, on stdout only
        self.assertTrue(all(len(line) <= 120 for line in lines), lines)

    def test_default_grid_report_counts_22_checks(self):
        r = run("rope-verify", check=0)
        self.assertTrue(r.stdout.endswith("rope-verify: 22 of 22 checks hold\n"), r.stdout)
        self.assertNotIn("paper.md", r.stdout)
        self.assertEqual(r.stderr, "")

    def test_verbose_adds_what_and_detail_below_each_line(self):
        r = run("rope-verify", "--head-dim", 64, "--theta", 100, "--check", "fig-2a", "--verbose",
                check=0)
        lines = r.stdout.strip().splitlines()
        self.assertTrue(lines[0].startswith("PASS fig-2a"))
        self.assertTrue(lines[1].startswith("     all-ones q = k"), lines)
        self.assertTrue(lines[2].startswith("     values 1.000"), lines)
        self.assertEqual(lines[-1], "rope-verify: 1 of 1 checks hold")

    def test_a_misspelt_check_lists_the_valid_names(self):
        r = run("rope-verify", "--check", "prop-3.3")
        self.assertOneLineError(r, 2, "unknown check 'prop-3.3'", "; the checks are rope-relative",
                                "prop-3.1", "lemma-a.1")

    def test_fig_2a_against_numpy_closed_form(self):
        g = 1e4 ** (-2 * np.arange(128) / 256)
        values = [(2 / 256) * np.cos(o * g).sum() for o in (0, 1, 10, 100, 1000, 5000)]
        detail = self.row("fig-2a")["detail"]
        self.assertEqual(detail, "values " + ", ".join(f"{v:.3f}" for v in values))

    def test_lemma_a1_closest_approach_matches_an_exact_reduction(self):
        row = self.row("lemma-a.1", 128)
        # The tool names the chunk and n of its closest approach: recompute it exactly.
        detail = row["detail"]  # "closest at chunk K (1-based, g=...), n=N"
        chunk = int(detail.split("chunk ")[1].split(" ")[0])
        n = int(detail.split("n=")[1])
        g = float(5e5 ** (-2 * (chunk - 1) / 128))
        getcontext().prec = 50
        x = Decimal(n) * Decimal(g)  # exact product of the float64 frequency
        m = (x / TWO_PI).to_integral_value()
        exact = abs(float(x - m * TWO_PI))
        self.assertAlmostEqual(row["measured"], exact, delta=1e-14)
        # And numpy's brute force (float64 reduction, error ~1e-10) agrees on the minimum.
        gs = 5e5 ** (-2 * np.arange(64) / 128)
        best = np.inf
        ns = np.arange(1, 1_000_001, dtype=np.float64)
        for gk in gs:
            r = np.remainder(ns * gk, 2 * np.pi)
            best = min(best, np.minimum(r, 2 * np.pi - r).min())
        self.assertAlmostEqual(row["measured"], best, delta=1e-9)
        self.assertGreater(row["measured"], row["tolerance"])

    def test_diagonal_head_reports_the_paper_scale(self):
        row = self.row("thm-5.3-diagonal")
        self.assertIn("smallest ||psi||^2 164.9", row["detail"])
        self.assertGreaterEqual(row["measured"], 0.99)
        prev = self.row("thm-5.3-previous")
        self.assertIn("key rotated by +g peaks at offset 1 (previous token)", prev["detail"])
        self.assertIn("query rotated by +g at offset -1 (next token)", prev["detail"])

    def test_thm_6_1_overtake_distance_is_ceil_delta_over_g(self):
        # The detail reports g, n and n*g for the highest and lowest sampled chunk: the target
        # loses at the first n with n*g > pi/4, so pi/4 < n*g <= pi/4 + g (printed to 4 digits).
        for d in (256, 128):
            detail = self.row("thm-6.1", d)["detail"]
            parts = detail.split("; ")
            self.assertEqual(len(parts), 2, detail)
            for part in parts:
                g = float(part.split("g=")[1].split(":")[0])
                ng = float(part.split("n*g=")[1].rstrip(")"))
                self.assertGreater(ng, np.pi / 4 - 5e-5, part)
                self.assertLessEqual(ng, np.pi / 4 + g * 1.001 + 5e-5, part)
            # The lowest frequency of the schedule is among them: theta^(-(d-2)/d).
            lowest = float(parts[1].split("g=")[1].split(":")[0])
            theta = 1e4 if d == 256 else 5e5
            self.assertAlmostEqual(lowest, theta ** (-(d - 2) / d), delta=1e-3 * lowest)

    def test_a_failed_check_exits_3_after_printing_its_row(self):
        # d = 2 has one frequency, g = 1 rad/token: at offset 710 (113 turns + 6e-5 rad) its
        # logit cos(o) is within 2e-9 of the peak, so the diagonal head needs ||psi||^2 ~ 2.5e9,
        # where float32 logits (spacing 256) no longer resolve the margin, and the head built in
        # float32 does not reach 1 - eps. The check runs and fails: no usage or data error.
        r = run("rope-verify", "--head-dim", 2, "--theta", 1e4, "--check", "thm-5.3-diagonal",
                "-q")
        self.assertOneLineError(r, 3, "rope-verify: ", "1 checks failed")
        self.assertRegex(r.stdout.splitlines()[0], r"^FAIL thm-5.3-diagonal\s+d=2 +theta=10000 ")
        self.assertEqual(r.stdout.splitlines()[1], "rope-verify: 0 of 1 checks hold")
        r = run("rope-verify", "--head-dim", 4, "--theta", 1e4, "--check", "thm-5.3-diagonal",
                "-q")
        self.assertEqual(r.returncode, 0, r.stderr)  # d = 4 passes: the exit code follows it
        help_text = " ".join(run("rope-verify", "--help", check=0).stdout.split())
        self.assertIn("exits 3 if any check fails", help_text)

    def test_unknown_check_and_mismatched_grid_are_usage_errors(self):
        self.assertOneLineError(run("rope-verify", "--check", "prop-9"), 2, "prop-9")
        self.assertOneLineError(run("rope-verify", "--head-dim", 64, 128, "--theta", 1e4), 2,
                                "--theta")


if __name__ == "__main__":
    unittest.main()
