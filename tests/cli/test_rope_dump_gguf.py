"""rope-dump on GGUF files and on weights it keeps in their stored type (issue 13). The GGUF files
are written by gguf_writer.py as llama.cpp's convert_hf_to_gguf.py writes them; each is checked
against rope-dump on the Hugging Face directory it came from, or on the weights numpy
dequantizes from it (gguf_writer.decode, a second implementation of ggml's block layouts), with
a misplaced-weights control showing the comparison would catch a wrong dequantizer. Stored
weights must give exactly what their float32 upcast gives, and a model's memory must stay far
below its float32 size. The comparison with llama.cpp itself is test_llama_cpp_oracle.py."""
import os
import unittest

import h5py
import numpy as np

import gguf_writer
import random_llama
from ropekit_test import SANITIZED, TempDirTest, edit_json, run, run_measured, tool_path
from test_rope_dump import rounded, tiny_weights, write_hf_llama

QUANTIZED = ("Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K")
MATRICES = ("emb", "wcls", "wq", "wk", "wv", "wo", "w1", "w2", "w3")
MiB = 1 << 20


def interleaved_to_half(x):
    """Vectors whose last axis pairs dims (2k, 2k + 1) -> pairs (k, k + d/2)."""
    return np.concatenate([x[..., 0::2], x[..., 1::2]], axis=-1)


def small_weights(seed, shared=False):
    """A random model whose rows are whole K-quant blocks (256), weights of std 0.03 so that the
    log-probabilities stay moderate (float32 sums agree best there)."""
    w = tiny_weights(seed, dim=256, hidden=512, layers=2, heads=4, kv_heads=2, vocab=300,
                     shared=shared)
    for k in ("emb", "wcls", "wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        w[k] = (w[k] * 0.1).astype(np.float32)
    if shared:
        w["wcls"] = w["emb"]
    return w


class GgufModels(TempDirTest):
    def setUp(self):
        super().setUp()
        self.w = small_weights(5)
        self.hf = self.path("hf")
        write_hf_llama(self.w, self.hf, "F32")
        self.ids = np.random.default_rng(0).integers(0, self.w["vocab"], size=(3, 40))
        self.ids[:, 0] = 1
        self.tokens = self.path("ids.txt")
        np.savetxt(self.tokens, self.ids, fmt="%d")

    def dump(self, model, *args, what="all", name=None):
        out = self.path(name or f"{os.path.basename(model)}.h5")
        run("rope-dump", model, "--tokens", self.tokens, "--what", what, "-o", out, "--force",
            *args, check=0)
        return h5py.File(out, "r")

    def gguf(self, dtype, source=None, name=None, **options):
        path = self.path(name or f"model-{dtype}.gguf")
        gguf_writer.hf_to_gguf(source or self.hf, path, dtype, **options)
        return path

    def test_text_goes_through_the_gguf_files_own_vocabulary(self):
        # rope-dump MODEL.gguf --text tokenizes with the vocabulary the GGUF carries (here the
        # writer's byte-fallback placeholder), exactly as rope-tokenize reads that file.
        model, text = self.gguf("F32"), self.path("t.txt")
        with open(text, "w") as f:
            f.write("hello world, this is a test of the text path.\nAnother line here!\n")
        run("rope-tokenize", model, "--text", text, "--length", "16", "-o", self.path("w.txt"),
            "-q", check=0)
        windows = np.loadtxt(self.path("w.txt"), dtype=np.int64, ndmin=2)
        out = self.path("text.h5")
        run("rope-dump", model, "--text", text, "--length", "16", "--what", "", "-o", out, "-q",
            check=0)
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["tokens"][()], windows)
            self.assertIn("GGUF llama vocabulary", str(f.attrs["tokenizer"]))
            scored = f["scored"][()] == 1
            self.assertGreater(scored.sum(), 0)
            self.assertTrue(np.isfinite(f["nll"][()][scored]).all())

    def test_sampled_sequences_carry_their_decoded_text(self):
        model, out = self.gguf("F32"), self.path("sampled.h5")
        run("rope-dump", model, "--sample", "2", "--length", "12", "--what", "", "-o", out, "-q",
            check=0)
        with h5py.File(out, "r") as f:
            ids, texts = f["tokens"][()], [str(t) for t in f["tokens"].attrs["text"]]
        with open(self.path("ids.txt"), "w") as f:
            f.write("\n".join(" ".join(str(i) for i in row) for row in ids) + "\n")
        decoded = run("rope-tokenize", model, "--decode", "--text", self.path("ids.txt"), "-o", "-",
                      check=0).stdout.split("\n")[:2]
        self.assertEqual(len(texts), 2)
        self.assertEqual(texts, decoded)

    def test_an_f32_gguf_runs_as_the_hf_directory_it_came_from(self):
        a, b = self.dump(self.hf), self.dump(self.gguf("F32"))
        np.testing.assert_array_equal(b["tokens"][()], self.ids)
        np.testing.assert_allclose(b["nll"][()], a["nll"][()], atol=1e-5)
        for layer in range(2):
            hook = f"blocks.{layer}.attn.hook_"
            for kind in ("q", "k", "rot_q", "rot_k"):
                # The same vectors (entries up to ~2), the GGUF's in adjacent pairs.
                np.testing.assert_allclose(interleaved_to_half(b[hook + kind][()]),
                                           a[hook + kind][()], atol=1e-5)
            for kind in ("pattern", "attn_scores"):
                np.testing.assert_allclose(b[hook + kind][()], a[hook + kind][()], atol=1e-5)
        self.assertEqual(a.attrs["rope_layout"], "half")
        self.assertEqual(b.attrs["rope_layout"], "interleaved")
        np.testing.assert_array_equal(b.attrs["rope_inv_freq"], a.attrs["rope_inv_freq"])
        for key in ("rope_theta", "rotary_dim", "n_heads", "n_kv_heads", "d_head", "d_vocab"):
            self.assertEqual(b.attrs[key], a.attrs[key], key)
        self.assertEqual(b.attrs["model"], "model-F32")

    def test_freq_norms_reads_the_same_norms_from_either_layout(self):
        # The GGUF dump's rope_layout attribute tells freq-norms which dims form a chunk.
        norms = {}
        for name, model in (("hf", self.hf), ("gguf", self.gguf("F32"))):
            self.dump(model, what="q,k", name=f"{name}.h5").close()
            run("freq-norms", self.path(f"{name}.h5"), "-o", self.path(f"{name}-norms.h5"), "-q",
                check=0)
            with h5py.File(self.path(f"{name}-norms.h5"), "r") as f:
                norms[name] = {k: f[k][()] for k in ("q_norms", "k_norms")}
        for k in ("q_norms", "k_norms"):
            np.testing.assert_allclose(norms["gguf"][k], norms["hf"][k], rtol=1e-5)
        # Read with the wrong layout, they differ: the attribute is doing the work.
        run("freq-norms", self.path("gguf.h5"), "--layout", "half", "-o", self.path("wrong.h5"),
            "-q", check=0)
        with h5py.File(self.path("wrong.h5"), "r") as f:
            self.assertGreater(np.abs(f["q_norms"][()] - norms["hf"]["q_norms"]).max(), 0.1)

    def test_a_tied_gguf_uses_the_embedding_as_its_output(self):
        w = small_weights(6, shared=True)
        hf = self.path("tied")
        write_hf_llama(w, hf, "F32")
        gguf = self.gguf("F32", source=hf, name="tied.gguf")
        names = [t[0] for t in gguf_writer.hf_to_gguf_parts(hf)[2]]
        self.assertNotIn("output.weight", names)
        a, b = self.dump(hf, what=""), self.dump(gguf, what="")
        np.testing.assert_allclose(b["nll"][()], a["nll"][()], atol=1e-5)

    def test_every_type_runs_the_weights_numpy_dequantizes_from_it(self):
        def dequantized(type_name, misplaced):
            out = dict(self.w)
            for k in MATRICES:
                x = gguf_writer.decode(gguf_writer.encode(self.w[k], type_name), type_name,
                                       self.w[k].shape)
                if misplaced:  # a dequantizer that puts values in the wrong place in a block
                    x = x.reshape(*x.shape[:-1], -1, 32)[..., ::-1].reshape(x.shape)
                out[k] = np.ascontiguousarray(x)
            return out

        for type_name in ("F16", "BF16") + QUANTIZED:
            with self.subTest(type=type_name):
                got = self.dump(self.gguf(type_name), what="")["nll"][()]
                differences = {}
                for case in ("dequantized", "misplaced"):
                    hf = self.path(f"{type_name}-{case}")
                    write_hf_llama(dequantized(type_name, case == "misplaced"), hf, "F32")
                    want = self.dump(hf, what="")["nll"][()]
                    differences[case] = np.abs(got - want).max()
                self.assertLess(differences["dequantized"], 1e-5)
                self.assertGreater(differences["misplaced"], 1e-2)

    def test_llama3_rope_freqs_factors_are_honoured(self):
        # Llama 3.x scaling: convert_hf_to_gguf.py turns the config's rope_scaling into
        # rope_freqs.weight; a short original context puts most frequencies in the scaled band.
        w = small_weights(7)
        hf = self.path("llama3")
        write_hf_llama(w, hf, "F32")
        scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
        edit_json(os.path.join(hf, "config.json"), lambda c: c.update(rope_scaling=scaling))
        gguf = self.gguf("F32", source=hf, name="llama3.gguf")
        a, b = self.dump(hf, what=""), self.dump(gguf, what="")
        np.testing.assert_allclose(b.attrs["rope_inv_freq"], a.attrs["rope_inv_freq"], rtol=1e-6)
        np.testing.assert_allclose(b["nll"][()], a["nll"][()], atol=1e-5)
        # Control: the same file without its factors is another model.
        cfg, metadata, tensors = gguf_writer.hf_to_gguf_parts(hf)
        gguf_writer.write_gguf(self.path("unscaled.gguf"), metadata,
                               [t for t in tensors if t[0] != "rope_freqs.weight"])
        c = self.dump(self.path("unscaled.gguf"), what="")
        self.assertGreater(np.abs(c["nll"][()] - a["nll"][()]).max(), 1e-2)

    def test_a_prope_convert_gguf_runs_as_the_p_override(self):
        gguf = self.gguf("Q8_0")
        for args in (["--p", "0.25"], ["--p", "0.5", "--reverse"], ["--p", "0"]):
            with self.subTest(args=args):
                converted = self.path("p.gguf")
                run("prope-convert", gguf, *args, "-o", converted, "--force", check=0)
                a = self.dump(gguf, *args, what="", name="override.h5")
                b = self.dump(converted, what="", name="converted.h5")
                # Dropped frequencies (divided by 1e30 in rope_freqs) are exactly 0 in the dump.
                np.testing.assert_array_equal(b.attrs["rope_inv_freq"], a.attrs["rope_inv_freq"])
                self.assertIn(0.0, b.attrs["rope_inv_freq"])
                np.testing.assert_array_equal(b["nll"][()], a["nll"][()])


class StoredWeights(TempDirTest):
    def test_bf16_weights_give_exactly_what_their_float32_upcast_gives(self):
        w = small_weights(8)
        ids = "1 7 3 299 12 12 40 5 6 250 1 2"
        cases = {}
        for dtype in ("BF16", "F32"):
            hf = self.path(f"hf-{dtype}")
            write_hf_llama(rounded(w, "BF16") if dtype == "F32" else w, hf, dtype)
            cases[f"hf {dtype}"] = hf
            cases[f"gguf {dtype}"] = self.path(f"{dtype}.gguf")
            gguf_writer.hf_to_gguf(hf, cases[f"gguf {dtype}"], dtype)
        dumps = {}
        for case, model in cases.items():
            out = self.path(f"{case}.h5".replace(" ", "-"))
            run("rope-dump", model, "--ids", ids, "--what", "all", "-o", out, check=0)
            dumps[case] = h5py.File(out, "r")
        for kind in ("hf", "gguf"):
            stored, upcast = dumps[f"{kind} BF16"], dumps[f"{kind} F32"]
            names = [n for n in upcast.keys() if isinstance(upcast[n], h5py.Dataset)]
            self.assertIn("blocks.1.attn.hook_rot_k", names)
            for name in names:
                with self.subTest(model=kind, dataset=name):
                    np.testing.assert_array_equal(stored[name][()], upcast[name][()])

    @unittest.skipIf(SANITIZED, "memory cannot be measured under AddressSanitizer")
    def test_memory_stays_far_below_the_float32_size_of_the_weights(self):
        # 143M parameters: 285 MB as bf16, 570 MB as float32. Converting at load (as rope-dump
        # did before issue 13) peaked at 850 MB.
        shape = random_llama.Shape(dim=1024, hidden=2816, layers=6, heads=8, kv_heads=8,
                                   vocab=32000)
        f32_bytes = 4 * shape.parameters()
        models = {"HF BF16": self.path("hf"), "GGUF BF16": self.path("model.gguf"),
                  "GGUF Q8_0": self.path("q8.gguf")}
        random_llama.write_hf(models["HF BF16"], shape, "BF16")
        random_llama.write_gguf(models["GGUF BF16"], shape, "BF16")
        random_llama.write_gguf(models["GGUF Q8_0"], shape, "Q8_0")
        for case, model in models.items():
            with self.subTest(model=case):
                code, out, err, rss = run_measured(
                    [tool_path("rope-dump"), model, "--ids", " ".join(map(str, range(1, 17))),
                     "--what", "", "-o", self.path("out.h5"), "--force"])
                self.assertEqual(code, 0, err)
                print(f"\n  {case}: peak RSS {rss / MiB:.0f} MiB for {f32_bytes / MiB:.0f} MiB of "
                      "float32 weights", end="")
                self.assertLess(rss, f32_bytes / 2)
                self.assertLess(rss, 128 * MiB)
                with h5py.File(self.path("out.h5"), "r") as f:
                    self.assertTrue(np.isfinite(f["nll"][()]).all())


if __name__ == "__main__":
    unittest.main()
