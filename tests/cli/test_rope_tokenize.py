"""rope-tokenize end to end (issue 15): identical ids to Hugging Face's tokenizers (the Rust library
behind transformers' fast tokenizers, through its npm binding) on every line of the corpus
tests/data/tokenizer_corpus.txt, for the five tokenizers people use (Mistral/Llama 2, Llama 3,
Qwen 3, Gemma 3, GPT-2), for GGUF vocabularies built from them, for a Unigram model and through
decode; tokenizer.model files against SentencePiece's own spm_encode; the HDF5 output that
rope-dump reads; refusals by name; one-line errors."""
import json
import os
import shutil
import subprocess

import h5py
import numpy as np

from ropekit_test import TempDirTest, run, sha256, tree_state
from tokenizer_fixtures import (CORPUS, GGUF_KIND, TokenizerTest, gguf_from_tokenizer_json,
                                oracle, read_lines)

class CorpusParity(TokenizerTest):
    def test_every_corpus_line_gives_hugging_faces_ids(self):
        for name in GGUF_KIND:
            with self.subTest(tokenizer=name):
                expected = self.oracle_ids(name)
                self.assertEqual(len(expected), len(read_lines(CORPUS)))
                self.assertSameLines(self.ours(self.folders[name]), expected, name)

    def test_gguf_vocabularies_give_the_same_ids(self):
        for name, (pre, bos, space_prefix) in GGUF_KIND.items():
            with self.subTest(tokenizer=name):
                gguf = self.path(f"{name}.gguf")
                gguf_from_tokenizer_json(self.json_of(name), gguf, pre=pre, add_bos=bos,
                                         add_space_prefix=space_prefix)
                self.assertSameLines(self.ours(gguf), self.oracle_ids(name), f"{name} GGUF")

    def test_decode_gives_hugging_faces_text(self):
        for name in GGUF_KIND:
            ids = self.path(f"{name}.ids")
            with open(ids, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in self.oracle_ids(name)))
            for mode, flag in (("--decode", []), ("--decode-skip", ["--skip-special"])):
                with self.subTest(tokenizer=name, mode=mode):
                    expected = [json.loads(s) for s in oracle(self.json_of(name), ids, mode)]
                    self.assertSameLines(self.ours(self.folders[name], "--decode", *flag, text=ids),
                                         expected, f"{name} {mode}")

    def test_decode_of_the_ids_gives_back_each_corpus_line(self):
        # Byte-level BPE loses nothing; Qwen normalizes to NFC, so its NFD halves come back NFC.
        ids = self.path("gpt2.ids")
        with open(ids, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in self.oracle_ids("gpt2")))
        self.assertEqual(self.ours(self.folders["gpt2"], "--decode", text=ids), read_lines(CORPUS))


class Outputs(TokenizerTest):
    def test_windows_join_documents_with_the_models_separator(self):
        # Mistral adds BOS to every document; GPT-2 adds nothing, so its EOS follows each one.
        for name, separator in (("llama2", None), ("gpt2", 50256)):
            with self.subTest(tokenizer=name):
                stream = []
                for text, ids in zip(read_lines(CORPUS), self.oracle_ids(name)):
                    if text:
                        stream += [int(i) for i in ids.split()] + ([separator] if separator else [])
                out = self.path(f"{name}.h5")
                run("rope-tokenize", self.folders[name], "--text", CORPUS, "--length", 64, "-o",
                    out, "-q", check=0)
                count = len(stream) // 64
                with h5py.File(out, "r") as f:
                    tokens = f["tokens"]
                    self.assertEqual(tokens.dtype, np.int64)
                    self.assertEqual([d.label for d in tokens.dims], ["batch", "pos"])
                    np.testing.assert_array_equal(tokens[...],
                                                  np.array(stream[:count * 64]).reshape(count, 64))
                    self.assertEqual(f.attrs["text_sha256"], sha256(CORPUS))
                    self.assertEqual(f.attrs["documents"], sum(1 for t in read_lines(CORPUS) if t))
                    self.assertEqual(f.attrs["dropped_tokens"], len(stream) - count * 64)
                    self.assertEqual(f.attrs["text_source"], CORPUS)
                    self.assertIn("tokenizer.json", f.attrs["tokenizer_path"])

    def test_whole_text_is_one_document(self):
        text = self.path("two.txt")
        with open(text, "w") as f:
            f.write("Hello world\n\nand more\n")
        stream = [int(i) for i in oracle(self.json_of("gpt2"), text, "--whole")[0].split()]
        stream.append(50256)  # GPT-2's EOS ends the one document
        out = self.path("whole.txt")
        run("rope-tokenize", self.folders["gpt2"], "--text", text, "--whole", "--length", 3,
            "-o", out, check=0)
        windows = [stream[i:i + 3] for i in range(0, len(stream) - 2, 3)]
        self.assertEqual([[int(i) for i in line.split()] for line in read_lines(out)], windows)

    def test_equal_length_lines_make_a_tokens_dataset_and_others_are_refused(self):
        text = self.path("lines.txt")
        with open(text, "w") as f:
            f.write("one two\nthree four\n")
        out = self.path("lines.h5")
        run("rope-tokenize", self.folders["gpt2"], "--text", text, "-o", out, check=0)
        with h5py.File(out, "r") as f:
            expected = [[int(i) for i in line.split()] for line in oracle(self.json_of("gpt2"), text)]
            np.testing.assert_array_equal(f["tokens"][...], expected)
        with open(text, "w") as f:
            f.write("one two\nthree four five\n")
        result = run("rope-tokenize", self.folders["gpt2"], "--text", text, "-o", self.path("x.h5"),
                     "-q")
        self.assertOneLineError(result, 1, "line 2", "gives 3 ids but line 1 gives 2", "--length")
        self.assertFalse(os.path.exists(self.path("x.h5")))


class Refusals(TokenizerTest):
    def edited_gpt2(self, change):
        path = self.json_of("gpt2")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        change(data)
        edited = self.path("edited.json")
        with open(edited, "w", encoding="utf-8") as f:
            json.dump(data, f)
        return edited

    def test_unknown_pipeline_parts_are_refused_by_name(self):
        cases = [
            ("normalizer", {"type": "Lowercase"}, "unsupported normalizer type 'Lowercase'"),
            ("pre_tokenizer", {"type": "Whitespace"}, "unsupported pre-tokenizer type 'Whitespace'"),
            ("decoder", {"type": "WordPiece", "prefix": "##"}, "unsupported decoder type 'WordPiece'"),
            ("post_processor", {"type": "Nonsense"}, "unsupported post-processor type 'Nonsense'"),
        ]
        for key, value, message in cases:
            with self.subTest(key=key):
                path = self.edited_gpt2(lambda d: d.update({key: value}))
                result = run("rope-tokenize", path, "--text", CORPUS, "-o", self.path("x.txt"))
                self.assertOneLineError(result, 1, path, message)
                self.assertFalse(os.path.exists(self.path("x.txt")))
        path = self.edited_gpt2(lambda d: d["model"].update({"type": "WordPiece"}))
        result = run("rope-tokenize", path, "--text", CORPUS, "-o", "-")
        self.assertOneLineError(result, 1, "model.type", "unsupported model type 'WordPiece'")
        path = self.edited_gpt2(lambda d: d["model"].update({"dropout": 0.1}))
        self.assertOneLineError(run("rope-tokenize", path, "-o", "-", stdin=""), 1, "dropout")

    def test_unknown_gguf_vocabularies_are_refused_by_name(self):
        for pre, kind, message in (("deepseek-llm", "gpt-2", "unsupported pre-tokenizer 'deepseek-llm'"),
                                   (None, "bert", "unsupported tokenizer 'bert'")):
            with self.subTest(kind=kind, pre=pre):
                gguf = self.path("vocab.gguf")
                gguf_from_tokenizer_json(self.json_of("gpt2"), gguf, pre=pre or "gpt-2")
                with open(gguf, "rb") as f:
                    data = f.read()
                if pre:
                    data = data.replace(b"\x05\x00\x00\x00\x00\x00\x00\x00gpt-2",
                                        b"\x0c\x00\x00\x00\x00\x00\x00\x00" + pre.encode())
                else:
                    data = data.replace(b"\x04\x00\x00\x00\x00\x00\x00\x00gpt2",
                                        b"\x04\x00\x00\x00\x00\x00\x00\x00bert")
                with open(gguf, "wb") as f:
                    f.write(data)
                result = run("rope-tokenize", gguf, "-o", "-", stdin="x\n")
                self.assertOneLineError(result, 1, gguf, message)

    def test_bad_text_and_command_lines_are_one_line_errors(self):
        text = self.path("bad.txt")
        with open(text, "wb") as f:
            f.write(b"fine\nnot \xff utf-8\n")
        result = run("rope-tokenize", self.folders["gpt2"], "--text", text, "-o", "-", "-q")
        self.assertOneLineError(result, 1, text, "line 2", "not valid UTF-8")
        self.assertEqual(result.stdout, "")
        ids = self.path("ids.txt")
        with open(ids, "w") as f:
            f.write("15496 995\n15496 50257\n")
        result = run("rope-tokenize", self.folders["gpt2"], "--decode", "--text", ids, "-o", "-",
                     "-q")
        self.assertOneLineError(result, 1, "line 2", "token id 50257 is outside the vocabulary")
        self.assertOneLineError(run("rope-tokenize", self.path("none"), "-o", "-"), 1,
                                "no such file or directory")
        self.assertOneLineError(run("rope-tokenize", self.folders["gpt2"], "--whole", "-o", "-"),
                                2, "--whole needs --length")
        self.assertOneLineError(run("rope-tokenize", "--text", CORPUS, "-o", "-"), 2, "TOKENIZER")
        self.assertOneLineError(run("rope-tokenize", self.folders["gpt2"], "--text", CORPUS,
                                    "--length", 1, "-o", "-", "-q"), 2, "--length")

    def test_outputs_are_never_inputs_and_need_force(self):
        before = tree_state(self.folders["gpt2"])
        out = self.path("ids.txt")
        with open(out, "w") as f:
            f.write("keep\n")
        result = run("rope-tokenize", self.folders["gpt2"], "--text", CORPUS, "-o", out, "-q")
        self.assertOneLineError(result, 2, "--force")
        with open(out) as f:
            self.assertEqual(f.read(), "keep\n")
        result = run("rope-tokenize", self.folders["gpt2"], "--text", out, "-o", out, "--force",
                     "-q")
        self.assertOneLineError(result, 2, out)
        self.assertEqual(tree_state(self.folders["gpt2"]), before)


class SentencePieceModel(TempDirTest):
    def test_tokenizer_model_ids_are_sentencepieces_with_bos(self):
        if shutil.which("spm_train") is None:
            self.skipTest("spm_train missing (Debian package sentencepiece)")
        folder = self.path("spm")
        os.makedirs(folder)
        subprocess.run(["spm_train", f"--input={CORPUS}", f"--model_prefix={folder}/tokenizer",
                        "--vocab_size=700", "--model_type=bpe", "--byte_fallback=true",
                        "--character_coverage=0.98", "--minloglevel=2"],
                       check=True, capture_output=True, timeout=300)
        spm = subprocess.run(["spm_encode", f"--model={folder}/tokenizer.model",
                              "--output_format=id", f"--input={CORPUS}"],
                             check=True, capture_output=True, text=True, timeout=300)
        os.remove(f"{folder}/tokenizer.vocab")
        expected = ["1 " + line if line else "1" for line in spm.stdout.split("\n")[:-1]]
        out = self.path("ids.txt")
        run("rope-tokenize", folder, "--text", CORPUS, "-o", out, "-q", check=0)
        lines = read_lines(out)
        self.assertEqual(len(lines), len(expected))
        differ = [i + 1 for i, (a, b) in enumerate(zip(lines, expected)) if a != b]
        self.assertEqual(differ, [])
