"""The CLI contract every tool keeps (issue 2): --help, --version, exit codes, error lines."""
import os
import subprocess
import unittest

from ropekit_test import BIN, TOOLS, TempDirTest, run, tool_path


class CliContract(TempDirTest):
    def test_every_tool_of_the_product_is_built(self):
        # A tool that failed to build must fail the suite, by name, not shrink it.
        self.assertGreaterEqual(len(TOOLS), 8, "tools/*.cpp not found: is ROPEKIT_SOURCE right?")
        missing = [tool for tool in TOOLS if not os.path.exists(os.path.join(BIN, tool))]
        self.assertEqual(missing, [], f"tools/ has these tools but {BIN} does not")

    def test_help_goes_to_stdout_with_examples_and_a_pipe(self):
        for tool in TOOLS:
            with self.subTest(tool=tool):
                r = run(tool, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")
                self.assertIn("Examples:", r.stdout)
                examples = r.stdout.split("Examples:", 1)[1]
                self.assertIn("|", examples, "the examples should show a pipe")
                for option in ("--threads", "--quiet", "--version"):
                    self.assertIn(option, r.stdout)

    def test_version_names_ropekit_hdf5_and_openblas(self):
        for tool in TOOLS:
            with self.subTest(tool=tool):
                r = run(tool, "--version")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, rf"^{tool} \(ropekit \d+\.\d+\.\d+\)\n")
                self.assertRegex(r.stdout, r"\nHDF5 1\.\d+\.\d+\n")
                self.assertIn("OpenBLAS", r.stdout)

    def test_unknown_option_is_a_usage_error_on_one_line(self):
        for tool in TOOLS:
            with self.subTest(tool=tool):
                r = run(tool, "--no-such-option")
                self.assertOneLineError(r, 2, f"{tool}: ", "--no-such-option")
                self.assertEqual(r.stdout, "")

    def test_a_missing_required_argument_is_a_usage_error_naming_it(self):
        # rope-verify needs nothing; every other tool names what it needs first.
        first_required = {"rope-decay": "--output", "freq-norms": "DUMP",
                          "find-positional-heads": "DUMP", "prope-convert": "INPUT",
                          "construct-key": "one of --query", "rope-plot": "INPUT",
                          "rope-dump": "MODEL", "rope-tokenize": "TOKENIZER",
                          "rope-merge": "OUTPUTS"}
        for tool in TOOLS:
            if tool == "rope-verify":
                continue
            with self.subTest(tool=tool):
                r = run(tool)
                self.assertOneLineError(r, 2, f"{tool}: {first_required[tool]}", "is required")

    def test_a_table_that_cannot_reach_stdout_is_an_error(self):
        # /dev/full fails every write with ENOSPC: the table is lost, so the run must not pass.
        with open("/dev/full", "w") as full:
            r = subprocess.run([tool_path("rope-verify"), "--head-dim", "8", "--theta", "100",
                                "--check", "fig-2a", "-q"], stdout=full, stderr=subprocess.PIPE,
                               text=True, timeout=60)
        self.assertOneLineError(r, 1, "rope-verify: <stdout>: write failed")

    def test_bad_threads_value_is_a_usage_error(self):
        for tool in TOOLS:
            with self.subTest(tool=tool):
                self.assertOneLineError(run(tool, "--threads", "-3"), 2, f"{tool}: ", "--threads")


if __name__ == "__main__":
    unittest.main()
