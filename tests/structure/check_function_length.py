#!/usr/bin/env python3
"""Fails on any function in lib/ or tools/ longer than 80 lines, except the flat tables named in
FLAT_TABLES below (data written out as code: splitting them would not make them easier to read).

A function is a definition at namespace scope as clang-format lays this project out: its
signature starts in column 0 and its body closes with '}' in column 0; its length counts from
the signature's first line to the closing brace.

Usage: check_function_length.py [SOURCE_ROOT] [--list]   (--list prints every function's length)
"""
import os
import re
import sys

LIMIT = 80
FOLDERS = ("lib", "tools")
# "file:function": why it may be longer.
FLAT_TABLES = {}
NOT_A_FUNCTION = re.compile(r"^(namespace|class|struct|enum|union|using|typedef|extern|static_assert|"
                            r"template\s*<[^>]*>\s*$|#|//|/\*|\*|}|\)|{)")
NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_:~]*(?:operator\S*)?)\s*\(")


def functions(path):
    """(name, first line, length) of each function defined in column 0."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line or line[0].isspace() or NOT_A_FUNCTION.match(line) or "(" not in line:
            i += 1
            continue
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith("{") and \
                not lines[j].rstrip().endswith(";") and j - i < 12:
            j += 1
        if j >= len(lines) or not lines[j].rstrip().endswith("{") or "=" in line.split("(")[0]:
            i += 1
            continue
        end = j
        while end < len(lines) and not lines[end].startswith("}"):
            end += 1
        match = NAME.search(line)
        yield (match.group(1) if match else line.strip()), i + 1, end - i + 1
        i = end + 1


def check(root):
    too_long, table = [], []
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in sorted(names):
                if not name.endswith((".cpp", ".hpp")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                for function, line, length in functions(path):
                    table.append((length, f"{rel}:{line}", function))
                    if length > LIMIT and f"{rel}:{function}" not in FLAT_TABLES:
                        too_long.append(f"{rel}:{line}: {function} runs {length} lines "
                                        f"(at most {LIMIT}; split it into named steps)")
    return too_long, sorted(table, reverse=True)


def main():
    args = [a for a in sys.argv[1:] if a != "--list"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    too_long, table = check(root)
    if "--list" in sys.argv:
        for length, where, function in table:
            print(f"{length:5d}  {where}  {function}")
        return 0
    for problem in too_long:
        print(f"check_function_length: {problem}", file=sys.stderr)
    if not too_long:
        print(f"check_function_length: every function in lib/ and tools/ is at most {LIMIT} lines "
              f"(flat tables excepted: {len(FLAT_TABLES)})")
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())
