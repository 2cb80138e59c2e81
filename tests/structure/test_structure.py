"""The structure checks pass on this tree and fail on planted violations (so they can fail)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("ROPEKIT_SOURCE", os.path.join(HERE, "..", ".."))


def run_check(script, root):
    return subprocess.run([sys.executable, os.path.join(HERE, script), root],
                          capture_output=True, text=True, timeout=120)


class PlantedTree(unittest.TestCase):
    """A copy of lib/ and tools/ to plant violations in."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="ropekit-structure-")
        self.addCleanup(shutil.rmtree, self.root)
        for folder in ("lib", "tools"):
            shutil.copytree(os.path.join(ROOT, folder), os.path.join(self.root, folder))

    def append(self, rel, text):
        with open(os.path.join(self.root, rel), "a", encoding="utf-8") as f:
            f.write(text)

    def assert_fails(self, script, *fragments):
        result = run_check(script, self.root)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)


class LayeringTest(PlantedTree):
    def test_this_tree_follows_the_layering(self):
        result = run_check("check_layering.py", ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_upward_include_fails(self):
        self.append("lib/ropekit/core/error.cpp", '#include "ropekit/model/llama_model.hpp"\n')
        self.assert_fails("check_layering.py",
                          "lib/ropekit/core/error.cpp:", "module core may not use model")

    def test_sideways_include_fails(self):
        self.append("lib/ropekit/formats/gguf.cpp", '#include "ropekit/rope/hf_rope.hpp"\n')
        self.assert_fails("check_layering.py", "module formats may not use rope")

    def test_cycle_fails(self):
        path = os.path.join(self.root, "lib", "ropekit", "modules.txt")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("\nrope        : core ", "\nrope        : core verify "))
        self.assert_fails("check_layering.py", "cycle")

    def test_private_header_from_a_tool_fails(self):
        self.append("tools/rope-verify.cpp", '#include "ropekit/verify/checks_internal.hpp"\n')
        self.assert_fails("check_layering.py", "tools/rope-verify.cpp:", "a private header")

    def test_private_header_from_another_module_fails(self):
        self.append("lib/ropekit/plot/svg_plot.cpp",
                    '#include "ropekit/hdf5/h5_datatypes_internal.hpp"\n')
        self.assert_fails("check_layering.py", "private to module hdf5")

    def test_outside_library_not_linked_fails(self):
        self.append("lib/ropekit/rope/rope.cpp", "#include <hdf5.h>\n")
        self.assert_fails("check_layering.py", "module rope does not link hdf5")

    def test_text_libraries_only_in_the_tokenize_module(self):
        self.append("lib/ropekit/formats/gguf.cpp", "#include <pcre2.h>\n#include <unicode/uchar.h>\n"
                    "#include <sentencepiece_processor.h>\n")
        self.assert_fails("check_layering.py", "module formats does not link pcre2",
                          "module formats does not link icu",
                          "module formats does not link sentencepiece")

    def test_file_outside_the_modules_fails(self):
        self.append("lib/ropekit/stray.cpp", "int stray;\n")
        self.assert_fails("check_layering.py", "lib/ropekit/stray.cpp: outside every module")


class FunctionLengthTest(PlantedTree):
    def test_this_tree_has_no_long_function(self):
        result = run_check("check_function_length.py", ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_long_function_fails(self):
        body = "".join(f"    x += {i};\n" for i in range(85))
        self.append("lib/ropekit/core/error.cpp",
                    f"\nint planted_long_function(int x) {{\n{body}    return x;\n}}\n")
        self.assert_fails("check_function_length.py", "planted_long_function runs 88 lines")

    def test_eighty_lines_pass(self):
        body = "".join(f"    x += {i};\n" for i in range(77))
        self.append("lib/ropekit/core/error.cpp",
                    f"\nint planted_function(int x) {{\n{body}    return x;\n}}\n")
        result = run_check("check_function_length.py", self.root)
        self.assertNotIn("planted_function", result.stderr)


class TypeNamesTest(PlantedTree):
    def test_this_tree_defines_each_type_once(self):
        result = run_check("check_type_names.py", ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_a_second_definition_in_another_file_fails(self):
        self.append("lib/ropekit/core/error.hpp",
                    "\nnamespace ropekit {\nstruct Schedule {\n    int other;\n};\n}\n")
        self.assert_fails("check_type_names.py", "ropekit::Schedule is defined in",
                          "lib/ropekit/core/error.hpp:", "lib/ropekit/rope/rope.hpp:")

    def test_types_without_linkage_pass(self):
        local = ("\nnamespace ropekit {\nnamespace {\nstruct Schedule {};\n}  // namespace\n"
                 "void f() {\n    struct Schedule {};\n}\n}  // namespace ropekit\n")
        self.append("lib/ropekit/core/error.cpp", local)
        result = run_check("check_type_names.py", self.root)
        self.assertEqual(result.returncode, 0, result.stderr)


class FirstCommandTest(unittest.TestCase):
    """A minimal Debian 12 has no make: the README says the one line to run before its commands."""

    def test_prerequisite_line_right_above_the_two_commands(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        block = text.split("## Two commands", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
        lines = block.splitlines()
        self.assertEqual(lines[0], "apt-get update && apt-get install -y make")
        self.assertTrue(lines[1].startswith("make demo"), lines)
        self.assertTrue(lines[2].startswith("make test"), lines)

    def test_install_deps_brings_what_npm_and_the_tests_need(self):
        # --no-install-recommends leaves ca-certificates out, and npm cannot reach the registry
        # without it; python3 runs the end-to-end tests, chromium (with a font) opens the demo page.
        with open(os.path.join(ROOT, "scripts", "install-deps"), encoding="utf-8") as f:
            listed = f.read().split('packages="', 1)[1].split('"', 1)[0].split()
        for package in ("ca-certificates", "python3", "cmake", "chromium", "fonts-dejavu-core"):
            self.assertIn(package, listed)


if __name__ == "__main__":
    unittest.main()
