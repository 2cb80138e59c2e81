"""A TransformerLens cache as a researcher saves it with h5py (hook_q/hook_k only, nested groups,
Hugging Face module names, rope_theta as a string, patterns without a batch axis) works without
flags, or its error says what the file holds and which --name or --axes would read it
(issue 19)."""
import os
import unittest

import h5py
import numpy as np

from ropekit_test import TempDirTest, run
from test_find_positional_heads import parse_tsv, planted_dump

PLANTED = {(0, 0, 0), (0, 1, 1), (1, 3, 2)}  # planted_dump's (layer, head, offset)


class TransformerLensCache(TempDirTest):
    def write_cache(self, name="cache.h5", template="blocks.{layer}.attn.{hook}",
                    hooks=("hook_q", "hook_k"), theta="10000", batch=True):
        layers = planted_dump(np.random.default_rng(5))
        path = self.path(name)
        with h5py.File(path, "w") as f:
            if theta is not None:
                f.attrs["rope_theta"] = theta
            for layer, tensors in enumerate(layers):
                for hook in hooks:
                    data = tensors[hook] if batch else tensors[hook][0]
                    f[template.format(layer=layer, hook=hook)] = data.astype(np.float32)
        return path

    def positional(self, stdout):
        return {(r["layer"], r["head"], r["offset"]) for r in parse_tsv(stdout) if r["positional"]}

    def test_qk_chosen_without_flags_and_said_on_stderr(self):
        path = self.write_cache()
        r = run("find-positional-heads", path, check=0)
        self.assertEqual(self.positional(r.stdout), PLANTED)
        for said in ("no attention patterns", "--from qk", "hook_q and hook_k",
                     "rope_layout half", "theta 10000", "1/sqrt(head_dim)"):
            self.assertIn(said, r.stderr)
        explicit = run("find-positional-heads", path, "--from", "qk", "-q", check=0)
        self.assertEqual(explicit.stdout, r.stdout)

    def test_patterns_still_preferred_when_present(self):
        path = self.write_cache(hooks=("hook_q", "hook_k", "hook_pattern"))
        r = run("find-positional-heads", path, check=0)
        self.assertNotIn("--from qk", r.stderr)
        self.assertEqual(self.positional(r.stdout), PLANTED)

    def test_missing_theta_says_how_to_pass_it(self):
        path = self.write_cache(theta=None)
        r = run("find-positional-heads", path)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("pass --theta (e.g. 10000)", r.stderr)

    def test_theta_string_that_is_not_a_number(self):
        path = self.write_cache(theta="ten thousand")
        # freq-norms never uses theta: the attribute cannot stop it
        run("freq-norms", path, "-q", check=0)
        r = run("find-positional-heads", path, "-q")
        self.assertOneLineError(r, 1, "rope_theta", "expected a number, found 'ten thousand'")
        again = run("find-positional-heads", path, "--theta", "10000", "-q", check=0)
        self.assertEqual(self.positional(again.stdout), PLANTED)

    def test_nested_groups_get_the_template_that_reads_them(self):
        path = self.write_cache(template="blocks/{layer}/attn/{hook}")
        r = run("find-positional-heads", path)
        self.assertOneLineError(r, 1, "no layers found", "blocks/0/attn/hook_k [2, 24, 2, 16]",
                                "--name 'blocks/{layer}/attn/{hook}'")
        ok = run("find-positional-heads", path, "--name", "blocks/{layer}/attn/{hook}", "-q",
                 check=0)
        self.assertEqual(self.positional(ok.stdout), PLANTED)

    def test_hugging_face_names_get_one_template_per_hook(self):
        path = self.path("hf.h5")
        rng = np.random.default_rng(1)
        with h5py.File(path, "w") as f:
            for layer in range(3):
                for proj in ("q_proj", "k_proj"):
                    f[f"model.layers.{layer}.self_attn.{proj}"] = rng.normal(size=(6, 2, 8))
        r = run("freq-norms", path)
        q = "q=model.layers.{layer}.self_attn.q_proj"
        k = "k=model.layers.{layer}.self_attn.k_proj"
        self.assertOneLineError(r, 1, "no layers found", "(+2 more)", f"--name '{q}'",
                                f"--name '{k}'")
        ok = run("freq-norms", path, "--name", q, "--name", k, "--axes", "pos,head,dim", check=0)
        self.assertEqual(len(ok.stdout.strip().splitlines()), 1 + 2 * 3 * 2)  # q and k, 3 layers

    def test_pattern_without_batch_axis_names_the_axes(self):
        layers = planted_dump(np.random.default_rng(5), batch=1)
        path = self.path("pattern.h5")
        with h5py.File(path, "w") as f:
            for layer, tensors in enumerate(layers):
                f[f"blocks.{layer}.attn.hook_pattern"] = tensors["hook_pattern"][0]
        r = run("find-positional-heads", path)
        self.assertOneLineError(r, 1, "found shape [4, 24, 24]", "pass --axes pos,head,dim")
        ok = run("find-positional-heads", path, "--axes", "pos,head,dim", "-q", check=0)
        self.assertEqual(self.positional(ok.stdout), PLANTED)


class FreqNormsWithoutOutput(TempDirTest):
    def test_prints_the_table_as_with_an_output(self):
        path = TransformerLensCache.write_cache(self)
        alone = run("freq-norms", path, "-q", check=0)
        with_file = run("freq-norms", path, "-o", self.path("n.h5"), "-q", check=0)
        self.assertEqual(alone.stdout, with_file.stdout)
        self.assertTrue(alone.stdout.startswith("tensor\tlayer\thead\ttop_quarter_share"))
        # q: 2 layers x 4 heads, k: 2 layers x 2 kv heads, and the header
        self.assertEqual(len(alone.stdout.strip().splitlines()), 1 + 2 * 4 + 2 * 2)


class Bfloat16AsIntegers(TempDirTest):
    """t.view(torch.int16).numpy() and .view(torch.uint16): bf16 bits in a 16-bit integer dataset."""

    def write(self, name, int_type, mark):
        rng = np.random.default_rng(3)
        values = {}
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with h5py.File(path, "w") as f:
            f.attrs["rope_theta"] = 10000.0
            for hook in ("hook_q", "hook_k"):
                x = rng.normal(size=(1, 12, 2, 8)).astype(np.float32)
                bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bf16
                values[hook] = (bits.astype(np.uint32) << 16).view(np.float32)
                d = f.create_dataset(f"blocks.0.attn.{hook}", data=bits.view(int_type))
                if mark:
                    d.attrs["dtype"] = "bfloat16"
            # a 2-D one for rope-plot and construct-key: head 0 of the queries [pos, dim]
            d = f.create_dataset("q_head0", data=f["blocks.0.attn.hook_q"][0, :, 0, :])
            values["q_head0"] = values["hook_q"][0, :, 0, :]
            if mark:
                d.attrs["dtype"] = "bfloat16"
        return path, values

    def test_marked_int16_and_uint16_read_as_their_bf16_values(self):
        reference = self.path("f32.h5")
        for int_type in (np.int16, np.uint16):
            path, values = self.write(f"{int_type.__name__}.h5", int_type, mark=True)
            with h5py.File(reference, "w") as f:
                f.attrs["rope_theta"] = 10000.0
                for hook, v in values.items():
                    f[f"blocks.0.attn.{hook}"] = v
            got = run("freq-norms", path, "-o", self.path("got.h5"), "--force", "-q", check=0)
            want = run("freq-norms", reference, "-q", check=0)
            self.assertEqual(got.stdout, want.stdout, int_type.__name__)
            with h5py.File(self.path("got.h5")) as f:
                norms = f["q_norms"][...]
            pairs = values["hook_q"][0].reshape(12, 2, 2, 4)  # half layout: dims k and k + 4
            direct = np.sqrt(pairs[:, :, 0, :] ** 2 + pairs[:, :, 1, :] ** 2).mean(axis=0)
            np.testing.assert_allclose(norms[0], direct, rtol=1e-5)

    def test_unmarked_integers_say_how_to_mark_them(self):
        path, _ = self.write("plain.h5", np.int16, mark=False)
        for tool in ("freq-norms", "find-positional-heads"):
            r = run(tool, path, "-q")
            self.assertOneLineError(r, 1, "blocks.0.attn.hook_q", "bf16 bits?",
                                    "mark it with attrs['dtype']='bfloat16' or pass --bf16")
        # a tool without --bf16 names only the attribute
        r = run("construct-key", "--query", path + ":q_head0", "-o", self.path("k.h5"), "-q")
        self.assertOneLineError(r, 1, "mark it with attrs['dtype']='bfloat16')")
        self.assertNotIn("--bf16", r.stderr)

    def reference(self, values):
        path = self.path("f32/dump.h5")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with h5py.File(path, "w") as f:
            f.attrs["rope_theta"] = 10000.0
            for hook, v in values.items():
                f[hook if hook == "q_head0" else f"blocks.0.attn.{hook}"] = v
        return path

    def results(self, path, *flags):
        """What each dump-reading tool makes of the file: tables, decay curve, SVG text."""
        out = {}
        for tool in ("freq-norms", "find-positional-heads"):
            out[tool] = run(tool, path, "-q", *flags, check=0).stdout
        decay = os.path.join(os.path.dirname(path), "decay.h5")
        run("rope-decay", "--mode", "file", "--input", path, "--query", "blocks.0.attn.hook_q",
            "--key", "blocks.0.attn.hook_k", "--head-dim", "8", "--max-offset", "11", "-o", decay,
            "--force", "-q", *flags, check=0)
        with h5py.File(decay) as f:
            out["rope-decay"] = f["activation"][...].tolist()
        out["rope-plot"] = run("rope-plot", path + ":q_head0", "-o", "-", "-q", *flags,
                               check=0).stdout.replace(path, "FILE")  # the title names it
        return out

    def test_bf16_option_reads_unmarked_int16_and_uint16_as_their_bf16_values(self):
        # --bf16 on freq-norms, find-positional-heads, rope-decay --mode file and rope-plot gives
        # the float32 file's results, from int16 and from uint16 bits alike
        for int_type in (np.int16, np.uint16):
            with self.subTest(int_type.__name__):
                path, values = self.write(f"{int_type.__name__}/dump.h5", int_type, mark=False)
                want = self.results(self.reference(values))
                got = self.results(path, "--bf16")
                self.assertEqual(set(got), set(want))
                for tool in want:
                    self.assertEqual(got[tool], want[tool], tool)
                    self.assertTrue(want[tool], tool)

    def test_rope_plot_reads_marked_bf16_as_values_not_integers(self):
        # control for the rope-plot case above: unmarked bits without --bf16 are plotted as the
        # integers they are; marked ones are the float32 values
        plain, values = self.write("plain/dump.h5", np.int16, mark=False)
        marked, _ = self.write("marked/dump.h5", np.int16, mark=True)
        plot = lambda path: run("rope-plot", path + ":q_head0", "-o", "-", "-q",
                                check=0).stdout.replace(path, "FILE")
        want = plot(self.reference(values))
        self.assertEqual(plot(marked), want)
        self.assertNotEqual(plot(plain), want)


if __name__ == "__main__":
    unittest.main()
