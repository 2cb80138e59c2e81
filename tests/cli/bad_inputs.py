"""The bad-input corpus (issue 7): every case is generated here, named by its expected outcome,
and checked the same way: exit code, exactly one error line "tool: file: dataset/key: what was
expected" naming the file, no output file (and no temporary) left behind, and every input's
sha256 unchanged."""
import os

from ropekit_test import TempDirTest, run, tree_state


class BadInputTest(TempDirTest):
    def expect_refusal(self, tool, args, code, *fragments, inputs=(), outputs=("out.h5",),
                       stdin=None):
        """Runs `tool args` and checks the whole contract. `fragments` must all appear in the
        error line; `inputs` (paths) must be unchanged; `outputs` (names in self.tmp, or paths)
        must not exist afterwards."""
        inputs = [p for p in inputs]
        before = {p: tree_state(p) for p in inputs}
        listing_before = set(os.listdir(self.tmp))
        # -q silences progress notes, so stderr holds only the error line.
        r = run(tool, "-q", *args, stdin=stdin)
        self.assertEqual(r.returncode, code, f"{tool} {args}: {r.stderr}")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"one error line expected, got:\n{r.stderr}")
        line = lines[0]
        self.assertTrue(line.startswith(f"{tool}: "), line)
        self.assertNotIn("internal error", line)
        for fragment in fragments:
            self.assertIn(fragment, line)
        for out in outputs:
            path = out if os.path.isabs(out) else self.path(out)
            self.assertFalse(os.path.exists(path), f"{path} must not exist after a failure")
        leftovers = [n for n in set(os.listdir(self.tmp)) - listing_before]
        self.assertEqual(leftovers, [], "no temporary or partial output may be left")
        for p in inputs:
            self.assertEqual(tree_state(p), before[p], f"input {p} was modified")
        return line
