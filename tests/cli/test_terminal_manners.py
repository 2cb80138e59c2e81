"""Terminal manners, tested on a pseudo-terminal (issue 19): HDF5 is never written to a terminal
(exit 2, with the advice to redirect), SVG may be; reading '-' from a terminal says so at once."""
import os
import select
import subprocess
import unittest

from ropekit_test import SHARED_DATA, TempDirTest, run, tool_path


def run_with_terminal_stdout(*args):
    master, slave = os.openpty()
    try:
        p = subprocess.run([tool_path(args[0])] + [str(a) for a in args[1:]], stdout=slave,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=120)
        os.close(slave)
        slave = None
        screen = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            screen += chunk
        return p, screen
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


class TerminalOutput(TempDirTest):
    def test_hdf5_to_a_terminal_is_refused_with_advice(self):
        p, screen = run_with_terminal_stdout("rope-decay", "--mode", "ones", "--head-dim", 8,
                                             "-o", "-")
        self.assertOneLineError(p, 2, "rope-decay: -o -: standard output is a terminal",
                                "redirect it (-o - > out.h5)")
        self.assertEqual(screen, b"")  # not one byte of HDF5 on the screen

    def test_svg_to_a_terminal_is_allowed(self):
        decay = self.path("d.h5")
        run("rope-decay", "--mode", "ones", "--head-dim", 8, "--max-offset", 16, "-o", decay,
            check=0)
        p, screen = run_with_terminal_stdout("rope-plot", f"{decay}:activation", "-o", "-")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"<svg", screen)

    def test_redirected_output_still_works(self):
        r = run("rope-decay", "--mode", "ones", "--head-dim", 8, "--max-offset", 16, "-o", "-",
                text=False, check=0)
        self.assertTrue(r.stdout.startswith(b"\x89HDF\r\n\x1a\n"))


class TerminalInput(unittest.TestCase):
    def test_reading_stdin_from_a_terminal_says_so(self):
        master, slave = os.openpty()
        p = subprocess.Popen([tool_path("freq-norms"), "-"], stdin=slave,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(slave)
        try:
            ready = select.select([p.stderr], [], [], 30)[0]
            self.assertTrue(ready, "nothing said within 30 s")
            line = p.stderr.readline().decode()
            self.assertEqual(line.split(" (")[0],
                             "freq-norms: reading the dump from standard input…")
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
            os.close(master)

    def test_piped_stdin_gets_no_such_note(self):
        r = subprocess.run([tool_path("freq-norms"), "-"], input=b"", capture_output=True,
                           timeout=60)
        self.assertNotIn(b"reading the dump", r.stderr)
        self.assertEqual(r.returncode, 1)


class Progress(TempDirTest):
    """One progress facility: in place on a terminal, a plain line every few seconds otherwise."""

    ARGS = ("--mode", "gaussian", "--head-dim", 64, "--samples", 60000, "--max-offset", 200)

    def test_in_place_on_a_terminal(self):
        master, slave = os.openpty()
        try:
            p = subprocess.run([tool_path("rope-decay"), *map(str, self.ARGS), "-o",
                                self.path("g.h5")], stderr=slave, stdout=subprocess.DEVNULL,
                               timeout=300)
            os.close(slave)
            slave = None
            screen = b""
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(p.returncode, 0)
        text = screen.decode()
        self.assertIn("\r\x1b[K", text)  # redrawn in place
        self.assertEqual(text.count("\n"), 1, text)  # one line, ended once at the end
        self.assertIn("60000 / 60000 pairs (100%)", text)

    def test_plain_lines_when_not_a_terminal_and_none_with_quiet(self):
        r = run("rope-decay", *self.ARGS, "-o", self.path("g.h5"), check=0)
        lines = r.stderr.strip().splitlines()
        self.assertTrue(lines[-1].startswith("rope-decay: 60000 / 60000 pairs (100%)"), lines)
        self.assertNotIn("\r", r.stderr)
        self.assertLessEqual(len(lines), 4, lines)  # at most one every 5 s, not one per 8192
        quiet = run("rope-decay", *self.ARGS, "-o", self.path("q.h5"), "-q", check=0)
        self.assertEqual(quiet.stderr, "")

    def test_dump_readers_report_progress_per_layer(self):
        # freq-norms and find-positional-heads: plain lines (ROPEKIT_PROGRESS_EVERY=0: one per
        # layer; by default at most one every 5 s, and the last), none with -q
        dump = self.path("d.h5")
        run("make-demo-dump", "-o", dump, "-q", check=0)
        for tool in ("freq-norms", "find-positional-heads"):
            with self.subTest(tool):
                every = subprocess.run([tool_path(tool), dump], capture_output=True, text=True,
                                       env=dict(os.environ, ROPEKIT_PROGRESS_EVERY="0"))
                self.assertEqual(every.returncode, 0, every.stderr)
                lines = [l for l in every.stderr.splitlines() if " layers (" in l]
                self.assertEqual([l.split(" (")[0] for l in lines],
                                 [f"{tool}: {i} / 3 layers" for i in (1, 2, 3)], every.stderr)
                self.assertIn("3 / 3 layers (100%)", lines[-1])
                self.assertNotIn("\r", every.stderr)
                default = run(tool, dump, check=0)
                self.assertIn(f"{tool}: 3 / 3 layers (100%)", default.stderr.splitlines()[-1])
                quiet = subprocess.run([tool_path(tool), dump, "-q"], capture_output=True,
                                       text=True, env=dict(os.environ, ROPEKIT_PROGRESS_EVERY="0"))
                self.assertEqual(quiet.returncode, 0)
                self.assertNotIn("layers", quiet.stderr)
                self.assertEqual(quiet.stdout, every.stdout)  # the table is not progress

    def test_rope_dump_reports_sampling_then_the_forward_pass(self):
        model = os.path.join(SHARED_DATA, "stories260K.bin")
        if not os.path.exists(model):
            self.skipTest(f"needs {model}")
        args = [tool_path("rope-dump"), model, "--sample", "4", "--length", "16", "--batch", "2",
                "--what", ""]
        env = dict(os.environ, ROPEKIT_PROGRESS_EVERY="0")
        r = subprocess.run(args + ["-o", self.path("a.h5")], capture_output=True, text=True,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [l.split(" (")[0] for l in r.stderr.splitlines() if " / " in l]
        self.assertEqual(lines, ["rope-dump: 2 / 4 sampled sequences",
                                 "rope-dump: 4 / 4 sampled sequences",
                                 "rope-dump: 2 / 4 sequences", "rope-dump: 4 / 4 sequences"],
                         r.stderr)
        q = subprocess.run(args + ["-o", self.path("b.h5"), "-q"], capture_output=True,
                           text=True, env=env)
        self.assertNotIn(" / ", q.stderr)

    def test_make_demo_dump_reports_progress(self):
        r = run("make-demo-dump", "-o", self.path("d.h5"), check=0)
        self.assertIn("make-demo-dump: 3 / 3 layers (100%)", r.stderr)


if __name__ == "__main__":
    unittest.main()
