"""docs/FAILURES.md, the failure catalogue, stays in step with the code and the tests.

Each row (`| <id> | what goes wrong | how the judge sees it | caught by | proved by |`) links its checks
(`` `check_id` in [path](../path) ``) and its tests (`` [`tests/file.py::test_name`](../tests/file.py) ``). Checked
here, reading files as text and source (ast), importing nothing: every linked test is defined in the file named;
every check id is defined in the module linked (a string literal, a function or a name assigned there); every
failure id cited in the code or the tests has a row; every catalogue test `test_<id>_...` is linked from its own
row; docs/COVERAGE.md has the same rows; and nothing points at a catalogue outside the repository.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CATALOGUE = DOCS / "FAILURES.md"
# Where failure ids are cited: the code and the tests (their Python files).
CITING = ("tools", "tests", "bench", "data", "train_gpt.py")

_ROW = re.compile(r"^\| ([A-Z][0-9]+) \|(.*)\|\s*$")
_FAILURE_ID = re.compile(r"\b[A-F][1-9]\b")
_CHECK_ENTRY = re.compile(r"^(?P<ids>(?:`\w+`(?:, )?)+)(?: \([^)]*\))? in \[(?P<shown>[^\]]+)\]\(\.\./(?P<target>[^)]+)\)$")
_TEST_ENTRY = re.compile(r"^\[`(?P<file>tests/[\w/]+\.py)::(?P<name>test_\w+)`\]\(\.\./(?P<target>[^)]+)\)$")


def catalogue_rows(text: str | None = None) -> dict[str, list[str]]:
    """{failure id: its cells after the id} for every table row of docs/FAILURES.md, in file order."""
    rows: dict[str, list[str]] = {}
    for line in (text if text is not None else CATALOGUE.read_text(encoding="utf-8")).splitlines():
        match = _ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} has two rows"
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def entries(cell: str) -> list[str]:
    return [entry.strip() for entry in cell.split("<br>") if entry.strip()]


@cache
def defined_names(path: Path) -> frozenset[str]:
    """Every string literal, function or class name and assigned name in a Python file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return frozenset(names)


@cache
def defined_tests(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def python_files() -> list[Path]:
    files: list[Path] = []
    for name in CITING:
        path = REPO / name
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "datasets" not in p.parts)
    return files


def test_every_row_has_its_five_cells_filled():
    rows = catalogue_rows()
    assert rows, "no rows found in docs/FAILURES.md"
    for row, cells in rows.items():
        assert len(cells) == 4 and all(cells), f"{row}: expected what / how / caught by / proved by, got {cells}"


def test_every_linked_test_is_defined_in_the_file_named():
    problems = []
    for row, cells in catalogue_rows().items():
        for entry in entries(cells[3]):
            match = _TEST_ENTRY.match(entry)
            if match is None:
                problems.append(f"{row}: not a test link: {entry}")
                continue
            path = REPO / match["file"]
            if match["target"] != match["file"]:
                problems.append(f"{row}: {match['name']} is shown as {match['file']} but links to {match['target']}")
            elif not path.is_file():
                problems.append(f"{row}: {match['file']} does not exist")
            elif match["name"] not in defined_tests(path):
                problems.append(f"{row}: {match['name']} is not defined in {match['file']}")
    assert problems == []


def test_every_check_id_is_defined_in_the_module_linked():
    problems = []
    for row, cells in catalogue_rows().items():
        for entry in entries(cells[2]):
            match = _CHECK_ENTRY.match(entry)
            if match is None:
                problems.append(f"{row}: not a check entry (`id` in [path](../path)): {entry}")
                continue
            path = REPO / match["target"]
            if match["shown"] != match["target"] or not path.is_file() or path.suffix != ".py":
                problems.append(f"{row}: {match['shown']} -> {match['target']} is not a Python module of the repository")
                continue
            for check_id in re.findall(r"`(\w+)`", match["ids"]):
                if check_id not in defined_names(path):
                    problems.append(f"{row}: `{check_id}` is not defined in {match['target']}")
    assert problems == []


def test_every_failure_id_cited_in_the_code_or_the_tests_has_a_row():
    rows = catalogue_rows()
    cited: dict[str, str] = {}
    for path in python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for failure_id in _FAILURE_ID.findall(line):
                cited.setdefault(failure_id, f"{path.relative_to(REPO)}:{number}")
        for name in defined_tests(path) if path.name.startswith("test_") else ():
            match = re.match(r"test_([a-f][1-9])_", name)
            if match:
                cited.setdefault(match.group(1).upper(), f"{path.relative_to(REPO)}::{name}")
    missing = {failure_id: where for failure_id, where in cited.items() if failure_id not in rows}
    assert missing == {}, "failure ids cited with no row in docs/FAILURES.md (first citation shown)"
    assert cited, "no failure id is cited anywhere: the scan is broken"


def test_every_catalogue_test_is_linked_from_its_own_row():
    rows = catalogue_rows()
    linked = {row: {m["name"] for e in entries(cells[3]) if (m := _TEST_ENTRY.match(e))} for row, cells in rows.items()}
    unlinked = []
    for path in sorted((REPO / "tests").glob("test_failure_catalog_*.py")):
        for name in sorted(defined_tests(path)):
            row = re.match(r"test_([a-z][0-9]+)_", name)
            if row is not None and name not in linked.get(row.group(1).upper(), set()):
                unlinked.append(f"{path.name}::{name}")
    assert unlinked == [], "catalogue tests not linked from their row of docs/FAILURES.md"


def test_coverage_maps_the_same_rows():
    coverage = {match.group(1) for line in (DOCS / "COVERAGE.md").read_text(encoding="utf-8").splitlines()
                if (match := re.match(r"^\| ([A-Z][0-9]+) \|", line))}  # fmt: skip
    assert coverage == set(catalogue_rows())


def test_no_reference_to_a_catalogue_outside_the_repository():
    """The catalogue is docs/FAILURES.md: code and tests name it by that path; docs link it; nothing points outside."""
    problems = []
    for path in python_files():
        if path == Path(__file__).resolve():
            continue  # this checker spells the patterns it looks for
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"(?<![\w/.-])(?:\.\./)?(?:shared/)?FAILURES\.md|\S*shared/FAILURES", text):
            problems.append(f"{path.relative_to(REPO)}: {match.group(0)!r} (write docs/FAILURES.md)")
    for path in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        if "shared/FAILURES" in text or "beside the design notes" in text:
            problems.append(f"{path.relative_to(REPO)}: points at a catalogue outside the repository")
    assert problems == []


def test_the_row_parser_reads_a_row_and_rejects_a_malformed_link():
    text = ("| X1 | a | b | `rescore` in [tools/x.py](../tools/x.py) | "
            "[`tests/test_x.py::test_x1_y`](../tests/test_x.py)<br>[`tests/test_x.py::test_x1_z`](../tests/test_y.py) |\n")  # fmt: skip
    cells = catalogue_rows(text)["X1"]
    assert [bool(_CHECK_ENTRY.match(e)) for e in entries(cells[2])] == [True]
    links = [_TEST_ENTRY.match(e) for e in entries(cells[3])]
    assert [m["name"] for m in links] == ["test_x1_y", "test_x1_z"]
    assert [m["target"] == m["file"] for m in links] == [True, False]
    assert _CHECK_ENTRY.match("`rescore` in tools/x.py") is None
