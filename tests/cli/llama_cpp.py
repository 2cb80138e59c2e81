"""llama.cpp as the tests' oracle: the npm package node-llama-cpp that scripts/install-oracles puts
into the build tree (ROPEKIT_ORACLES/llama-cpp, default build/oracles/llama-cpp). Two ways in:
- llama_cpp_logprobs(): a GGUF model evaluated by llama.cpp (tests/oracle/llama_logprobs.mjs);
- Ggml: ggml's own quantize_chunk / to_float from the package's libggml-base.so, through ctypes.
Test classes call require_oracle() in setUpClass: with CI=true a missing oracle fails the run,
elsewhere the tests skip and say why."""
import ctypes
import glob
import json
import os
import subprocess
import unittest

import numpy as np

from ropekit_test import BIN, SOURCE

# scripts/install-oracles puts each oracle in a folder of ROPEKIT_ORACLES (default build/oracles).
ORACLES = os.environ.get("ROPEKIT_ORACLES", os.path.join(BIN, "oracles"))
ORACLE = os.path.join(ORACLES, "llama-cpp")
RUNNER = os.path.join(SOURCE, "tests", "oracle", "llama_logprobs.mjs")
BINARIES = os.path.join(ORACLE, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64")


def oracle_missing():
    """Why llama.cpp cannot run here, or None."""
    if not os.path.exists(os.path.join(ORACLE, "node_modules", "node-llama-cpp", "dist", "index.js")):
        return f"node-llama-cpp is not installed in {ORACLE} (scripts/install-oracles)"
    if not glob.glob(os.path.join(BINARIES, "libggml-base.so")):
        return f"no llama.cpp binaries in {BINARIES}"
    try:
        subprocess.run(["node", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "node is not installed (scripts/install-deps)"
    return None


def require_oracle():
    reason = oracle_missing()
    if reason and os.environ.get("CI") == "true":
        raise AssertionError(f"CI must run the llama.cpp tests: {reason}")
    if reason:
        raise unittest.SkipTest(f"SKIPPED: {reason}")


def run_oracle(model, ids, workdir, *args):
    """Runs tests/oracle/llama_logprobs.mjs on ids [B, T]; -> (process result, output path)."""
    request, answer = os.path.join(workdir, "ids.json"), os.path.join(workdir, "logprobs.json")
    with open(request, "w") as f:
        json.dump({"sequences": np.asarray(ids).tolist()}, f)
    command = ["node", RUNNER, "--oracle", ORACLE, "--model", model, "--input", request,
               "--output", answer] + [str(a) for a in args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600), answer


def llama_cpp_logprobs(model, ids, workdir):
    """ids [B, T] -> llama.cpp's ln p(ids[b, t] | ids[b, < t]) [B, T], 0 at t = 0."""
    r, answer = run_oracle(model, ids, workdir)
    if r.returncode != 0:
        raise AssertionError(f"llama.cpp on {model} failed: {r.stderr[-2000:]}")
    with open(answer) as f:
        return np.array(json.load(f)["logprobs"], dtype=np.float64)


class _TypeTraits(ctypes.Structure):  # struct ggml_type_traits (ggml.h)
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


class Ggml:
    """ggml's reference quantizers and dequantizers, from llama.cpp's own library."""

    def __init__(self):
        self.lib = ctypes.CDLL(os.path.join(BINARIES, "libggml-base.so"))
        self.lib.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
        self.lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
        self.lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                                 ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                                 ctypes.c_void_p]

    def traits(self, ggml_type):
        return self.lib.ggml_get_type_traits(ggml_type).contents

    def quantize(self, x, ggml_type):
        """float32 rows [..., n] -> bytes, by ggml_quantize_chunk (the *_ref quantizers)."""
        x = np.ascontiguousarray(x, np.float32)
        t = self.traits(ggml_type)
        out = np.zeros(x.size // t.blck_size * t.type_size, np.uint8)
        rows = x.size // x.shape[-1]
        written = self.lib.ggml_quantize_chunk(ggml_type, x.ctypes.data, out.ctypes.data, 0, rows,
                                               x.shape[-1], None)
        assert written == out.size, (written, out.size)
        return out.tobytes()

    def dequantize(self, raw, ggml_type, count):
        """bytes -> count float32 values, by the type's to_float (dequantize_row_*)."""
        to_float = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
        src = np.frombuffer(raw, np.uint8).copy()
        out = np.zeros(count, np.float32)
        to_float(self.traits(ggml_type).to_float)(src.ctypes.data, out.ctypes.data, count)
        return out
