"""find-positional-heads against a numpy implementation on dumps written by h5py: planted
positional heads (Theorem 5.3 construction), random heads, GQA, both layouts, f16, pattern vs
qk agreement, TransformerLens's previous_token_head scores, pipes and bad inputs."""
import json
import os
import subprocess
import unittest

import h5py
import numpy as np

from dump_fixtures import causal_pattern, chunk_pairs, rotate, write_dump
from ropekit_test import SOURCE, TempDirTest, pipe, run, tool_path

THETA = 10000.0
COLUMNS = ["layer", "head", "offset", "mass", "min_mass", "positional", "prev_mul", "prev_abs",
           "top_freq_share"]


def offset_masses(A, max_offset, exclude_bos=False):
    """Mean over queries of A[i, i-r] (renormalised over keys >= 1 with exclude_bos)."""
    T = A.shape[0]
    out = []
    for r in range(max_offset + 1):
        first = r + 1 if exclude_bos else r
        if first >= T:
            out.append(np.nan)
            continue
        vals = []
        for i in range(first, T):
            denom = A[i, 1:i + 1].sum() if exclude_bos else 1.0
            vals.append(A[i, i - r] / denom)
        out.append(np.mean(vals))
    return np.array(out)


def tl_prev_scores(A, exclude_bos=False, exclude_current_token=False):
    """TransformerLens head_detector semantics, re-derived: previous-token detection pattern."""
    T = A.shape[0]
    D = np.zeros((T, T))
    D[1:, :-1] = np.eye(T - 1)
    Am = np.tril(A).astype(np.float64).copy()
    if exclude_bos:
        Am[:, 0] = 0
    if exclude_current_token:
        np.fill_diagonal(Am, 0)
    mul = (Am * D).sum() / Am.sum()
    E = np.abs(np.tril(A).astype(np.float64) - D)
    if exclude_bos:
        E[:, 0] = 0
    if exclude_current_token:
        np.fill_diagonal(E, 0)
    return mul, 1 - E.mean() * T


def planted_dump(rng, batch=2, tokens=24, heads=4, kv_heads=2, dim=16, layout="half",
                 planted=((0, 0, 0), (0, 1, 1), (1, 3, 2)), layers=2, scale=True):
    """Pre-RoPE q/k: planted (layer, head, offset) heads use psi on the 3 highest frequencies;
    the kv head of a planted head carries psi, its other query heads random."""
    group = heads // kv_heads
    a_idx, b_idx = chunk_pairs(dim, layout)
    out = []
    for L in range(layers):
        q = rng.normal(size=(batch, tokens, heads, dim)) * 0.3
        k = rng.normal(size=(batch, tokens, kv_heads, dim)) * 0.3
        psis = {}  # one psi per kv head: planted heads sharing a kv head share it
        for (pl, h, r) in planted:
            if pl != L:
                continue
            if h // group not in psis:
                psi = np.zeros(dim)
                for c in range(3):
                    ang = rng.uniform(0, 2 * np.pi)
                    psi[a_idx[c]], psi[b_idx[c]] = 12 * np.cos(ang), 12 * np.sin(ang)
                psis[h // group] = psi
            psi = psis[h // group]
            # q = R^{-r} psi at every position; k = psi
            qv = rotate(np.broadcast_to(psi, (1, 1, dim)), [-r], THETA, layout)[0, 0]
            q[:, :, h, :] = qv + rng.normal(size=(batch, tokens, dim)) * 0.02
            k[:, :, h // group, :] = psi + rng.normal(size=(batch, tokens, dim)) * 0.02
        pos = np.arange(tokens)
        rq = np.stack([rotate(q[b], pos, THETA, layout) for b in range(batch)])
        rk = np.stack([rotate(k[b], pos, THETA, layout) for b in range(batch)])
        s = 1 / np.sqrt(dim) if scale else 1.0
        pat = np.zeros((batch, heads, tokens, tokens))
        for b in range(batch):
            for h in range(heads):
                pat[b, h] = causal_pattern(rq[b, :, h], rk[b, :, h // group], s)
        out.append({"hook_q": q, "hook_k": k, "hook_rot_q": rq, "hook_rot_k": rk, "hook_pattern": pat})
    return out


def parse_tsv(text):
    lines = text.strip().split("\n")
    assert lines[0].split("\t") == COLUMNS, lines[0]
    rows = []
    for line in lines[1:]:
        c = line.split("\t")
        rows.append({"layer": int(c[0]), "head": int(c[1]), "offset": int(c[2]), "mass": float(c[3]),
                     "min_mass": float(c[4]), "positional": c[5] == "1", "prev_mul": float(c[6]),
                     "prev_abs": float(c[7]), "top_freq_share": float(c[8])})
    return rows


class FindPositionalHeads(TempDirTest):
    def write(self, layers, name="dump.h5", **kw):
        path = self.path(name)
        write_dump(path, layers, **kw)
        with h5py.File(path) as f:
            stored = {k: f[k][...].astype(np.float64) for k in f}
        return path, stored

    def numpy_heads(self, stored, layers, heads, max_offset=8, epsilon=0.1, exclude_bos=False,
                    exclude_current_token=False, from_qk=False, scale=None, group=2):
        rows = []
        for L in range(layers):
            if from_qk:
                rq, rk = stored[f"blocks.{L}.attn.hook_rot_q"], stored[f"blocks.{L}.attn.hook_rot_k"]
                B = rq.shape[0]
                pats = np.array([[causal_pattern(rq[b, :, h], rk[b, :, h // group], scale)
                                  for h in range(heads)] for b in range(B)])
            else:
                pats = stored[f"blocks.{L}.attn.hook_pattern"]
            for h in range(heads):
                per_seq = np.array([offset_masses(pats[b, h], max_offset, exclude_bos)
                                    for b in range(pats.shape[0])])
                mean = per_seq.mean(axis=0)
                r = int(np.nanargmax(mean))
                tl = np.array([tl_prev_scores(pats[b, h], exclude_bos, exclude_current_token)
                               for b in range(pats.shape[0])]).mean(axis=0)
                rows.append({"layer": L, "head": h, "offset": r, "mass": mean[r],
                             "min_mass": per_seq[:, r].min(),
                             "positional": per_seq[:, r].min() >= 1 - epsilon,
                             "prev_mul": tl[0], "prev_abs": tl[1]})
        return rows

    def assertRowsMatch(self, got, want, tol=2e-4):
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            with self.subTest(layer=w["layer"], head=w["head"]):
                for key in ("layer", "head", "offset", "positional"):
                    self.assertEqual(g[key], w[key], key)
                for key in ("mass", "min_mass", "prev_mul", "prev_abs"):
                    self.assertAlmostEqual(g[key], w[key], delta=tol, msg=key)

    def test_pattern_mode_matches_numpy(self):
        layers = planted_dump(np.random.default_rng(1))
        path, stored = self.write(layers)
        r = run("find-positional-heads", path, "-q", check=0)
        got = parse_tsv(r.stdout)
        want = self.numpy_heads(stored, 2, 4)
        self.assertRowsMatch(got, want)
        found = sorted((x["layer"], x["head"], x["offset"]) for x in got if x["positional"])
        self.assertEqual(found, [(0, 0, 0), (0, 1, 1), (1, 3, 2)])

    def test_qk_mode_matches_numpy_and_pattern_mode(self):
        layers = planted_dump(np.random.default_rng(2), layout="interleaved")
        path, stored = self.write(layers, layout="interleaved")
        qk = parse_tsv(run("find-positional-heads", path, "--from", "qk", "-q", check=0).stdout)
        want = self.numpy_heads(stored, 2, 4, from_qk=True, scale=1 / 4)
        self.assertRowsMatch(qk, want)
        pat = parse_tsv(run("find-positional-heads", path, "--from", "pattern", "-q", check=0).stdout)
        self.assertRowsMatch(qk, pat, tol=2e-4)  # the stored pattern came from the same q, k
        # --scale none: the paper's convention, sharper patterns
        none = parse_tsv(run("find-positional-heads", path, "--from", "qk", "--scale", "none", "-q", check=0).stdout)
        self.assertRowsMatch(none, self.numpy_heads(stored, 2, 4, from_qk=True, scale=1.0))

    def test_results_do_not_depend_on_the_thread_count(self):
        layers = planted_dump(np.random.default_rng(4), batch=3, heads=8, kv_heads=2)
        path, _ = self.write(layers)
        outputs = []
        for threads in (1, 2, 3):
            out = self.path(f"heads-{threads}.h5")
            run("find-positional-heads", path, "--from", "qk", "--threads", threads, "-o", out,
                "-q", check=0)
            with h5py.File(out) as f:
                outputs.append({k: f[k][...] for k in f})
        for other in outputs[1:]:
            self.assertEqual(outputs[0].keys(), other.keys())
            for key in outputs[0]:
                np.testing.assert_array_equal(outputs[0][key], other[key], err_msg=key)

    def test_mapped_and_hdf5_reads_agree_exactly(self):
        # h5py writes contiguous f32 datasets, which are mapped from the file; a chunked copy goes
        # through HDF5's reader. Same bits out; a NaN is named the same way by both.
        layers = planted_dump(np.random.default_rng(5), batch=2, heads=4, kv_heads=2)
        path, _ = self.write(layers)
        chunked, poisoned, poisoned_chunked = (self.path(n) for n in ("c.h5", "p.h5", "pc.h5"))
        with h5py.File(path) as src:
            for target, chunks, poison in ((chunked, True, False), (poisoned, None, True),
                                           (poisoned_chunked, True, True)):
                with h5py.File(target, "w") as dst:
                    for key, value in src.attrs.items():
                        dst.attrs[key] = value
                    for name in src:
                        data = src[name][...]
                        if poison and name in ("blocks.1.attn.hook_q", "blocks.1.attn.hook_rot_q"):
                            data[1, 3, 2, 5] = np.nan
                        dst.create_dataset(name, data=data, chunks=chunks)
            self.assertIsNone(src["blocks.0.attn.hook_q"].chunks)
        outputs = []
        for source in (path, chunked):
            out = self.path("heads.h5")
            run("find-positional-heads", source, "--from", "qk", "-o", out, "-q", "--force", check=0)
            with h5py.File(out) as f:
                outputs.append({k: f[k][...] for k in f})
        self.assertEqual(outputs[0].keys(), outputs[1].keys())
        for key in outputs[0]:
            np.testing.assert_array_equal(outputs[0][key], outputs[1][key], err_msg=key)
        errors = []
        for source in (poisoned, poisoned_chunked):
            r = run("find-positional-heads", source, "--from", "qk", "-q", check=1)
            errors.append(r.stderr.replace(source, "FILE"))
        self.assertEqual(errors[0], errors[1])
        self.assertIn("NaN at batch 1, pos 3, head 2, dim 5", errors[0])

    def test_scale_defaults_to_the_dumps_attn_scale(self):
        layers = planted_dump(np.random.default_rng(2))
        path, stored = self.write(layers, extra_attrs={"attn_scale": 1.0})
        unscaled = self.numpy_heads(stored, 2, 4, from_qk=True, scale=1.0)
        by_sqrt = self.numpy_heads(stored, 2, 4, from_qk=True, scale=1 / 4)
        self.assertNotAlmostEqual(unscaled[2]["mass"], by_sqrt[2]["mass"], delta=1e-3)  # it matters
        got = parse_tsv(run("find-positional-heads", path, "--from", "qk", "-q", check=0).stdout)
        self.assertRowsMatch(got, unscaled)
        forced = parse_tsv(run("find-positional-heads", path, "--from", "qk", "--scale", "sqrt", "-q",
                               check=0).stdout)
        self.assertRowsMatch(forced, by_sqrt)
        out = self.path("heads.h5")
        run("find-positional-heads", path, "--from", "qk", "-o", out, "-q", check=0)
        with h5py.File(out) as f:
            self.assertEqual(f.attrs["attn_scale"], 1.0)
        with h5py.File(path, "r+") as f:
            f.attrs["attn_scale"] = -1.0
        self.assertOneLineError(run("find-positional-heads", path, "--from", "qk"), 1, "attn_scale")

    def test_pre_rope_only_is_rotated_with_the_schedule(self):
        layers = planted_dump(np.random.default_rng(3))
        pre = [{k: v for k, v in L.items() if k in ("hook_q", "hook_k")} for L in layers]
        path, _ = self.write(pre, name="pre.h5")
        full, stored = self.write(layers, name="full.h5")
        got = parse_tsv(run("find-positional-heads", path, "--from", "qk", "-q", check=0).stdout)
        self.assertRowsMatch(got, self.numpy_heads(stored, 2, 4, from_qk=True, scale=1 / 4), tol=5e-4)
        # without theta the rotation is unknown: a usage error naming --theta
        with h5py.File(path, "r+") as f:
            del f.attrs["rope_theta"]
        r = run("find-positional-heads", path, "--from", "qk")
        self.assertOneLineError(r, 2, "--theta")

    def test_frequency_attribution(self):
        layers = planted_dump(np.random.default_rng(4))
        path, stored = self.write(layers)
        out = self.path("heads.h5")
        r = run("find-positional-heads", path, "-o", out, "-q", check=0)
        rows = parse_tsv(r.stdout)
        with h5py.File(out) as f:
            shares = f["frequency_share"][...]
            offsets = f["offset"][...]
            self.assertEqual([d.label for d in f["frequency_share"].dims], ["layer", "head", "freq"])
        a, b = chunk_pairs(16, "half")
        for row in rows:
            L, h, r_ = row["layer"], row["head"], row["offset"]
            rq, rk = stored[f"blocks.{L}.attn.hook_rot_q"], stored[f"blocks.{L}.attn.hook_rot_k"]
            qi = rq[:, r_:, h, :]
            kj = rk[:, : rq.shape[1] - r_, h // 2, :]
            chunk = (qi[..., a] * kj[..., a] + qi[..., b] * kj[..., b]).sum(axis=(0, 1))
            # shares over absolute contributions: each in [0, 1], summing to 1 (issue 19)
            total = np.abs(chunk).sum()
            np.testing.assert_allclose(shares[L, h], np.abs(chunk) / total, rtol=1e-4, atol=1e-5)
            self.assertAlmostEqual(row["top_freq_share"], (np.abs(chunk[:2]) / total).sum(),
                                   delta=1e-4)
            self.assertTrue(0 <= row["top_freq_share"] <= 1, row)
            self.assertAlmostEqual(shares[L, h].sum(), 1, delta=1e-9)
            self.assertEqual(offsets[L, h], r_)
            if row["positional"]:
                # built from the top 3 of 8 frequencies with equal norms: the top quarter (2)
                # carries about 2/3 of the logit, the top 3 all of it
                self.assertGreater(shares[L, h, :3].sum(), 0.99)
                self.assertAlmostEqual(row["top_freq_share"], 2 / 3, delta=0.05)

    def test_tl_scores_with_exclusions(self):
        layers = planted_dump(np.random.default_rng(5))
        path, stored = self.write(layers)
        for flags in ([], ["--exclude-bos"], ["--exclude-current-token"],
                      ["--exclude-bos", "--exclude-current-token"]):
            with self.subTest(flags=flags):
                got = parse_tsv(run("find-positional-heads", path, "-q", *flags, check=0).stdout)
                want = self.numpy_heads(stored, 2, 4, exclude_bos="--exclude-bos" in flags,
                                        exclude_current_token="--exclude-current-token" in flags)
                self.assertRowsMatch(got, want)

    def test_tl_named_f16_gqa_file_written_by_h5py(self):
        # what a TransformerLens user writes: f[name] = cache[name].numpy(), no attributes
        rng = np.random.default_rng(6)
        layers = planted_dump(rng, heads=8, kv_heads=2, planted=((0, 5, 1), (1, 2, 0)))
        path = self.path("tl.h5")
        with h5py.File(path, "w") as f:
            for L, hooks in enumerate(layers):
                for hook in ("hook_rot_q", "hook_rot_k", "hook_pattern"):
                    f[f"blocks.{L}.attn.{hook}"] = hooks[hook].astype(np.float16)
        got = parse_tsv(run("find-positional-heads", path, "-q", "--from", "qk", check=0).stdout)
        found = sorted((x["layer"], x["head"], x["offset"]) for x in got if x["positional"])
        self.assertEqual(found, [(0, 5, 1), (1, 2, 0)])
        pat = parse_tsv(run("find-positional-heads", path, "-q", check=0).stdout)
        self.assertEqual(sorted((x["layer"], x["head"], x["offset"]) for x in pat if x["positional"]), found)

    def test_json_output_file_and_pipes(self):
        layers = planted_dump(np.random.default_rng(7))
        path, _ = self.write(layers)
        r = run("find-positional-heads", path, "--format", "json", "-q", check=0)
        rows = json.loads(r.stdout)
        self.assertEqual(set(rows[0]), set(COLUMNS))
        tsv = parse_tsv(run("find-positional-heads", path, "-q", check=0).stdout)
        self.assertEqual([x["offset"] for x in rows], [x["offset"] for x in tsv])
        with open(path, "rb") as f:
            piped = run("find-positional-heads", "-", "-o", "-", "-q", stdin=f.read(), text=False)
        self.assertEqual(piped.returncode, 0, piped.stderr)
        out = self.path("piped.h5")
        with open(out, "wb") as f:
            f.write(piped.stdout)
        with h5py.File(out) as f:
            self.assertEqual(list(f["offset"][0]), [x["offset"] for x in tsv[:4]])
            self.assertEqual(list(f["positional"][0]), [int(x["positional"]) for x in tsv[:4]])
            self.assertEqual([d.label for d in f["mass"].dims], ["layer", "head"])
            self.assertIn("find-positional-heads", f.attrs["history"])
            self.assertEqual(f.attrs["from"], "pattern")
        svg, results = pipe(["find-positional-heads", path, "-o", "-", "-q"],
                            ["rope-plot", "-:mass", "-o", "-"])
        self.assertTrue(all(code == 0 for code, _ in results), results)
        self.assertIn(b"<svg", svg)

    def test_plots(self):
        layers = planted_dump(np.random.default_rng(8))
        path, _ = self.write(layers)
        prefix = self.path("fig")
        run("find-positional-heads", path, "--plot", prefix, "-q", check=0)
        made = sorted(os.listdir(self.tmp))
        self.assertEqual([m for m in made if m.startswith("fig")],
                         ["fig-L0H0.svg", "fig-L0H1.svg", "fig-L1H3.svg", "fig-mass.svg"])

    def test_bad_inputs(self):
        rng = np.random.default_rng(9)
        bad = self.path("bad.h5")
        p = rng.random((1, 2, 4, 4)).astype(np.float32)
        cases = [
            ("missing", {"x": np.zeros(2, np.float32)}, [], "no layers found"),
            ("rank", {"blocks.0.attn.hook_pattern": np.zeros((2, 4, 4), np.float32)}, [], "expected rank 4"),
            ("not softmax", {"blocks.0.attn.hook_pattern": p}, [], "sums to"),
            ("square", {"blocks.0.attn.hook_pattern": np.zeros((1, 2, 3, 4), np.float32)}, [], "square"),
            ("int", {"blocks.0.attn.hook_pattern": np.zeros((1, 2, 4, 4), np.int64)}, [], "int"),
            ("kv", {"blocks.0.attn.hook_rot_q": rng.normal(size=(1, 4, 4, 8)).astype(np.float32),
                    "blocks.0.attn.hook_rot_k": rng.normal(size=(1, 4, 3, 8)).astype(np.float32)},
             ["--from", "qk"], "3 kv heads do not divide the 4 query heads"),
            ("qk missing", {"blocks.0.attn.hook_rot_q": rng.normal(size=(1, 4, 4, 8)).astype(np.float32)},
             ["--from", "qk"], "hook_rot_k"),
        ]
        nan = np.tril(np.ones((1, 2, 5, 5), np.float32))
        nan /= nan.sum(axis=-1, keepdims=True)
        nan[0, 1, 3, 2] = np.nan
        cases.append(("nan", {"blocks.0.attn.hook_pattern": nan}, [], "NaN at batch 0, head 1, query 3, key 2"))
        for label, datasets, flags, fragment in cases:
            with self.subTest(label):
                with h5py.File(bad, "w") as f:
                    for k, v in datasets.items():
                        f[k] = v
                r = run("find-positional-heads", bad, "-o", self.path("out.h5"), *flags)
                self.assertOneLineError(r, 1, "find-positional-heads: ", fragment)
                self.assertEqual(r.stdout, "")
                self.assertFalse(os.path.exists(self.path("out.h5")))
        for flags, fragment in ((["--from", "x"], "--from"), (["--epsilon", "2"], "--epsilon"),
                                (["--format", "csv"], "--format"), (["--scale", "log"], "--scale"),
                                (["--layers", "7"], "--layers")):
            with h5py.File(bad, "w") as f:
                f["blocks.0.attn.hook_pattern"] = nan
            self.assertOneLineError(run("find-positional-heads", bad, *flags), 2, fragment)


if __name__ == "__main__":
    unittest.main()
