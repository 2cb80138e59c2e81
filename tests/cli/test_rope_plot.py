"""rope-plot and the SVG module, end to end: real files written by h5py, the SVG parsed as XML
and rendered to PNG by rsvg-convert (an independent renderer)."""
import os
import shutil
import struct
import subprocess
import unittest
import xml.etree.ElementTree as ET

import h5py
import numpy as np

from ropekit_test import TempDirTest, run

SVG = "{http://www.w3.org/2000/svg}"


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def cells(root):
    return [e for e in root.iter(SVG + "rect") if e.get("class") == "cell"]


class RopePlot(TempDirTest):
    def setUp(self):
        super().setUp()
        self.h5 = self.path("norms.h5")
        rng = np.random.default_rng(1)
        self.q = np.exp(rng.normal(size=(3, 4, 16))).astype(np.float32)
        self.q[1, 2, 0] = 100.0  # the largest value: layer 1, head 2, frequency 0
        with h5py.File(self.h5, "w") as f:
            d = f.create_dataset("q_norms", data=self.q)
            for i, n in enumerate(["layer", "head", "freq"]):
                d.dims[i].label = n
            d.attrs["units"] = "activation units"
            m = f.create_dataset("layer_q_norms", data=self.q.mean(axis=1))
            m.dims[0].label = "layer"
            m.dims[1].label = "freq"
            a = f.create_dataset("activation", data=np.cos(np.arange(40) * 0.3))
            a.dims[0].label = "offset"
            a.attrs["units"] = "logit"
            o = f.create_dataset("offset", data=np.arange(40) * 2)
            o.attrs["units"] = "tokens"
            f.create_dataset("cube4", data=np.zeros((2, 2, 2, 2), np.float32))
            f.create_dataset("empty", data=np.zeros((0, 3), np.float32))
            f.create_dataset("with_nan", data=np.array([1.0, np.nan, 3.0, np.inf, 5.0]))

    def plot(self, target, *args, code=0):
        out = self.path("fig.svg")
        r = run("rope-plot", target, "-o", out, "--force", *args)
        self.assertEqual(r.returncode, code, r.stderr)
        return out

    def render(self, svg):
        png = svg + ".png"
        subprocess.run(["rsvg-convert", svg, "-o", png], check=True, capture_output=True)
        return png_size(png)

    @unittest.skipUnless(shutil.which("rsvg-convert"), "rsvg-convert (librsvg2-bin) missing")
    def test_heatmap_renders_to_a_png_of_the_figure_size(self):
        svg = self.plot(self.h5 + ":layer_q_norms")
        root = ET.parse(svg).getroot()
        self.assertEqual((int(root.get("width")), int(root.get("height"))), (760, 520))
        self.assertEqual(self.render(svg), (760, 520))
        self.assertEqual(len(cells(root)), 3 * 16)

    @unittest.skipUnless(shutil.which("rsvg-convert"), "rsvg-convert (librsvg2-bin) missing")
    def test_line_plot_renders_and_uses_the_coordinate_dataset(self):
        svg = self.plot(self.h5 + ":activation")
        self.assertEqual(self.render(svg), (760, 480))
        root = ET.parse(svg).getroot()
        lines = [e for e in root.iter(SVG + "polyline") if e.get("class") == "line"]
        self.assertEqual(len(lines), 1)
        points = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
        self.assertEqual(len(points), 40)
        texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
        self.assertIn("offset [tokens]", texts)
        self.assertIn("activation [logit]", texts)
        # x comes from `offset` (0..78), so the x tick labels reach 60, not just 39
        self.assertIn("60", texts)

    def test_frequency_goes_on_y_with_the_highest_at_the_top(self):
        svg = self.plot(self.h5 + ":q_norms", "--index", "1")
        root = ET.parse(svg).getroot()
        cs = cells(root)
        self.assertEqual(len(cs), 4 * 16)
        # the brightest cell is head 2 (x), frequency 0 (top row)
        yellow = [c for c in cs if c.get("fill") == "#fde725"]
        self.assertEqual(len(yellow), 1)
        ys = sorted({float(c.get("y")) for c in cs})
        xs = sorted({float(c.get("x")) for c in cs})
        self.assertEqual(len(ys), 16)
        self.assertEqual(len(xs), 4)
        self.assertEqual(float(yellow[0].get("y")), ys[0])
        self.assertEqual(float(yellow[0].get("x")), xs[2])
        # the smallest value of that slice has the darkest colour
        slice_ = self.q[1]
        h, k = np.unravel_index(np.argmin(slice_), slice_.shape)
        at = [c for c in cs if float(c.get("x")) == xs[h] and float(c.get("y")) == ys[k]]
        self.assertEqual(at[0].get("fill"), "#440154")
        texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
        self.assertIn("q_norms [activation units]", texts)

    def test_transpose_and_log(self):
        root = ET.parse(self.plot(self.h5 + ":layer_q_norms", "--transpose", "--log")).getroot()
        ys = {float(c.get("y")) for c in cells(root)}
        self.assertEqual(len(ys), 3)  # layers on y now
        texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
        self.assertTrue(any("log scale" in t for t in texts))

    def test_non_finite_points_are_skipped(self):
        root = ET.parse(self.plot(self.h5 + ":with_nan")).getroot()
        lines = [e for e in root.iter(SVG + "polyline") if e.get("class") == "line"]
        circles = [e for e in root.iter(SVG + "circle") if e.get("class") == "point"]
        # runs [1], [3], [5]: three isolated points, no line through NaN or inf
        self.assertEqual(len(lines), 0)
        self.assertEqual(len(circles), 3)

    def test_stdin_and_stdout(self):
        with open(self.h5, "rb") as f:
            piped = run("rope-plot", "-:activation", "-o", "-", "--quiet", "--title", "t",
                        stdin=f.read(), text=False)
        self.assertEqual(piped.returncode, 0, piped.stderr)
        self.assertEqual(piped.stderr, b"")
        self.assertEqual(ET.fromstring(piped.stdout).tag, SVG + "svg")
        # the same bytes as from the file
        direct = run("rope-plot", self.h5 + ":activation", "-o", "-", "--title", "t", text=False)
        self.assertEqual(piped.stdout, direct.stdout)

    def test_deterministic(self):
        a = open(self.plot(self.h5 + ":layer_q_norms"), "rb").read()
        b = open(self.plot(self.h5 + ":layer_q_norms"), "rb").read()
        self.assertEqual(a, b)

    def test_bad_inputs(self):
        out = self.path("bad.svg")
        r = run("rope-plot", self.h5 + ":q_norms", "-o", out)
        self.assertOneLineError(r, 2, "rope-plot: ", "--index", "layer")
        r = run("rope-plot", self.h5 + ":cube4", "-o", out)
        self.assertOneLineError(r, 2, "4-D")
        r = run("rope-plot", self.h5 + ":nope", "-o", out)
        self.assertOneLineError(r, 1, "nope", "no such dataset")
        r = run("rope-plot", self.h5 + ":empty", "-o", out)
        self.assertOneLineError(r, 1, "empty")
        r = run("rope-plot", self.h5, "-o", out)
        self.assertOneLineError(r, 2, "FILE:DATASET")
        r = run("rope-plot", self.h5 + ":q_norms", "--index", "3", "-o", out)
        self.assertOneLineError(r, 2, "--index")
        r = run("rope-plot", self.h5 + ":activation", "--kind", "pie", "-o", out)
        self.assertOneLineError(r, 2, "--kind")
        self.assertFalse(os.path.exists(out))

    def test_single_dataset_file_needs_no_name(self):
        one = self.path("one.h5")
        with h5py.File(one, "w") as f:
            f.create_dataset("x", data=np.arange(5.0))
        root = ET.parse(self.plot(one)).getroot()
        self.assertEqual(root.tag, SVG + "svg")


class ScalesThatDoNotExaggerate(TempDirTest):
    """--from-zero keeps an almost flat curve flat, and Figure 3's colours start at 0 (issue 19)."""

    def texts(self, svg):
        return ["".join(t.itertext()) for t in ET.parse(svg).getroot().iter(SVG + "text")]

    def test_almost_flat_curve(self):
        path = self.path("flat.h5")
        with h5py.File(path, "w") as f:
            f["logit"] = 20.0462 + 0.0006 * np.sin(np.arange(64) / 10)
        for args, flat in (((), False), (("--from-zero",), True)):
            svg = self.path(f"flat{len(args)}.svg")
            run("rope-plot", path + ":logit", "-o", svg, *args, check=0)
            root = ET.parse(svg).getroot()
            line = next(e for e in root.iter(SVG + "polyline") if e.get("class") == "line")
            ys = [float(p.split(",")[1]) for p in line.get("points").split()]
            spread = (max(ys) - min(ys)) / float(root.get("height"))
            # auto-scaled, 0.003% of the value fills the plot; from 0 it is a flat line
            self.assertEqual(spread < 0.01, flat, spread)
            # and the y ticks say so: 0 .. 20 rather than 20.0462 .. 20.0468
            self.assertEqual(any(t.startswith("20.046") for t in self.texts(svg)), not flat)

    def test_heatmap_colours_from_zero(self):
        path = self.path("h.h5")
        with h5py.File(path, "w") as f:
            f["m"] = 1.9 + np.arange(12.0).reshape(3, 4)
        svg = self.path("h.svg")
        run("rope-plot", path + ":m", "-o", svg, "--from-zero", check=0)
        self.assertIn("0", self.texts(svg))

    def test_freq_norms_figure_3_colour_scale_starts_at_0(self):
        path = self.path("dump.h5")
        rng = np.random.default_rng(2)
        with h5py.File(path, "w") as f:
            f.attrs["rope_theta"] = 10000.0
            for hook in ("hook_q", "hook_k"):
                f[f"blocks.0.attn.{hook}"] = (5 + rng.random((1, 8, 2, 8))).astype(np.float32)
        run("freq-norms", path, "--plot", self.path("fig"), "-q", check=0)
        self.assertIn("0", self.texts(self.path("fig-q-layers.svg")))


if __name__ == "__main__":
    unittest.main()
