"""`submit record FOLDER`: judge, accept as SOTA / non-record, or reject without changing anything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import make_record, make_repo_tree, repo_env
from tools.submit.accept import submit_record
from tools.submit.cli import main

TRACK = "track_cpu_shakespeare"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    root = make_repo_tree(tmp_path)
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    # Never the developer's store, even if a test forgets --no-track.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return root


def submit(*args: str):
    return CliRunner().invoke(main, ["record", *args, "--no-track"], catch_exceptions=False)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the repository tree, for "nothing changed" assertions."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def chain_rows(board: str) -> list[str]:
    """The record column of the SOTA chain table(s)."""
    rows = [line for line in board.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    return [row.split("|")[3].strip() for row in rows]


def test_first_passing_record_becomes_sota_and_enters_the_leaderboard(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.51, 1.49))
    result = submit(str(folder))
    assert result.exit_code == 0, result.output
    assert "ACCEPTED as the new SOTA" in result.output
    board = (repo / "leaderboard.md").read_text()
    assert chain_rows(board) == ["[2026-01-10\\_base](records/track_cpu_shakespeare/2026-01-10_base/)"]
    assert "1.50000 ± 0.01000" in board
    assert (repo / "records" / TRACK / "progress.png").read_bytes().startswith(b"\x89PNG")


def test_significantly_better_record_is_the_new_sota_and_both_rows_stay(repo):
    first = make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.51, 1.49))
    assert submit(str(first)).exit_code == 0
    second = make_record(repo, name="2026-01-20_better", date="2026-01-20", bpbs=(1.40, 1.401, 1.399))
    result = submit(str(second), "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert outcome["verdict"] == "record"
    assert outcome["report"]["stats"]["p"] < 0.01
    assert "+| 2 | 2026-01-20 |" in outcome["leaderboard"]["diff"]
    board = (repo / "leaderboard.md").read_text()
    assert [row.split("]")[0] for row in chain_rows(board)] == ["[2026-01-10\\_base", "[2026-01-20\\_better"]
    assert "Current SOTA: [2026-01-20\\_better]" in board


def test_passing_but_not_significant_is_a_non_record_entry(repo):
    make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.501, 1.499))
    same = make_record(repo, name="2026-01-20_same", date="2026-01-20", bpbs=(1.499, 1.50, 1.498))
    outcome = submit_record(same, track=False)
    assert (outcome.verdict, outcome.exit_code) == ("non-record", 0)
    assert "p=" in outcome.reason
    board = (repo / "leaderboard.md").read_text()
    non_record_part = board.split("Non-record entries")[1].split("## ")[0]
    assert "2026-01-20\\_same" in non_record_part
    assert all("same" not in row for row in chain_rows(board))


def test_failing_record_exits_1_and_changes_nothing(repo):
    good = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    assert submit(str(good)).exit_code == 0
    late = make_record(repo, name="2026-01-20_late", date="2026-01-20", train_time_ms=180_300, bpbs=(1.2, 1.21, 1.19))
    before = snapshot(repo)
    result = submit(str(late))
    assert result.exit_code == 1
    assert "REJECTED" in result.output
    assert re.search(r"train_time +FAIL +train_seed42.log: train_time 180.300 s > cap 180 s", result.output)
    assert snapshot(repo) == before


def test_malformed_submission_json_is_rejected_with_the_schema_check(repo):
    broken = make_record(repo, name="2026-01-10_broken", date="2026-01-10", submission_text="{not json")
    before = snapshot(repo)
    result = submit(str(broken))
    assert result.exit_code == 1
    assert re.search(r"schema +FAIL", result.output)
    assert snapshot(repo) == before


def test_dry_run_shows_verdict_and_diff_and_writes_nothing(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    before = snapshot(repo)
    result = submit(str(folder), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "[dry run]" in result.output
    assert "leaderboard.md would change" in result.output
    assert "+| 1 | 2026-01-10 |" in result.output
    assert snapshot(repo) == before
    assert not (repo / "leaderboard.md").exists()


def test_missing_folder_and_folder_outside_records_exit_2_with_one_line(repo, tmp_path):
    before = snapshot(repo)
    result = CliRunner().invoke(main, ["record", str(repo / "records" / TRACK / "nope"), "--no-track"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {repo / 'records' / TRACK / 'nope'}: no such record folder"]
    outside = tmp_path / "elsewhere" / TRACK / "2026-01-10_x"
    outside.mkdir(parents=True)
    result = CliRunner().invoke(main, ["record", str(outside), "--no-track"])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "outside the records root" in result.stderr
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    "args, where",
    [
        (["--from-logs", "a.txt"], "error: --track: required with --from-logs"),
        (["a", "b"], "error: submit record: one record folder expected, got 2 arguments"),
        (["x", "--name", "n"], "error: --name: only with --from-logs or --from-mlflow"),
        (["--from-logs", "--from-mlflow", "a"], "error: --from-logs/--from-mlflow: choose one"),
        ([], "error: submit record: give a record folder"),
    ],
)
def test_bad_usage_exits_2_with_one_line(repo, args, where):
    result = CliRunner().invoke(main, ["record", *args, "--no-track"])
    assert result.exit_code == 2
    assert result.stderr.startswith(where)
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy deprecations inside MLflow
def test_tracking_failure_is_a_warning_not_a_lost_verdict(repo, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker / 'mlflow.db'}")
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    result = CliRunner().invoke(main, ["record", str(folder)])
    assert result.exit_code == 0, result.output
    assert "ACCEPTED" in result.stdout
    assert result.stderr.startswith("warning: tracking: verdict not recorded in MLflow")
    assert (repo / "leaderboard.md").is_file()


def test_hidden_folders_are_never_records(repo):
    staging = make_record(repo, name=".staging-abc", date="2026-01-10")
    result = submit(str(staging))
    assert result.exit_code == 2
    assert "a hidden folder is never a record" in result.stderr
    assert not (repo / "leaderboard.md").exists()


def test_record_on_an_unranked_track_is_a_non_record_entry(repo):
    folder = make_record(repo, track="track_non_record_16mb", name="2026-01-10_long", date="2026-01-10",
                         seeds=(1,), bpbs=(1.2,))  # fmt: skip
    outcome = submit_record(folder, track=False)
    assert (outcome.verdict, outcome.exit_code) == ("non-record", 0)
    assert outcome.reason == "unranked track track_non_record_16mb"
    assert "2026-01-10\\_long" in (repo / "leaderboard.md").read_text().split("(`track_non_record_16mb`)")[1]
