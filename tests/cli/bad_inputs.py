"""Reads the bad-input corpus, bad_inputs.tsv (its format is described at its top), into Case
rows. Every mistake in the table is an error naming the file and line, so a row cannot be
silently skipped or half-understood."""
import os
import re
import shlex
from dataclasses import dataclass

from bad_input_fixtures import BUILDERS
from ropekit_test import TOOLS

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_inputs.tsv")
COLUMNS = ("case", "exit", "fixtures", "command", "expected")
PLACEHOLDER = re.compile(r"\{(\w*)\}")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class TableError(ValueError):
    pass


@dataclass
class Case:
    where: str                     # "bad_inputs.tsv:42", for failure messages
    name: str
    code: int
    fixtures: list                 # [(placeholder, builder name)], built in this order
    tool: str
    args: list                     # words after the tool, placeholders not yet filled in
    expected: list                 # fragments of the error line, placeholders not yet filled in
    fsize: int = None              # @fsize=BYTES: RLIMIT_FSIZE for the tool
    as_nobody: bool = False        # @as-nobody: run the tool as uid 65534


def read_table(path=TABLE):
    cases, names = [], set()
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            case = parse_row(f"{os.path.basename(path)}:{number}", line.rstrip("\n"))
            if case.name in names:
                raise TableError(f"{case.where}: case {case.name} appears twice")
            names.add(case.name)
            cases.append(case)
    return cases


def parse_row(where, line):
    cells = line.split("\t")
    if len(cells) != len(COLUMNS):
        raise TableError(f"{where}: expected {len(COLUMNS)} tab-separated columns "
                         f"({', '.join(COLUMNS)}), got {len(cells)}")
    name, code, fixtures, command, expected = (cell.strip() for cell in cells)
    if not NAME.match(name):
        raise TableError(f"{where}: case name {name!r} is not lower_case_with_underscores")
    if code not in ("1", "2"):
        raise TableError(f"{where}: exit code {code!r} is neither 1 (bad data) nor 2 (usage)")
    case = Case(where=where, name=name, code=int(code), fixtures=parse_fixtures(where, fixtures),
                tool="", args=[], expected=split_words(where, expected))
    parse_command(case, split_words(where, command))
    check_placeholders(case)
    return case


def split_words(where, text):
    try:
        return shlex.split(text)
    except ValueError as e:
        raise TableError(f"{where}: {e} in {text!r}") from None


def parse_fixtures(where, text):
    if text == "-":
        return []
    fixtures = []
    for word in text.split():
        placeholder, _, builder = word.partition("=")
        if not NAME.match(placeholder) or placeholder == "tmp" or not builder:
            raise TableError(f"{where}: fixture {word!r} is not NAME=BUILDER")
        if builder not in BUILDERS:
            raise TableError(f"{where}: no builder {builder!r} in bad_input_fixtures.py")
        if placeholder in (p for p, _ in fixtures):
            raise TableError(f"{where}: fixture {placeholder} is defined twice")
        fixtures.append((placeholder, builder))
    return fixtures


def parse_command(case, words):
    while words and words[0].startswith("@"):
        directive = words.pop(0)
        if directive == "@as-nobody":
            case.as_nobody = True
        elif re.fullmatch(r"@fsize=\d+", directive):
            case.fsize = int(directive.split("=")[1])
        else:
            raise TableError(f"{case.where}: unknown directive {directive!r}")
    if not words or words[0] not in TOOLS:
        raise TableError(f"{case.where}: the command must start with a tool ({', '.join(TOOLS)})")
    case.tool, case.args = words[0], words[1:]
    if "<" in case.args and case.args.index("<") != len(case.args) - 2:
        raise TableError(f"{case.where}: '<' must come last, followed by one fixture")


def check_placeholders(case):
    fixtures = {p for p, _ in case.fixtures}
    used = {p for word in case.args + case.expected for p in PLACEHOLDER.findall(word)}
    unknown = used - fixtures - {"tmp"}
    if unknown:
        raise TableError(f"{case.where}: {{{min(unknown)}}} is neither {{tmp}} nor a fixture "
                         f"of this row")
    unused = fixtures - used
    if unused:
        raise TableError(f"{case.where}: fixture(s) {', '.join(sorted(unused))} never used")


def fill_in(word, values):
    """Replaces every {placeholder} in `word` by its path."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], word)
