"""Every example a user can paste runs (issue 19): each tool's --help examples and the README's
shell blocks are extracted from the sources (no second copy here) and executed on the demo data,
so an example that stops working fails CI.

The substitution rules, all of them:
  - every example runs with bash -e -o pipefail in a fresh directory, PATH starting with the
    build directory; the README's `build/` means that directory;
  - an input file it names (not the file after -o) is made there first: dump.h5 / demo.h5 =
    make-demo-dump, and so are shard-0.h5 / shard-1.h5 (two shards of one dump);
    norms.h5 = freq-norms of it; n0.h5 / n1.h5 = freq-norms of the shards; cache.h5 = its hook_q as
    model.layers.{layer}.q [pos, head, dim]; fig3.svg = rope-plot of norms.h5; held_out.txt = 16
    id sequences; stories260K.bin = ../shared/data/stories260K.bin (examples naming it are
    skipped, saying so, when that file is absent);
  - a pipeline ending in awk must print something; one ending in grep may find nothing (exit 1,
    no output: `rope-verify | grep FAIL` when every check holds);
  - inputs no generator makes yet (NOT_GENERATED: Hugging Face and GGUF models, tokenizer
    directories, text corpora) skip their examples by name, so the gap is visible in every run;
  - README blocks that install or build (apt-get, make) are instructions, not examples.
"""
import os
import re
import shutil
import subprocess
import unittest

import h5py

from ropekit_test import BIN, SHARED_DATA, SOURCE, TOOLS, TempDirTest, run

MODEL = os.path.join(SHARED_DATA, "stories260K.bin")
NOT_GENERATED = ("Llama-3.2-1B", "model.gguf", "tiny ", "llama-dir/", "wiki.txt", "mistral-7b/",
                 "llama3/", "gemma-3/")


def joined_lines(text):
    """Shell lines with continuations (a trailing \\ or |) joined; comment-only lines dropped."""
    commands, current = [], ""
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        current += line.strip() if not current else " " + line.strip()
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        elif not current.endswith("|"):
            commands.append(current)
            current = ""
    return commands


def help_examples(tool):
    text = run(tool, "--help", check=0).stdout
    return joined_lines(text.split("\nExamples:\n", 1)[1])


def readme_blocks():
    with open(os.path.join(SOURCE, "README.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [b for b in blocks if not re.search(r"^\s*(apt-get|make)\b", b, re.M)]


class Examples(TempDirTest):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.inputs = tempfile.mkdtemp(prefix="ropekit-examples-")
        made = lambda name: os.path.join(cls.inputs, name)
        run("make-demo-dump", "-o", made("dump.h5"), "-q", check=0)
        for copy in ("demo.h5", "shard-0.h5", "shard-1.h5"):
            shutil.copy(made("dump.h5"), made(copy))
        run("freq-norms", made("dump.h5"), "-o", made("norms.h5"), "-q", check=0)
        for part in ("0", "1"):
            run("freq-norms", made(f"shard-{part}.h5"), "-o", made(f"n{part}.h5"), "-q", check=0)
        run("rope-plot", made("norms.h5") + ":layer_q_norms", "-o", made("fig3.svg"), check=0)
        with h5py.File(made("dump.h5")) as src, h5py.File(made("cache.h5"), "w") as dst:
            layer = 0
            while f"blocks.{layer}.attn.hook_q" in src:
                dst[f"model.layers.{layer}.q"] = src[f"blocks.{layer}.attn.hook_q"][0]
                layer += 1
        with open(made("held_out.txt"), "w") as f:
            f.write("\n".join(" ".join(str(1 + (7 * i + j) % 500) for j in range(32))
                              for i in range(16)) + "\n")
        if os.path.exists(MODEL):
            os.symlink(MODEL, made("stories260K.bin"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.inputs, ignore_errors=True)

    def run_example(self, script):
        missing = [name for name in NOT_GENERATED if name in script]
        if missing:
            self.skipTest(f"needs {missing[0].strip()}, which no test generator makes yet")
        if "stories260K.bin" in script and not os.path.exists(MODEL):
            self.skipTest(f"needs {MODEL}")
        work = self.path("work")
        os.makedirs(work, exist_ok=True)
        outputs = set(re.findall(r"-o ([^\s;|&]+)", script))
        for name in os.listdir(self.inputs):
            if name in script and name not in outputs:
                os.symlink(os.path.join(self.inputs, name), os.path.join(work, name))
        script = script.replace("build/", os.path.abspath(BIN) + "/")
        env = dict(os.environ, PATH=os.path.abspath(BIN) + ":" + os.environ["PATH"])
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
        last = script.strip().split("\n")[-1].split("|")[-1].split()[0]
        if last == "grep" and r.returncode == 1 and not r.stdout:
            return r
        self.assertEqual(r.returncode, 0, f"{script}\nstderr: {r.stderr[-1500:]}")
        if last == "awk":
            self.assertTrue(r.stdout.strip(), f"{script}\nprinted nothing")
        return r

    def test_every_help_example_runs(self):
        count = 0
        for tool in TOOLS:
            for example in help_examples(tool):
                count += 1
                with self.subTest(example=example):
                    shutil.rmtree(self.path("work"), ignore_errors=True)
                    self.run_example(example)
        self.assertGreaterEqual(count, len(TOOLS) * 3)  # every tool shows examples

    def test_every_readme_block_runs(self):
        blocks = readme_blocks()
        self.assertGreaterEqual(len(blocks), 3)
        for block in blocks:
            with self.subTest(block=block.strip().split("\n")[0]):
                shutil.rmtree(self.path("work"), ignore_errors=True)
                self.run_example(block)

    def test_the_fixed_examples_show_what_they_promise(self):
        # construct-key's peak at offset 3 must be visible: 64 offsets, not 8192
        example = next(e for e in help_examples("construct-key") if "top:8" in e)
        self.run_example(example)
        with open(self.path("work/k.svg")) as f:
            svg = f.read()
        self.assertIn(">60<", svg)  # x ticks 0..60: the 64 offsets, not 0..8000
        self.assertNotIn(">8000<", svg)


if __name__ == "__main__":
    unittest.main()
