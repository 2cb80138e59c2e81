"""Bad-input corpus, part 1: checkpoints (safetensors, config.json, GGUF, llama2.c) fed to
prope-convert and rope-dump. Each test is named by its expected outcome; bad_inputs.py checks
exit code, the one error line, no output left and unchanged inputs."""
import json
import os
import shutil
import struct
import unittest

import numpy as np

import test_prope_convert as pc
from bad_inputs import BadInputTest
from ropekit_test import SHARED_DATA, edit_json


def safetensors_bytes(header, data=b"", pad=True):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


class Safetensors(BadInputTest):
    """A Hugging Face directory whose model.safetensors is replaced by a broken one."""

    def hf_dir(self, model_bytes=None):
        src = self.path("model")
        pc.make_hf_dir(src)
        if model_bytes is not None:
            with open(os.path.join(src, "model.safetensors"), "wb") as f:
                f.write(model_bytes)
        return src

    def refused(self, model_bytes, *fragments, tool="prope-convert"):
        src = self.hf_dir(model_bytes)
        shard = os.path.join(src, "model.safetensors")
        if tool == "prope-convert":
            args = [src, "--p", "0.5", "-o", self.path("out")]
        else:
            args = [src, "--ids", "1 2 3", "-o", self.path("out.h5")]
        return self.expect_refusal(tool, args, 1, shard, *fragments, inputs=[src],
                                   outputs=["out", "out.h5"])

    def test_zero_length_file_exits_1(self):
        self.refused(b"", "too short for a safetensors header")

    def test_truncated_file_exits_1(self):
        with open(os.path.join(self.hf_dir(), "model.safetensors"), "rb") as f:
            data = f.read()
        shutil.rmtree(self.path("model"))
        self.refused(data[: len(data) // 2], "data section")

    def test_header_length_beyond_the_file_exits_1(self):
        self.refused(struct.pack("<Q", 4096) + b"{}", "header length 4096 runs past the end")

    def test_header_length_2_pow_63_exits_1(self):
        self.refused(struct.pack("<Q", 1 << 63) + b"{}      ",
                     "header length 9223372036854775808 runs past the end")

    def test_header_not_json_exits_1(self):
        self.refused(safetensors_bytes(b'{"a": [1, 2'), "header is not valid JSON")

    def test_header_json_array_exits_1(self):
        self.refused(safetensors_bytes(b"[1, 2, 3]"), "header is not a JSON object")

    def test_overlapping_offsets_exit_1(self):
        self.refused(safetensors_bytes({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)},
                                       b"\0" * 12), "overlap the previous tensor")

    def test_offsets_out_of_range_exit_1(self):
        self.refused(safetensors_bytes({"a": entry("F32", [4], 0, 16)}, b"\0" * 8),
                     "a: data_offsets [0, 16] run past the data section")

    def test_offsets_not_covering_the_buffer_exit_1(self):
        self.refused(safetensors_bytes({"a": entry("F32", [1], 0, 4)}, b"\0" * 12),
                     "tensors cover 4 of the 12 data bytes")

    def test_offsets_with_a_gap_exit_1(self):
        self.refused(safetensors_bytes({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)},
                                       b"\0" * 12), "b: data_offsets [8, 12] leave a gap after 4")

    def test_unknown_dtype_exits_1(self):
        self.refused(safetensors_bytes({"w": entry("F7", [1], 0, 4)}, b"\0" * 4),
                     "w: unknown dtype 'F7'")

    def test_shape_and_offsets_disagree_exit_1(self):
        self.refused(safetensors_bytes({"w": entry("F32", [3], 0, 8)}, b"\0" * 8),
                     "w: F32 [3] needs 12 bytes but data_offsets [0, 8] hold 8")

    def test_duplicate_tensor_names_exit_1(self):
        header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, ' \
                 b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'
        self.refused(safetensors_bytes(header, b"\0" * 8), "w: tensor name appears twice")

    def test_rope_dump_refuses_a_truncated_shard_too(self):
        self.refused(struct.pack("<Q", 1 << 40) + b"{}", "runs past the end", tool="rope-dump")

    def test_index_naming_a_shard_outside_the_directory_exits_1(self):
        src = self.path("model")
        pc.make_hf_dir(src, sharded=True)
        edit_json(os.path.join(src, "model.safetensors.index.json"),
                  lambda d: d["weight_map"].update({"lm_head.weight": "../evil.safetensors"}))
        self.expect_refusal("prope-convert", [src, "--p", "0.5", "-o", self.path("out")], 1,
                            "model.safetensors.index.json", "weight_map",
                            "'../evil.safetensors' is not a plain file name", inputs=[src],
                            outputs=["out"])

    def test_index_naming_a_missing_shard_exits_1(self):
        src = self.path("model")
        pc.make_hf_dir(src, sharded=True)
        os.remove(os.path.join(src, "model-00004-of-00004.safetensors"))
        self.expect_refusal("prope-convert", [src, "--p", "0.5", "-o", self.path("out")], 1,
                            "model-00004-of-00004.safetensors", inputs=[src], outputs=["out"])


class ConfigJson(BadInputTest):
    def hf_dir(self, edit=None, text=None):
        src = self.path("model")
        pc.make_hf_dir(src)
        path = os.path.join(src, "config.json")
        if text is not None:
            with open(path, "w") as f:
                f.write(text)
        elif edit is not None:
            edit_json(path, edit)
        return src

    def refused(self, src, *fragments, tool="prope-convert"):
        if tool == "prope-convert":
            args = [src, "--p", "0.5", "-o", self.path("out")]
        else:
            args = [src, "--ids", "1 2 3", "-o", self.path("out.h5")]
        return self.expect_refusal(tool, args, 1, os.path.join(src, "config.json"), *fragments,
                                   inputs=[src], outputs=["out", "out.h5"])

    def test_malformed_json_exits_1(self):
        self.refused(self.hf_dir(text='{"hidden_size": 32,'), "not valid JSON")

    def test_malformed_json_exits_1_in_rope_dump(self):
        self.refused(self.hf_dir(text='{"hidden_size": 32,'), "not valid JSON", tool="rope-dump")

    def test_missing_head_dim_and_hidden_size_exits_1(self):
        def edit(cfg):
            del cfg["hidden_size"]
        self.refused(self.hf_dir(edit), "head_dim", "hidden_size")

    def test_odd_head_dim_exits_1(self):
        self.refused(self.hf_dir(lambda c: c.update(head_dim=15)), "head_dim",
                     "expected an even head dimension, got 15")

    def test_unknown_rope_type_exits_1(self):
        self.refused(self.hf_dir(lambda c: c.update(rope_scaling={"rope_type": "spiral"})),
                     "rope_type", "spiral")

    def test_longrope_factors_of_the_wrong_length_exit_1(self):
        def edit(cfg):
            cfg["rope_scaling"] = {"rope_type": "longrope", "short_factor": [1.0, 1.0],
                                   "long_factor": [1.0] * 8, "original_max_position_embeddings": 512}
        self.refused(self.hf_dir(edit), "short_factor", "expected 8 entries (rotary_dim / 2), got 2")

    def test_rope_theta_not_a_number_exits_1(self):
        self.refused(self.hf_dir(lambda c: c.update(rope_theta="10000")), "rope_theta",
                     "expected a number")

    def test_absurd_head_dim_exits_1(self):
        self.refused(self.hf_dir(lambda c: c.update(head_dim=1 << 40)), "head_dim",
                     "implausibly large")

    def test_config_json_that_is_a_list_exits_1(self):
        self.refused(self.hf_dir(text="[1, 2]"), "expected a JSON object")

    def test_directory_without_config_exits_1(self):
        src = self.hf_dir()
        os.remove(os.path.join(src, "config.json"))
        self.expect_refusal("prope-convert", [src, "--p", "0.5", "-o", self.path("out")], 1,
                            src, "config.json: missing", inputs=[src], outputs=["out"])


class Gguf(BadInputTest):
    def good(self):
        kvs = [("general.architecture", 8, "llama"), ("llama.rope.dimension_count", 4, 8),
               ("llama.rope.freq_base", 6, 10000.0)]
        tensors = [("token_embd.weight", [8, 4], 0, np.ones(32, np.float32).tobytes()),
                   ("blk.0.attn_q.weight", [8, 8], 1, np.ones(64, np.float16).tobytes())]
        path = self.path("model.gguf")
        pc.write_gguf(path, kvs, tensors)
        with open(path, "rb") as f:
            return bytearray(f.read())

    def refused(self, data, *fragments):
        path = self.path("model.gguf")
        with open(path, "wb") as f:
            f.write(bytes(data))
        return self.expect_refusal(
            "prope-convert", [path, "--input-kind", "gguf", "--p", "0.5", "-o", self.path("out.gguf")],
            1, path, *fragments, inputs=[path], outputs=["out.gguf"])

    def test_zero_length_file_exits_1(self):
        self.refused(b"", "truncated")

    def test_truncated_file_exits_1(self):
        data = self.good()
        self.refused(data[: len(data) - 40], "runs past the end of the file")

    def test_truncated_in_the_metadata_exits_1(self):
        self.refused(self.good()[:60], "truncated")

    def test_bad_magic_exits_1(self):
        data = self.good()
        data[:4] = b"GGML"
        self.refused(data, "not a GGUF file (no GGUF magic)")

    def test_unsupported_version_exits_1(self):
        data = self.good()
        data[4:8] = struct.pack("<I", 7)
        self.refused(data, "version", "GGUF version 7 is not supported")

    def test_big_endian_version_exits_1(self):
        data = self.good()
        data[4:8] = struct.pack(">I", 3)
        self.refused(data, "version", "is not supported (expected 2 or 3, little-endian)")

    def test_absurd_tensor_count_exits_1(self):
        data = self.good()
        data[8:16] = struct.pack("<Q", 1 << 60)
        self.refused(data, "1152921504606846976 tensors", "cannot fit")

    def test_absurd_key_count_exits_1(self):
        data = self.good()
        data[16:24] = struct.pack("<Q", (1 << 64) - 1)
        self.refused(data, "18446744073709551615 keys", "cannot fit")

    def test_string_length_beyond_the_file_exits_1(self):
        data = self.good()
        data[24:32] = struct.pack("<Q", 1 << 50)  # length of the first key
        self.refused(data, "key #0", "truncated")

    def test_misaligned_tensor_data_exits_1(self):
        data = self.good()
        # The second tensor info's offset is the last 8 bytes before the padding; find it.
        name = b"blk.0.attn_q.weight"
        at = data.index(name) + len(name) + 4 + 16 + 4
        data[at:at + 8] = struct.pack("<Q", 129)
        self.refused(data, "blk.0.attn_q.weight", "offset 129 is not a multiple of the alignment 32")

    def test_duplicate_key_exits_1(self):
        path = self.path("model.gguf")
        pc.write_gguf(path, [("general.name", 8, "a"), ("general.name", 8, "b")], [])
        with open(path, "rb") as f:
            self.refused(f.read(), "general.name", "key appears twice")

    def test_unknown_value_type_exits_1(self):
        data = self.good()
        key = b"general.architecture"
        at = data.index(key) + len(key)
        data[at:at + 4] = struct.pack("<I", 99)
        self.refused(data, "general.architecture", "unknown value type 99")


class Llama2c(BadInputTest):
    def refused(self, data, *fragments):
        path = self.path("model.bin")
        with open(path, "wb") as f:
            f.write(data)
        return self.expect_refusal("rope-dump", [path, "--ids", "1 2 3", "-o", self.path("out.h5")],
                                   1, path, *fragments, inputs=[path])

    def test_zero_length_checkpoint_exits_1(self):
        self.refused(b"", "header")

    def test_negative_dimensions_exit_1(self):
        self.refused(struct.pack("<7i", 64, -1, 5, 8, 4, 512, 256) + b"\0" * 64, "header")

    @unittest.skipUnless(os.path.exists(os.path.join(SHARED_DATA, "stories260K.bin")),
                         "needs ../shared/data/stories260K.bin")
    def test_truncated_real_checkpoint_exits_1(self):
        with open(os.path.join(SHARED_DATA, "stories260K.bin"), "rb") as f:
            data = f.read()
        self.refused(data[: len(data) // 2], "bytes")


if __name__ == "__main__":
    unittest.main()
