#!/usr/bin/env python3
"""Checks the library's module layering against lib/ropekit/modules.txt.

Fails (exit 1, one line per violation) on:
  - an #include in lib/ropekit/<module>/ of a module that <module> may not use;
  - a cycle between modules, or a module that names an unknown module;
  - an *_internal.hpp header included from outside its own module (lib/, tools/, data/,
    bench/, tests/fuzz/; unit tests may test internals);
  - an outside library's header (hdf5.h, cblas.h, CLI/, nlohmann/, fmt/, pcre2.h, unicode/,
    sentencepiece_*.h) in a module that neither links that library nor uses a module that does;
  - a source file in lib/ropekit/ outside every module folder, or a folder not in modules.txt.

Usage: check_layering.py [SOURCE_ROOT]   (default: the repository this file is in)
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
# Outside headers and the modules.txt name of the library they belong to.
OUTSIDE = [(re.compile(r"^(hdf5|hdf5_hl|H5[A-Za-z]*)\.h$"), "hdf5"),
           (re.compile(r"^cblas\.h$"), "blas"),
           (re.compile(r"^CLI/"), "cli11"),
           (re.compile(r"^nlohmann/"), "json"),
           (re.compile(r"^fmt/"), "fmt"),
           (re.compile(r"^pcre2\.h$"), "pcre2"),
           (re.compile(r"^unicode/"), "icu"),
           (re.compile(r"^sentencepiece_(processor|trainer)\.h$"), "sentencepiece")]
SOURCE_EXT = (".cpp", ".hpp", ".h", ".cc", ".in")


def read_modules(path):
    """{module: (uses, links)} in file order; raises ValueError on a malformed line."""
    modules = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            match = re.fullmatch(r"([a-z0-9_]+)\s*:([^|]*)\|(.*)", line)
            if not match:
                raise ValueError(f"{path}:{number}: expected 'module : uses | links'")
            modules[match.group(1)] = (match.group(2).split(), match.group(3).split())
    return modules


def find_cycle(modules):
    """A list of modules forming a cycle, or None."""
    state = {}

    def visit(m, trail):
        state[m] = "open"
        for used in modules.get(m, ([], []))[0]:
            if state.get(used) == "open":
                return trail[trail.index(used):] + [used] if used in trail else [m, used]
            if used in modules and used not in state:
                cycle = visit(used, trail + [used])
                if cycle:
                    return cycle
        state[m] = "done"
        return None

    for m in modules:
        if m not in state:
            cycle = visit(m, [m])
            if cycle:
                return cycle
    return None


def reachable(modules, start):
    """start and every module it uses, directly or not."""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen or m not in modules:
            continue
        seen.add(m)
        todo.extend(modules[m][0])
    return seen


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            match = INCLUDE.match(line)
            if match:
                yield number, match.group(1), match.group(2)


def source_files(folder):
    for dirpath, _, names in os.walk(folder):
        for name in sorted(names):
            if name.endswith(SOURCE_EXT):
                yield os.path.join(dirpath, name)


def check_module_file(root, rel, module, modules, problems):
    uses, _ = modules[module]
    closure = reachable(modules, module)
    linked = {lib for m in closure for lib in modules[m][1]}
    for number, kind, target in includes(os.path.join(root, rel)):
        where = f"{rel}:{number}: #include {target}"
        if kind == "<":
            for pattern, lib in OUTSIDE:
                if pattern.search(target) and lib not in linked:
                    problems.append(f"{where}: module {module} does not link {lib} "
                                    f"(lib/ropekit/modules.txt)")
            continue
        parts = target.split("/")
        if parts[0] != "ropekit" or target.endswith("version.hpp"):
            continue
        if len(parts) != 3:
            problems.append(f"{where}: expected ropekit/<module>/<file>")
            continue
        used = parts[1]
        if used not in modules:
            problems.append(f"{where}: no module '{used}' in lib/ropekit/modules.txt")
        elif used != module and used not in uses:
            problems.append(f"{where}: module {module} may not use {used} "
                            f"(lib/ropekit/modules.txt: {module} uses {' '.join(uses) or 'nothing'})")
        elif used != module and parts[2].endswith("_internal.hpp"):
            problems.append(f"{where}: private to module {used}")
        elif not os.path.exists(os.path.join(root, "lib", target)):
            problems.append(f"{where}: no such header")


def check_library(root, modules, problems):
    lib = os.path.join(root, "lib", "ropekit")
    for name in sorted(os.listdir(lib)):
        path = os.path.join(lib, name)
        if os.path.isdir(path):
            if name not in modules:
                problems.append(f"lib/ropekit/{name}/: a folder that lib/ropekit/modules.txt "
                                f"does not list")
                continue
            for file in source_files(path):
                check_module_file(root, os.path.relpath(file, root), name, modules, problems)
        elif name != "modules.txt":
            problems.append(f"lib/ropekit/{name}: outside every module folder")
    for module, (uses, _) in modules.items():
        for used in uses:
            if used not in modules:
                problems.append(f"lib/ropekit/modules.txt: {module} uses unknown module {used}")
        if not os.path.isdir(os.path.join(lib, module)):
            problems.append(f"lib/ropekit/modules.txt: module {module} has no folder")
    cycle = find_cycle(modules)
    if cycle:
        problems.append("lib/ropekit/modules.txt: cycle " + " -> ".join(cycle))


def check_clients(root, problems):
    """Programs outside the library include only public headers."""
    for folder in ("tools", "data", "bench", os.path.join("tests", "fuzz")):
        for file in source_files(os.path.join(root, folder)):
            rel = os.path.relpath(file, root)
            for number, kind, target in includes(file):
                if kind == '"' and target.startswith("ropekit/") and \
                        target.endswith("_internal.hpp"):
                    problems.append(f"{rel}:{number}: #include {target}: a private header")


def check(root):
    try:
        modules = read_modules(os.path.join(root, "lib", "ropekit", "modules.txt"))
    except (OSError, ValueError) as e:
        return [str(e)]
    problems = []
    check_library(root, modules, problems)
    check_clients(root, problems)
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    problems = check(root)
    for p in problems:
        print(f"check_layering: {p}", file=sys.stderr)
    if not problems:
        print("check_layering: every include follows lib/ropekit/modules.txt")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
