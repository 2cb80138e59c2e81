"""The bad-input corpus (issue 7, issue 12): every row of bad_inputs.tsv is run as a subtest, and
each one must keep the whole refusal contract of docs/reliability.md:
  1. the expected exit code;
  2. exactly one line on stderr, starting with "tool: ", not an internal error, holding every
     expected fragment;
  3. no output file (the -o path, unless it is one of the row's inputs) and no temporary left in
     the case's directory;
  4. every input (every file below an input directory) byte for byte unchanged.
A failure names the table line of the row."""
import os
import re
import resource
import shutil
import tempfile
import unittest

from bad_input_fixtures import BUILDERS, Fixtures
from bad_inputs import TableError, fill_in, read_table
from ropekit_test import run, tree_state

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


class CaseRunner:
    """Builds a row's fixtures in a fresh directory, runs its command and checks the contract.
    Mixed into a unittest.TestCase."""

    def run_case(self, case):
        with tempfile.TemporaryDirectory(prefix="ropekit-bad-input-") as tmp:
            fx = Fixtures(tmp)
            for placeholder, builder in case.fixtures:
                fx.paths[placeholder] = BUILDERS[builder](fx)
            values = {"tmp": tmp, **fx.paths}
            args = [fill_in(word, values) for word in case.args]
            expected = [fill_in(word, values) for word in case.expected]
            inputs = {path: tree_state(path) for path in fx.paths.values()}
            listing = set(os.listdir(tmp))
            result = self.invoke(case, args)
            self.check_error_line(case, result, expected)
            self.check_nothing_written(case, tmp, listing, output_of(args), inputs)

    def invoke(self, case, args):
        stdin = None
        if "<" in args:
            with open(args[-1]) as f:
                stdin = f.read()
            args = args[:-2]
        prefix = []
        if case.as_nobody:
            prefix = self.nobody_prefix()
        limit = None
        if case.fsize is not None:
            limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (case.fsize, case.fsize))
        # -q silences progress notes, so stderr holds only the error line.
        result = run(case.tool, "-q", *args, stdin=stdin, prefix=prefix, preexec_fn=limit)
        if (case.as_nobody and result.returncode != 0 and "Permission denied" in result.stderr
                and f"{case.tool}:" not in result.stderr):
            self.skipTest("the build directory is not readable by nobody")
        return result

    def nobody_prefix(self):
        # Root ignores permissions, so root runs the tool as nobody through setpriv.
        if os.geteuid() != 0:
            return []
        if not shutil.which("setpriv"):
            self.skipTest("needs setpriv to run as an unprivileged user")
        return NOBODY

    def check_error_line(self, case, result, expected):
        at = f"{case.where} {case.name}"
        self.assertEqual(result.returncode, case.code,
                         f"{at}: exit code\nstderr: {result.stderr}")
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"{at}: one error line expected, got:\n{result.stderr}")
        line = lines[0]
        self.assertTrue(line.startswith(f"{case.tool}: "), f"{at}: {line}")
        self.assertNotIn("internal error", line, at)
        for fragment in expected:
            self.assertIn(fragment, line, at)

    def check_nothing_written(self, case, tmp, listing, output, inputs):
        at = f"{case.where} {case.name}"
        if output is not None and output not in inputs:
            self.assertFalse(os.path.exists(output), f"{at}: {output} must not exist")
        leftovers = sorted(set(os.listdir(tmp)) - listing)
        self.assertEqual(leftovers, [], f"{at}: no temporary or partial output may be left")
        for path, before in inputs.items():
            self.assertEqual(tree_state(path), before, f"{at}: input {path} was modified")


def output_of(args):
    """The path after -o, if any."""
    if "-o" in args[:-1]:
        return args[args.index("-o") + 1]
    return None


class BadInputs(CaseRunner, unittest.TestCase):
    def test_every_row_is_refused_as_the_table_says(self):
        cases = read_table()
        self.assertGreater(len(cases), 90, "the corpus lost rows")
        for case in cases:
            with self.subTest(case=f"{case.where} {case.name}"):
                self.run_case(case)

    def test_every_builder_is_used_by_a_row(self):
        used = {builder for case in read_table() for _, builder in case.fixtures}
        self.assertEqual(sorted(set(BUILDERS) - used), [])


class RunnerCanFail(CaseRunner, unittest.TestCase):
    """A runner that cannot fail proves nothing: rows with a wrong expectation must fail, naming
    their line, and a malformed table must be refused, naming its line."""

    def table(self, text):
        handle, path = tempfile.mkstemp(suffix=".tsv")
        with os.fdopen(handle, "w") as f:
            f.write(text)
        self.addCleanup(os.remove, path)
        return path, os.path.basename(path)

    def test_rows_with_a_wrong_expectation_fail(self):
        refused = "rope-decay --mode ones --head-dim 8 --theta 1e4 -o {tmp}/out.h5"
        path, name = self.table(
            "# a wrong exit code, a fragment the tool does not print, a command that succeeds\n"
            f"wrong_exit\t1\t-\t{refused} --p 1.5\t'p must be in [0, 1]'\n"
            f"wrong_fragment\t2\t-\t{refused} --p 1.5\t'a message never printed'\n"
            f"not_refused\t2\tdump=small_dump\tfreq-norms {{dump}} -o {{tmp}}/out.h5\t{{dump}}\n")
        cases = read_table(path)
        self.assertEqual([c.where for c in cases], [f"{name}:2", f"{name}:3", f"{name}:4"])
        for case in cases:
            with self.subTest(case=case.name):
                with self.assertRaises(AssertionError) as failure:
                    self.run_case(case)
                self.assertIn(f"{case.where} {case.name}", str(failure.exception))

    def test_a_malformed_row_names_its_line(self):
        good = "ok\t2\t-\trope-decay --p 2 -o {tmp}/x.h5\t--p"
        for row, problem in [
                ("ok\t2\t-\trope-decay --p 2", "5 tab-separated columns"),
                ("ok\t3\t-\trope-decay --p 2\t--p", "neither 1 (bad data) nor 2 (usage)"),
                ("ok\t2\tdump=no_such_builder\trope-decay {dump}\t--p", "no builder"),
                ("ok\t2\t-\trope-decay {dump}\t--p", "{dump} is neither {tmp} nor a fixture"),
                ("ok\t2\tdump=small_dump\trope-decay\t--p", "dump never used"),
                ("ok\t2\t-\tls -l\t--p", "must start with a tool"),
                ("ok\t2\t-\t@ulimit rope-decay\t--p", "unknown directive"),
                ("ok\t2\t-\trope-decay 'open\t--p", "No closing quotation"),
                (good, "case ok appears twice")]:
            with self.subTest(row=row):
                path, name = self.table(f"{good}\n{row}\n")
                pattern = rf"^{re.escape(name)}:2: .*{re.escape(problem)}"
                with self.assertRaisesRegex(TableError, pattern):
                    read_table(path)


if __name__ == "__main__":
    unittest.main()
