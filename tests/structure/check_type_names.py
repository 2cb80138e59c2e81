#!/usr/bin/env python3
"""Fails when two files define a class, struct, union or enum of the same qualified name outside
an anonymous namespace, in the code linked into one program (lib/ with tests/unit/).

Two such definitions that differ break C++'s one-definition rule: the linker does not notice,
and which one a translation unit sees depends on its includes (ropekit::HeadResult was defined
twice, differently, in analysis/key_construction.hpp and analysis/positional_heads.hpp). Types in
an anonymous namespace, or local to a function or class, have no linkage and are left alone.

Usage: check_type_names.py [SOURCE_ROOT]
"""
import os
import re
import sys

FOLDERS = ("lib", "tests/unit")
# Comments, then string and character literals: their braces and words are not code.
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
LITERAL = re.compile(r'R"(?P<delim>[^(\s]*)\(.*?\)(?P=delim)"|"(?:\\.|[^"\\\n])*"|'
                     r"'(?:\\.|[^'\\\n])*'", re.S)
NAMESPACE = re.compile(r"\bnamespace\s*([A-Za-z_][\w:]*)?\s*$")
TYPE = re.compile(r"(?:^|[\s;>])(?:class|struct|union|enum(?:\s+class|\s+struct)?)\s+"
                  r"(?:alignas\([^)]*\)\s*)?([A-Za-z_][\w:]*)\s*(?:final\s*)?(?::[^{]*)?$")


def blank(match):
    """The match with everything but newlines turned into spaces (line numbers survive)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def definitions(text):
    """(qualified name, line) of every type defined at namespace scope, not anonymous."""
    code = LITERAL.sub(blank, COMMENT.sub(blank, text))
    code = re.sub(r"^\s*#[^\n]*", blank, code, flags=re.M)  # preprocessor lines
    scopes = []  # one entry per open brace: a namespace name, None (anonymous) or "{" (other)
    start = 0  # where the statement before the next brace began
    for match in re.finditer(r"[{};]", code):
        head = code[start:match.start()].strip()
        start = match.end()
        if match.group(0) == ";":
            continue
        if match.group(0) == "}":
            if scopes:
                scopes.pop()
            continue
        namespace = NAMESPACE.search(head)
        if namespace:
            scopes.append(namespace.group(1))
            continue
        kind = TYPE.search(head)
        if kind and all(s not in (None, "{") for s in scopes) and "<" not in kind.group(1):
            line = code.count("\n", 0, match.start()) + 1
            yield "::".join(scopes + [kind.group(1)]), line
        scopes.append("{")


def check(root):
    seen = {}
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in sorted(names):
                if not name.endswith((".cpp", ".hpp")):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for qualified, line in definitions(text):
                    seen.setdefault(qualified, []).append(f"{os.path.relpath(path, root)}:{line}")
    failures = 0
    for qualified, places in sorted(seen.items()):
        files = {place.rsplit(":", 1)[0] for place in places}
        if len(files) > 1:
            print(f"check_type_names: {qualified} is defined in {' and '.join(places)} (one "
                  f"definition rule: give each type a name that says what it is)", file=sys.stderr)
            failures += 1
    return failures


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    failures = check(root)
    if failures:
        return 1
    print("check_type_names: every type name at namespace scope is defined in one file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
