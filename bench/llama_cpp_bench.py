"""bench/run's rope-dump-beside-llama.cpp rows (issue 13): a generated 110M-parameter Llama
(d_model 768, 12 layers, 12 heads, hidden 2048, vocabulary 32000, tied output) as F32, BF16 and
Q8_0 GGUF files, 4 x 256 tokens, 1 and 2 threads. llama.cpp is the test oracle's npm package
(node-llama-cpp, scripts/install-oracles), timed by bench/llama_prefill.mjs: a prefill with the
last token's logits, as llama.cpp evaluates a prompt, its own defaults otherwise. rope-dump's
speed is the one its summary line reports: forward passes plus every position's logits and NLL,
without loading or writing. Both exclude loading the model; the runs alternate, so both see the
same machine load.

Selected alone with `bench/run BUILD --only llama-cpp`, which rewrites just this section of
docs/performance.md."""
import datetime
import json
import os
import re
import statistics
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "cli"))
import random_llama  # noqa: E402  (tests/cli: the suite's model writer)

TITLE = "## rope-dump beside llama.cpp"
TYPES = ("F32", "BF16", "Q8_0")
THREADS = (1, 2)
SEQUENCES, LENGTH = 4, 256
SHAPE = dict(dim=768, hidden=2048, layers=12, heads=12, kv_heads=12, vocab=32000, tied=True)
TARGETS = {"F32": 1.0, "BF16": 1.0, "Q8_0": 0.7}  # rope-dump ÷ llama.cpp, at least


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class LlamaCppBench:
    def __init__(self, build, scratch, oracle=None):
        self.rope_dump = os.path.join(build, "rope-dump")
        self.oracle = oracle or os.path.join(build, "oracles", "llama-cpp")
        self.scratch = scratch
        self.speeds = {}  # (tool, type, threads) -> [tokens/s]
        self.agreement = None
        self.loads = []

    def missing(self):
        """Why llama.cpp cannot run here, or None."""
        entry = os.path.join(self.oracle, "node_modules", "node-llama-cpp", "dist", "index.js")
        if not os.path.exists(entry):
            return f"node-llama-cpp is not installed in {self.oracle} (scripts/install-oracles)"
        return None

    def prepare(self):
        shape = random_llama.Shape(**SHAPE)
        self.parameters = shape.parameters()
        self.models = {}
        for t in TYPES:  # one seed: the same weights in each type, up to its rounding
            self.models[t] = os.path.join(self.scratch, f"llama-110m-{t}.gguf")
            random_llama.write_gguf(self.models[t], shape, t, seed=1)
        ids = np.random.default_rng(2).integers(2, SHAPE["vocab"], size=(SEQUENCES, LENGTH))
        ids[:, 0] = 1
        self.tokens = os.path.join(self.scratch, "llama-ids.txt")
        np.savetxt(self.tokens, ids, fmt="%d")
        self.ids_json = os.path.join(self.scratch, "llama-ids.json")
        with open(self.ids_json, "w") as f:
            json.dump({"sequences": ids.tolist()}, f)
        self.ids = ids

    def rope_dump_speed(self, type_name, threads):
        out = os.path.join(self.scratch, "llama-nll.h5")
        p = subprocess.run([self.rope_dump, self.models[type_name], "--tokens", self.tokens,
                            "--what", "", "-o", out, "--force", "--threads", str(threads)],
                           capture_output=True, text=True, check=True)
        return float(re.search(r"prefill (\d+) tokens/s", p.stdout).group(1))

    def llama_cpp_speed(self, type_name, threads):
        p = subprocess.run(["node", os.path.join(HERE, "llama_prefill.mjs"), "--oracle",
                            self.oracle, "--model", self.models[type_name], "--input",
                            self.ids_json, "--threads", str(threads), "--reps", "1"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"llama.cpp on {self.models[type_name]}: {p.stderr[-2000:]}")
        result = json.loads(p.stdout.strip().splitlines()[-1])
        return result["tokens"] / min(result["seconds"])

    def run(self, reps):
        self.loads.append(load_average())
        for rep in range(reps + 1):
            log(f"rope-dump beside llama.cpp: repetition {rep}/{reps}" +
                (" (warm-up, not counted)" if rep == 0 else ""))
            for t in TYPES:
                for threads in THREADS:
                    for tool, measure in (("rope-dump", self.rope_dump_speed),
                                          ("llama.cpp", self.llama_cpp_speed)):
                        speed = measure(t, threads)
                        if rep > 0:
                            self.speeds.setdefault((tool, t, threads), []).append(speed)
        self.loads.append(load_average())
        self.agreement = self.check_agreement()

    def check_agreement(self):
        """Max |log-prob difference| of the two on the F32 file, first sequence's 64 tokens."""
        ids = self.ids[:1, :64]
        tokens, out = os.path.join(self.scratch, "agree.txt"), os.path.join(self.scratch, "agree.h5")
        np.savetxt(tokens, ids, fmt="%d")
        subprocess.run([self.rope_dump, self.models["F32"], "--tokens", tokens, "--what", "",
                        "-o", out, "--force", "-q"], check=True, capture_output=True)
        with h5py.File(out, "r") as f:
            ours = -f["nll"][()]
        request, answer = os.path.join(self.scratch, "agree.json"), os.path.join(self.scratch, "lp.json")
        with open(request, "w") as f:
            json.dump({"sequences": ids.tolist()}, f)
        runner = os.path.join(os.path.dirname(HERE), "tests", "oracle", "llama_logprobs.mjs")
        subprocess.run(["node", runner, "--oracle", self.oracle, "--model", self.models["F32"],
                        "--input", request, "--output", answer], check=True, capture_output=True)
        with open(answer) as f:
            theirs = np.array(json.load(f)["logprobs"])
        return float(np.abs(ours - theirs).max())

    def section(self, reason=None):
        """The markdown of this section."""
        L = [TITLE, ""]
        if reason:
            return "\n".join(L + [f"Not measured: {reason}.", ""])
        L += [f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC. "
              f"A generated {self.parameters / 1e6:.0f}M-parameter Llama (d_model 768, 12 layers, 12 "
              "heads, hidden 2048, vocabulary 32000, tied output; `tests/cli/random_llama.py`) as "
              f"F32, BF16 and Q8_0 GGUF files, {SEQUENCES} × {LENGTH} tokens. rope-dump: the "
              "prefill speed of its summary line (forward passes, every position's logits and "
              "NLL; `--what ''`). llama.cpp: node-llama-cpp 3.21.1 (the test oracle, its prebuilt "
              "CPU build), `bench/llama_prefill.mjs`: each sequence evaluated from an empty "
              "context in one batch, last-token logits, its default F16 KV cache. Both exclude "
              "loading; the runs alternate. Medians of the repetitions (best in brackets). Load "
              f"average {self.loads[0]} at the start and {self.loads[-1]} at the end" + (
                  ": other work was running on the same two cores, so absolute speeds move by 2× "
                  "between runs and the ratios are the useful numbers."
                  if float(self.loads[0].split()[0]) >= 2 else
                  " (this bench's own runs: the machine was otherwise idle)."), "",
              "| type | threads | rope-dump tokens/s | llama.cpp tokens/s | rope-dump ÷ llama.cpp | target | met |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for t in TYPES:
            for threads in THREADS:
                ours, theirs = self.speeds[("rope-dump", t, threads)], self.speeds[("llama.cpp", t, threads)]
                ratio = statistics.median(ours) / statistics.median(theirs)
                L.append(f"| {t} | {threads} | {statistics.median(ours):,.0f} ({max(ours):,.0f}) | "
                         f"{statistics.median(theirs):,.0f} ({max(theirs):,.0f}) | {ratio:.2f} | "
                         f"≥ {TARGETS[t]:g} | {'yes' if ratio >= TARGETS[t] else '**no**'} |")
        L += ["", f"Same model, same ids: rope-dump and llama.cpp (F32, 1 × 64 tokens, llama.cpp "
              f"as the test oracle runs it) differ by at most {self.agreement:.1e} nats per token.",
              ""]
        return "\n".join(L)


def measure(build, scratch, reps, oracle=None):
    """This section's markdown, measured now."""
    bench = LlamaCppBench(build, scratch, oracle)
    reason = bench.missing()
    if reason:
        log(f"rope-dump beside llama.cpp skipped: {reason}")
        return bench.section(reason)
    log("writing the 110M-parameter GGUF files")
    bench.prepare()
    bench.run(reps)
    return bench.section()


def refresh_notes(text, notes):
    """docs/performance.md with its copy of bench/notes.md (which a full run puts after the
    profiles) replaced by the notes as they are now: from the notes' first heading to the first
    heading the notes do not have (the cost curves that follow them), or to the end."""
    headings = [line for line in notes.splitlines() if line.startswith("## ")]
    start = text.find(headings[0])
    if start < 0:
        return text.rstrip("\n") + "\n\n" + notes.rstrip("\n") + "\n"
    end = len(text)
    for match in re.finditer(r"^## .*$", text[start:], re.M):
        if match.group(0) not in headings:
            end = start + match.start()
            break
    tail = text[end:]
    return text[:start] + notes.rstrip("\n") + "\n" + ("\n" + tail if tail else "")


def replace_section(text, section):
    """docs/performance.md with this section replaced (or added before the agreement table)."""
    start = text.find(TITLE)
    if start < 0:
        anchor = text.find("## Agreement of the two implementations")
        start = end = anchor if anchor >= 0 else len(text)
    else:
        following = text.find("\n## ", start + len(TITLE))
        end = following + 1 if following >= 0 else len(text)
    return text[:start] + section.rstrip("\n") + "\n\n" + text[end:]
