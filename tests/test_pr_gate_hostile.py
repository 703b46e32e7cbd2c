"""The PR gate against hostile pull requests (issue 10, part 4): each attack is written first and must fail with a
message naming what it did. The judging stages are stubbed (the scope is what is under attack here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools.verify.pr.gate import gate_pull_request
from tools.verify.pr.scope import changes_between_paths

RECORD = "records/track_x/2026-01-01_base"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "records" / "track_x").mkdir(parents=True)
    (root / "records" / "tracks.toml").write_text("# tracks\n")
    (root / "README.md").write_text("# repo\n")
    folder = root / RECORD
    folder.mkdir()
    for name in ("README.md", "submission.json", "train_gpt.py"):
        (folder / name).write_text(name)
    for seed in (1, 2, 3):
        (folder / f"train_seed{seed}.log").write_text(f"a log of seed {seed}\n")
    _commit(root, "main")
    _git(root, "checkout", "-q", "-b", "pr")
    return root


def _gate(root: Path):
    return gate_pull_request(root, "main", "HEAD", stages={})


def test_renaming_an_existing_records_log_to_a_generated_name_fails_naming_the_record(repo):
    _git(repo, "mv", f"{RECORD}/train_seed3.log", "records/track_x/progress.png")
    _commit(repo, "hide a seed")
    report = _gate(repo)
    assert not report.ok
    messages = [problem.message for problem in report.scope.problems]
    assert any(RECORD in message and "renames" in message for message in messages), messages


def test_deleting_a_file_of_an_existing_record_fails(repo):
    (repo / RECORD / "train_seed3.log").unlink()
    _commit(repo, "drop a seed")
    report = _gate(repo)
    assert any("deletes" in problem.message and RECORD in problem.message for problem in report.scope.problems)


def test_a_file_name_with_a_newline_is_read_whole_and_is_a_core_change(repo):
    (repo / "notes\nsee: below").write_text("hi")
    loosened = repo / "records" / "tracks.toml"
    loosened.write_text("# loosened\n")
    _commit(repo, "odd name")
    changes = changes_between_paths(repo, "main", "HEAD")
    assert sorted(change.path for change in changes) == ["notes\nsee: below", "records/tracks.toml"]
    report = _gate(repo)
    assert "records/tracks.toml" in report.scope.core_changes and "notes\nsee: below" in report.scope.core_changes


def test_a_record_whose_logs_copy_an_existing_records_fails_naming_it(repo):
    shutil.copytree(repo / RECORD, repo / "records" / "track_x" / "2026-01-02_copy")
    _commit(repo, "a copy")
    report = _gate(repo)
    assert not report.ok
    messages = [problem.message for problem in report.scope.problems]
    assert any("byte copy" in message and RECORD in message for message in messages), messages


def test_a_docs_only_pull_request_is_no_record_to_judge_and_passes(repo):
    (repo / "README.md").write_text("# better docs\n")
    _commit(repo, "docs")
    report = _gate(repo)
    assert report.ok and report.record is None
    assert report.verdict == "no record to judge"
    assert "README.md" in report.scope.core_changes  # still listed for a maintainer
    assert "no record to judge" in report.markdown()


@pytest.mark.parametrize("path", ["records/track_x/2026-01-02_new/verification.json",  # with a new record
                                  "records/track_x/2026-01-02_new/Verification.JSON",  # case changes nothing
                                  "docs/verification.json/notes.md",  # a folder of that name, outside records/
                                  f"{RECORD}/verification.json"])  # beside an existing record's files
def test_any_verification_json_in_a_pull_request_fails_naming_it(repo, path):
    """Evidence is the judge's alone (tools.verify.evidence.forged_evidence_paths): a pull request may not add one
    anywhere, under any case, even as a folder name."""
    (repo / "records" / "track_x" / "2026-01-02_new").mkdir()
    (repo / "records" / "track_x" / "2026-01-02_new" / "README.md").write_text("new\n")
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("{}")
    _commit(repo, "evidence")
    report = _gate(repo)
    assert not report.ok
    assert any(p.id == "judge_only_file" and path in p.message for p in report.scope.problems), report.scope.problems


def test_deleting_an_existing_records_evidence_fails_naming_it(repo):
    evidence = f"{RECORD}/verification.json"
    _git(repo, "checkout", "-q", "main")
    (repo / evidence).write_text("{}")
    _commit(repo, "the judge's evidence")
    _git(repo, "checkout", "-q", "-B", "pr")
    (repo / evidence).unlink()
    _commit(repo, "erase it")
    messages = [p.message for p in _gate(repo).scope.problems]
    assert any(evidence in m and "only the judge writes" in m for m in messages), messages
