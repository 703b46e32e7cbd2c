"""docs/COVERAGE.md and the failure-catalog tests stay in step.

Every row of the catalog has a line in the coverage table, every test the table names exists, every catalog test
is named in the table, and each test `test_<row>_...` is listed in its own row. The tests
themselves live in tests/test_failure_catalog_*.py; they are read here as source (ast), not imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COVERAGE = REPO / "docs" / "COVERAGE.md"
CATALOG_ROWS = ("A1", "A2", "A3", "A4", "A5", "A6", "A7", "B1", "B2", "B3", "C1", "C2", "C3", "C4", "C5",
                "D1", "D2", "D3", "E1", "E2", "E3", "F1", "F2", "F3")
_TEST_NAME = re.compile(r"`(test_[a-z0-9_]+)`")
_ROW = re.compile(r"^\| ([A-F][1-7]) \|")


def catalog_tests() -> set[str]:
    names = set()
    for path in sorted(Path(__file__).parent.glob("test_failure_catalog_*.py")):
        tree = ast.parse(path.read_text())
        names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    return names


def rows_of_the_table(text: str) -> dict[str, list[str]]:
    """{row id: the test names in its line} for the catalog table (the lines starting with `| <row id> |`)."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _ROW.match(line)
        if match:
            rows[match.group(1)] = _TEST_NAME.findall(line)
    return rows


def test_every_row_of_the_catalog_is_in_the_coverage_table():
    rows = rows_of_the_table(COVERAGE.read_text())
    assert sorted(rows) == sorted(CATALOG_ROWS)
    assert all(rows[row] for row in CATALOG_ROWS), [row for row in CATALOG_ROWS if not rows[row]]


def test_tests_named_in_the_coverage_table_exist_and_every_catalog_test_is_named():
    named = set(_TEST_NAME.findall(COVERAGE.read_text()))
    defined = catalog_tests()
    assert named - defined == set(), "named in docs/COVERAGE.md but not defined"
    assert defined - named == set(), "defined but not named in docs/COVERAGE.md"


def test_each_catalog_test_is_listed_under_its_own_row():
    rows = rows_of_the_table(COVERAGE.read_text())
    misplaced = []
    for name in sorted(catalog_tests()):
        row = name.split("_")[1].upper()
        if row not in rows or name not in rows[row]:
            misplaced.append(name)
    assert misplaced == [], "tests named test_<row>_... but not listed in that row of docs/COVERAGE.md"
