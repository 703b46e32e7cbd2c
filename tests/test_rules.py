"""tools.records.rules: each numeric rule of a track in one function, with the cases where it must fail."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools.records import rules

REPO = Path(__file__).resolve().parent.parent


def test_the_artifact_cap_is_exact_equal_passes_one_more_fails():
    assert rules.artifact_cap_problem(16_000_000, 16_000_000, "x") is None
    assert rules.artifact_cap_problem(16_000_001, 16_000_000, "x") == "x: 16,000,001 bytes > cap 16,000,000 (over by 1)"


def test_submission_bytes_counts_model_code_and_every_other_shipped_file():
    assert rules.submission_bytes(10, 3) == 13
    assert rules.submission_bytes(10, 3, extra_bytes=7) == 20


def test_counted_files_leaves_out_only_script_logs_artifacts_docs_and_symlinks():
    files = ["train_gpt.py", "README.md", "submission.json", "train_seed1.log", "final_model_seed1.ptz",
             "tokenizer.model", "tables/cache.bin", "link", "verification.json"]
    counted = rules.counted_files(files, script="train_gpt.py", logs=["train_seed1.log"],
                                  artifacts=["final_model_seed1.ptz"], symlinks=["link"])
    assert counted == ["tokenizer.model", "tables/cache.bin"]


@pytest.mark.parametrize("value_ms,grace_s,expected", [
    (180_000, 0.0, "pass"), (180_001, 0.0, "fail"), (180_300, 0.5, "warn"), (180_500, 0.5, "warn"),
    (180_501, 0.5, "fail"),
])
def test_time_caps_pass_warn_within_the_grace_and_fail_beyond(value_ms, grace_s, expected):
    assert rules.time_cap_verdict(value_ms, 180, grace_s) == expected


def _number_literals(path: Path) -> set[int]:
    return {node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
            and isinstance(node.value, int) and not isinstance(node.value, bool)}


def test_no_other_module_of_the_judge_writes_the_caps_down_again():
    """One rule, one place: the cap numbers appear as literals only in tools/records/rules.py (a track's own cap
    comes from tracks.toml)."""
    caps = {rules.MAX_FILE_BYTES, rules.DEFAULT_ARTIFACT_CAP_BYTES}
    offenders = [str(path.relative_to(REPO)) for path in sorted((REPO / "tools").rglob("*.py"))
                 if path.name != "rules.py" and _number_literals(path) & caps]
    assert offenders == []


def test_the_one_table_printer_pads_aligns_and_leaves_a_free_text_column_alone():
    from tools.text_table import format_table

    rows = [("class", "ids", "what"), ("ws", "1,024", "whitespace pieces"), ("byte", "3", "x")]
    assert format_table(rows, right=(1,), loose=(2,), indent="  ") == [
        "  class    ids  what", "  ws     1,024  whitespace pieces", "  byte       3  x"]
