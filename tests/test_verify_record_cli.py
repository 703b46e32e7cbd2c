"""`verify record PATH [--against BPB] [--json]`: output shapes and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import make_record, make_repo_tree, repo_env
from tools.verify.checks import CHECK_IDS
from tools.verify.cli import main


@pytest.fixture
def root(tmp_path):
    return make_repo_tree(tmp_path)


def run(root, *args):
    return CliRunner().invoke(main, ["record", *map(str, args)], env=repo_env(root))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_passing_record_prints_table_and_exits_0(root):
    folder = make_record(root)
    result = run(root, folder)
    assert result.exit_code == 0, result.output
    assert "verdict: PASSED" in result.stdout
    for check_id in CHECK_IDS:
        assert check_id in result.stdout
    assert "statistics:" in result.stdout


def test_failing_record_exits_1_and_names_the_check(root):
    folder = make_record(root, train_time_ms=180_300)
    result = run(root, folder)
    assert result.exit_code == 1
    assert "FAILED (train_time)" in result.stdout
    assert "180.300 s > cap 180 s" in result.stdout


def test_json_shape(root):
    make_record(root, name="2026-01-01_sota", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    folder = make_record(root, bpbs=(1.5801, 1.5822, 1.5795))
    result = run(root, folder, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"ok", "record", "checks", "stats"}
    assert document["ok"] is True
    assert document["record"] == "records/track_cpu_shakespeare/2026-01-15_synthetic"
    assert [c["id"] for c in document["checks"]] == list(CHECK_IDS)
    assert all(set(c) == {"id", "status", "message"} for c in document["checks"])
    assert all(c["status"] in ("pass", "fail", "warn", "skip") for c in document["checks"])
    stats = document["stats"]
    for key in ("n", "mean", "std", "t", "df", "p", "threshold", "margin", "seeds_needed", "welch"):
        assert key in stats
    assert stats["n"] == 3 and stats["p"] < 0.01


def test_json_failure_exit_1(root):
    result = run(root, make_record(root, seeds=(42, 1337)), "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert {c["id"] for c in document["checks"] if c["status"] == "fail"} == {"min_seeds"}


def test_against_option(root):
    folder = make_record(root, bpbs=(1.5801, 1.5822, 1.5795))
    passing = json.loads(run(root, folder, "--against", "1.6", "--json").stdout)
    assert {c["id"]: c["status"] for c in passing["checks"]}["significance"] == "pass"
    result = run(root, folder, "--against", "1.583")
    assert result.exit_code == 1 and "FAILED (significance)" in result.stdout


@pytest.mark.parametrize("against", ["nan", "inf"])
def test_non_finite_against_exits_2(root, against):
    result = run(root, make_record(root), "--against", against)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --against:")


def test_missing_folder_exits_2_with_one_line(root):
    before = snapshot(root)
    result = run(root, root / "records" / "track_cpu_shakespeare" / "2026-09-09_nothing")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no such record folder" in lines[0]
    assert result.stdout == ""
    assert snapshot(root) == before


def test_folder_outside_records_exits_2(root, tmp_path):
    outside = tmp_path / "loose" / "track_cpu_shakespeare" / "2026-01-15_x"
    outside.mkdir(parents=True)
    before = snapshot(root)
    result = run(root, outside)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"error: {outside}" in lines[0] and "outside the records root" in lines[0]
    assert snapshot(root) == before


def test_not_a_directory_exits_2(root):
    folder = make_record(root)
    result = run(root, folder / "README.md")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "error: " in result.stderr


def test_track_folder_itself_is_bad_usage(root):
    result = run(root, root / "records" / "track_cpu_shakespeare")
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_help_teaches(root):
    result = CliRunner().invoke(main, ["record", "--help"])
    assert result.exit_code == 0
    for fragment in ("--against", "--json", "Exit codes", "Examples", "significance", "claims_match_logs"):
        assert fragment in result.output


def test_console_script_runs_in_a_fresh_process(root):
    folder = make_record(root)
    env = {**os.environ, **repo_env(root)}
    done = subprocess.run([sys.executable, "-m", "tools.verify.cli", "record", str(folder), "--json"],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1], timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
