"""rope-tokenize on variants of real tokenizer files (issue 15): merges in both serializations,
tokenizer_config.json's add_bos_token, a Unigram model, lstrip/rstrip added tokens; each against
Hugging Face's tokenizers on the whole corpus."""
import json
import os
import shutil

from tokenizer_fixtures import CORPUS, TokenizerTest, oracle


class FileVariants(TokenizerTest):
    def edited_copy(self, name, change, config_change=None):
        folder = self.path(f"{name}-edited")
        shutil.copytree(self.folders[name], folder)
        path = os.path.join(folder, "tokenizer.json")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        change(data)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        if config_change:
            config = os.path.join(folder, "tokenizer_config.json")
            with open(config, encoding="utf-8") as f:
                data = json.load(f)
            config_change(data)
            with open(config, "w", encoding="utf-8") as f:
                json.dump(data, f)
        return folder

    def test_merges_as_strings_or_pairs_give_the_same_ids(self):
        # GPT-2's file stores "a b" strings, Qwen 3's ["a", "b"] pairs: swap the two forms.
        def to_pairs(d):
            d["model"]["merges"] = [m.split(" ", 1) for m in d["model"]["merges"]]

        def to_strings(d):
            d["model"]["merges"] = [f"{a} {b}" for a, b in d["model"]["merges"]]

        self.assertSameLines(self.ours(self.edited_copy("gpt2", to_pairs)), self.oracle_ids("gpt2"),
                             "GPT-2 with pair merges")
        self.assertSameLines(self.ours(self.edited_copy("qwen3", to_strings)),
                             self.oracle_ids("qwen3"), "Qwen 3 with string merges")

    def test_add_bos_token_in_the_config_decides_bos(self):
        # Llama's and Gemma's transformers classes rebuild the post-processor from the config.
        folder = self.edited_copy("llama2", lambda d: None,
                                  lambda c: c.update({"add_bos_token": False}))
        expected = [" ".join(line.split()[1:]) for line in self.oracle_ids("llama2")]
        self.assertTrue(all(line.split()[0] == "1" for line in self.oracle_ids("llama2")))
        self.assertSameLines(self.ours(folder), expected, "Mistral without BOS")
        # --no-special leaves out what the post-processor adds, whatever the config says.
        self.assertSameLines(self.ours(self.folders["gemma3"], "--no-special"),
                             [" ".join(l.split()[1:]) for l in self.oracle_ids("gemma3")],
                             "Gemma 3 --no-special")

    def test_unigram_models_give_hugging_faces_ids(self):
        # A Unigram tokenizer.json made from Mistral's pieces with made-up scores (longer pieces
        # score higher), byte fallback and the same normalizer: Viterbi, unk fusing and byte
        # fallback are compared with Hugging Face's on the whole corpus.
        def to_unigram(d):
            vocab = sorted(d["model"]["vocab"].items(), key=lambda item: item[1])
            pieces = [[piece, -10.0 + 0.7 * len(piece) - 1e-4 * i] for i, (piece, _) in
                      enumerate(vocab)]
            d["model"] = {"type": "Unigram", "unk_id": 0, "byte_fallback": True, "vocab": pieces}

        folder = self.edited_copy("llama2", to_unigram)
        expected = oracle(os.path.join(folder, "tokenizer.json"), CORPUS)
        self.assertNotEqual(expected, self.oracle_ids("llama2"))
        self.assertSameLines(self.ours(folder), expected, "Unigram")

    def test_added_token_lstrip_and_rstrip(self):
        def strip_specials(d):
            for t in d["added_tokens"]:
                if t["content"] in ("<s>", "</s>"):
                    t["lstrip"] = t["content"] == "<s>"
                    t["rstrip"] = True

        folder = self.edited_copy("llama2", strip_specials)
        self.assertSameLines(self.ours(folder), oracle(os.path.join(folder, "tokenizer.json"), CORPUS),
                             "lstrip/rstrip")
