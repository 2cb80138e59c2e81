"""The page `make demo` ends with (scripts/demo, scripts/demo-report; issue 19, "The report"):
real tables, numbered and captioned figures at a legible size, axes that do not exaggerate, each
claim beside its evidence, and, in Debian's headless Chromium, no console errors and every image
loaded. The page is generated once through the same script `make demo` runs, into
BUILD/test-artefacts/report/ (kept: index.html and screenshot.png are the test's artefacts)."""
import html.parser
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import browser
from ropekit_test import BIN, SOURCE, run

OUT = os.path.join(os.path.abspath(BIN), "test-artefacts", "report")


class PageParser(html.parser.HTMLParser):
    """The parts of the page the tests look at: tables (header and row cell counts, cell text),
    figures (img src, caption text), <pre> blocks, sections' claim and evidence boxes."""

    def __init__(self):
        super().__init__()
        self.tables, self.figures, self.pres, self.sections = [], [], 0, []
        self.stack = []
        self.text = None  # where character data goes

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(tag)
        if tag == "table":
            self.tables.append({"header": [], "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows" if "tbody" in self.stack else "header"].append([])
        elif tag in ("td", "th"):
            rows = self.tables[-1]["rows" if "tbody" in self.stack else "header"]
            rows[-1].append("")
            self.text = ("cell", rows[-1])
        elif tag == "figure" and a.get("class") != "table":
            self.figures.append({"img": [], "caption": "", "img_width": []})
        elif tag == "img":
            self.figures[-1]["img"].append(a["src"]) if self.figures else None
            if self.figures:
                self.figures[-1]["img_width"].append(a.get("width"))
        elif tag == "figcaption" and "table" not in self.stack and self.figures:
            self.text = ("caption", self.figures[-1])
        elif tag == "pre":
            self.pres += 1
        elif tag == "section":
            self.sections.append(set())
        elif tag == "div" and self.sections and a.get("class") in ("claim", "measured"):
            self.sections[-1].add(a["class"])

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass
        if tag in ("td", "th", "figcaption"):
            self.text = None

    def handle_data(self, data):
        if self.text and self.text[0] == "cell":
            self.text[1][-1] += data
        elif self.text:
            self.text[1]["caption"] += data


def parse(text):
    p = PageParser()
    p.feed(text)
    return p


def table_problems(table):
    """Why a table does not read as one: a header row per column, every row as wide."""
    problems = []
    if len(table["header"]) != 1:
        problems.append(f"{len(table['header'])} header rows")
    width = len(table["header"][0]) if table["header"] else 0
    for row in table["rows"]:
        if len(row) != width:
            problems.append(f"a row of {len(row)} cells under {width} headers: {row}")
        if any("\t" in cell for cell in row):
            problems.append(f"tab-separated text in a cell: {row}")
    return problems


def svg_ticks(path, anchor):
    """The numeric tick labels of an SVG figure with the given text-anchor (rope-plot: 'end' =
    the y axis of a line plot, 'start' = a heatmap's colour bar)."""
    with open(path) as f:
        svg = f.read()
    labels = re.findall(rf'<text [^>]*text-anchor="{anchor}"[^>]*>([^<]*)</text>', svg)
    return [float(x) for x in labels if re.fullmatch(r"-?[0-9.]+(e[-+]?[0-9]+)?", x)]


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        shutil.rmtree(OUT, ignore_errors=True)
        os.makedirs(OUT)
        r = subprocess.run(["sh", os.path.join(SOURCE, "scripts", "demo"), os.path.abspath(BIN),
                            OUT], cwd=SOURCE, capture_output=True, text=True, timeout=500)
        if r.returncode != 0:
            raise AssertionError(f"scripts/demo failed: {r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        with open(os.path.join(OUT, "index.html")) as f:
            cls.html = f.read()
        cls.page = parse(cls.html)

    def test_tables_are_real_tables(self):
        self.assertEqual(self.page.pres, 0, "no table pasted into <pre>")
        self.assertGreaterEqual(len(self.page.tables), 5)
        for table in self.page.tables:
            self.assertEqual(table_problems(table), [], table["header"])
        # Numbers are formatted for people: no e-notation, at most 6 significant digits.
        cells = [c for t in self.page.tables for row in t["rows"] for c in row]
        self.assertFalse([c for c in cells if re.search(r"\d[eE][-+]?\d", c)])
        numbers = [re.sub(r"[-.,]", "", m) for c in cells for m in re.findall(r"[-\d.,]*\d", c)]
        self.assertFalse([n for n in numbers if len(n.lstrip("0")) > 6])
        self.assertTrue([n for n in numbers if len(n.lstrip("0")) == 6], "the control: 0.990044")
        # Control: the check sees the old page's fault, a header over the wrong columns.
        broken = parse("<table><thead><tr><th>layer</th><th>head</th></tr></thead><tbody>"
                       "<tr><td>0\t1</td></tr></tbody></table>")
        self.assertEqual(len(table_problems(broken.tables[0])), 2)

    def test_figures_are_numbered_captioned_and_shown_at_natural_size(self):
        figures = self.page.figures
        self.assertGreaterEqual(len(figures), 15)
        for n, figure in enumerate(figures, 1):
            self.assertEqual(len(figure["img"]), 1, figure)
            self.assertTrue(figure["caption"].startswith(f"Figure {n}. "), figure["caption"])
            self.assertGreater(len(figure["caption"]), 40, "the caption says what to see")
            # No width attribute: shown at the SVG's own 760 px, where tick labels are 11 px.
            self.assertEqual(figure["img_width"], [None])
            self.assertTrue(os.path.exists(os.path.join(OUT, figure["img"][0])))
        order = [f["img"][0] for f in figures]
        self.assertEqual(len(set(order)), len(order), "each figure once")
        for prefix in ("fig3", "real-fig3"):
            names = [n for n in order if n.startswith(prefix + "-")]
            for k_name in (n for n in names if "-k-" in n):
                q_name = k_name.replace("-k-", "-q-")
                self.assertLess(order.index(q_name), order.index(k_name), "queries before keys")

    def test_axes_do_not_exaggerate(self):
        # Proposition 3.1's nearly flat curve: y from 0, so it is drawn flat ...
        ticks = svg_ticks(os.path.join(OUT, "prop31-bottom.svg"), "end")
        self.assertEqual(min(ticks), 0)
        # ... control: fitted to the data, the same curve fills the plot (no 0 on the axis).
        fitted = os.path.join(OUT, "prop31-bottom-fitted.svg")
        run("rope-plot", "-q", "--force", os.path.join(OUT, "key-bottom.h5") + ":logit",
            "-o", fitted, check=0)
        self.assertGreater(min(svg_ticks(fitted, "end")), 20)
        os.remove(fitted)
        # Figure 3's colour scales (and the real model's) start at 0.
        names = [n for n in os.listdir(OUT) if re.match(r"(real-)?fig3-.*\.svg$", n)]
        self.assertGreaterEqual(len(names), 8)
        for name in names:
            self.assertEqual(min(svg_ticks(os.path.join(OUT, name), "start")), 0, name)

    def test_each_section_states_the_claim_beside_its_evidence(self):
        self.assertGreaterEqual(len(self.page.sections), 6)
        for section in self.page.sections:
            self.assertEqual(section, {"claim", "measured"})
        summary = self.page.tables[0]
        self.assertEqual(summary["header"][0], ["the paper's claim", "this run", "verdict"])
        # On the demo data every claim holds (each one is also asserted by its tool's tests).
        self.assertEqual([row[2] for row in summary["rows"]], ["holds"] * len(summary["rows"]))
        self.assertNotIn("does not hold", self.html)

    def test_in_chromium(self):
        why = browser.available()
        if why:
            if os.environ.get("CI") == "true":
                self.fail(why)
            self.skipTest(why)
        with browser.Chromium(width=1600) as chromium:
            screenshot = os.path.join(OUT, "screenshot.png")
            visit = chromium.visit("file://" + os.path.join(OUT, "index.html"),
                                   screenshot=screenshot)
            self.assertEqual(visit.errors, [])
            self.assertEqual(len(visit.images), len(self.page.figures))
            for image in visit.images:
                self.assertTrue(image["loaded"], image)
                # At natural size or larger: 11 px tick labels stay at least 11 px on screen.
                self.assertGreaterEqual(image["width"], image["natural_width"], image)
            with open(screenshot, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertGreater(visit.height, 5000)
            # Control: the same checks on a deliberately broken page report each fault.
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "index.html"), "w") as f:
                    f.write('<!doctype html><html><body><img src="missing.svg">'
                            '<object data="gone.svg" type="image/svg+xml"></object>'
                            '<script>console.error("deliberate"); noSuchFunction();</script>'
                            "</body></html>")
                broken = chromium.visit("file://" + os.path.join(tmp, "index.html"))
            text = "\n".join(broken.errors)
            self.assertIn("deliberate", text)
            self.assertIn("noSuchFunction", text)
            self.assertIn("missing.svg", text)
            self.assertEqual([i["loaded"] for i in broken.images], [False, False])


if __name__ == "__main__":
    unittest.main()
