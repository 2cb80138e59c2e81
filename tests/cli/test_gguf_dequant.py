"""GGUF dequantization (issue 13) cross-checked:
- against ggml itself (llama.cpp's libggml-base.so through ctypes, llama_cpp.Ggml): blocks made by
  ggml's reference quantizers, the K-quants with their error-minimising search, converted by
  ropekit (through the gguf-dequant test helper, a few rows per read as a model loader does) and
  by ggml's dequantize_row_* must be identical; gguf_writer's Q8_0/Q4_0 bytes are ggml's;
- against numpy: tensors quantized by gguf_writer.py, converted by ropekit and by gguf_writer's
  numpy dequantizers, identical; the numpy side is also held to each type's quantization error,
  so the two cannot agree on garbage."""
import os
import unittest

import h5py
import numpy as np

import gguf_writer
from llama_cpp import Ggml, require_oracle
from ropekit_test import TempDirTest, run, tool_path

# Largest |dequantized − original| / max |original| of a row, per type, with some room over what
# these data give (F16 3e-4, BF16 2.6e-3, Q8_0 0.39%, Q4_0 9.4%, Q4_K 5.7%, Q5_K 2.5%,
# Q6_K 2.4%): this bound is about the quantizers, the exact equality about the dequantizers.
RELATIVE_ERROR = {"F32": 0, "F16": 5e-4, "BF16": 4e-3, "Q8_0": 0.005, "Q4_0": 0.13, "Q4_K": 0.08,
                  "Q5_K": 0.04, "Q6_K": 0.035}


def test_tensor(rng, shape):
    """Rows of very different scales, a row of zeros, a constant row, an outlier."""
    x = rng.standard_normal(shape).astype(np.float32)
    rows = x.reshape(-1, shape[-1])
    rows *= np.float32(10.0) ** rng.uniform(-3, 2, (len(rows), 1)).astype(np.float32)
    rows[0] = 0
    rows[1] = 0.75
    rows[2, 7] = 1000
    rows[3] = np.abs(rows[3])  # all positive: K-quant mins of 0
    return x


@unittest.skipUnless(os.path.exists(tool_path("gguf-dequant")), "gguf-dequant is not built")
class Dequantization(TempDirTest):
    def test_every_type_matches_numpy_exactly(self):
        rng = np.random.default_rng(5)
        shapes = {"F32": (5, 64), "F16": (2, 3, 32), "BF16": (7, 96), "Q8_0": (9, 96),
                  "Q4_0": (6, 64), "Q4_K": (7, 512), "Q5_K": (5, 256), "Q6_K": (2, 4, 256)}
        originals, tensors = {}, []
        for type_name, shape in shapes.items():
            x = test_tensor(rng, shape)
            originals[type_name] = x
            tensors.append((f"t.{type_name}", tuple(reversed(shape)),
                            gguf_writer.GGML_TYPES[type_name], gguf_writer.encode(x, type_name)))
        gguf, out = self.path("types.gguf"), self.path("floats.h5")
        gguf_writer.write_gguf(gguf, [("general.architecture", gguf_writer.STRING, "llama")],
                               tensors)
        run("gguf-dequant", gguf, "--rows", 2, "-o", out, check=0)
        with h5py.File(out, "r") as f:
            for (name, _, _, raw), (type_name, x) in zip(tensors, originals.items()):
                with self.subTest(type=type_name):
                    want = gguf_writer.decode(raw, type_name, x.shape)
                    got = f[name][()].reshape(x.shape)
                    np.testing.assert_array_equal(got, want)
                    rows, back = x.reshape(-1, x.shape[-1]), want.reshape(-1, x.shape[-1])
                    scale = np.maximum(np.abs(rows).max(axis=1), 1e-30)
                    error = (np.abs(back - rows).max(axis=1) / scale).max()
                    self.assertLessEqual(error, RELATIVE_ERROR[type_name])

    def test_other_types_are_refused_naming_tensor_and_type(self):
        gguf = self.path("q5_0.gguf")
        gguf_writer.write_gguf(gguf, [], [("blk.3.ffn_up.weight", (32, 2), 6, bytes(44)),
                                          ("ok", (4,), 0, bytes(16))])
        r = run("gguf-dequant", gguf, "-o", self.path("x.h5"))
        self.assertOneLineError(r, 1, "q5_0.gguf: blk.3.ffn_up.weight: Q5_0 tensors cannot be "
                                "converted to float")
        self.assertFalse(os.path.exists(self.path("x.h5")))


@unittest.skipUnless(os.path.exists(tool_path("gguf-dequant")), "gguf-dequant is not built")
class AgainstGgml(TempDirTest):
    @classmethod
    def setUpClass(cls):
        require_oracle()
        cls.ggml = Ggml()

    def test_ggml_quantized_blocks_convert_as_ggml_converts_them(self):
        rng = np.random.default_rng(8)
        x = test_tensor(rng, (12, 512))
        tensors = []
        for type_name in ("Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16"):
            ggml_type = gguf_writer.GGML_TYPES[type_name]
            self.assertEqual(self.ggml.traits(ggml_type).type_name.decode().upper(), type_name)
            tensors.append((type_name, (512, 12), ggml_type, self.ggml.quantize(x, ggml_type)))
        gguf, out = self.path("ggml.gguf"), self.path("floats.h5")
        gguf_writer.write_gguf(gguf, [], tensors)
        run("gguf-dequant", gguf, "--rows", 5, "-o", out, check=0)
        with h5py.File(out, "r") as f:
            for type_name, _, ggml_type, raw in tensors:
                with self.subTest(type=type_name):
                    want = self.ggml.dequantize(raw, ggml_type, x.size).reshape(x.shape)
                    np.testing.assert_array_equal(f[type_name][()], want)

    def test_gguf_writer_quantizes_q8_0_and_q4_0_as_ggml(self):
        x = test_tensor(np.random.default_rng(9), (16, 256))
        for type_name in ("Q8_0", "Q4_0", "F16"):
            with self.subTest(type=type_name):
                self.assertEqual(gguf_writer.encode(x, type_name),
                                 self.ggml.quantize(x, gguf_writer.GGML_TYPES[type_name]))


if __name__ == "__main__":
    unittest.main()
