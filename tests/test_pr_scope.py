"""The pull-request gate's scoping and audit flags, on temporary git repositories."""

from __future__ import annotations

import os
from pathlib import Path

import git
import pytest

from tools.records.model import CheckResult, RecordError
from tools.verify.pr.audit import audit_flags, byte_accounting_diff
from tools.verify.pr.gate import gate_pull_request
from tools.verify.pr.scope import Change, classify_changes

BASELINE = '''import numpy as np


def build_byte_table(pieces):
    return np.array([len(p.replace("\\u2581", " ").encode()) for p in pieces])


def train():
    return 1
'''
EXISTING = "records/track_cpu_shakespeare/2026-01-01_first"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def commit_all(repo: git.Repo, message: str) -> None:
    repo.git.add(A=True)
    repo.index.commit(message)


@pytest.fixture
def repo(tmp_path) -> git.Repo:
    """A repository at its main branch: the baseline script, the tracks, one existing record."""
    repo = git.Repo.init(tmp_path / "repo", initial_branch="main")
    root = Path(repo.working_tree_dir)
    write(root, "train_gpt.py", BASELINE)
    write(root, "records/tracks.toml", "# tracks\n")
    write(root, "leaderboard.md", "# Leaderboard\n")
    for name in ("README.md", "submission.json", "train_gpt.py", "train_seed42.log"):
        write(root, f"{EXISTING}/{name}", f"{name}\n")
    commit_all(repo, "main")
    repo.git.checkout("-b", "pr")
    return repo


def add_record(repo: git.Repo, name: str = "2026-02-02_second", script: str = BASELINE, extra: dict | None = None):
    root = Path(repo.working_tree_dir)
    folder = f"records/track_cpu_shakespeare/{name}"
    files = {"README.md": "r\n", "submission.json": "{}\n", "train_gpt.py": script, "train_seed42.log": "log\n"}
    files.update(extra or {})
    for relative, text in files.items():
        write(root, f"{folder}/{relative}", text)
    return folder


def fake_stages(calls: list):
    def stage(name, status="pass"):
        def run(folder: Path):
            calls.append((name, folder.name))
            return [CheckResult(name.split()[-1], status, f"{name} on {folder.name}")]
        return run
    return {"verify record": stage("verify record"), "verify tokenizer": stage("verify tokenizer")}


def gate(repo, calls, **kwargs):
    return gate_pull_request(Path(repo.working_tree_dir), "main", "HEAD", stages=fake_stages(calls),
                             wanted=kwargs.get("wanted", lambda name, folder, flags: True))


def test_a_pull_request_adding_one_record_is_judged(repo):
    folder = add_record(repo)
    commit_all(repo, "add a record")
    calls = []
    report = gate(repo, calls)
    assert report.record == folder
    assert report.ok, report.markdown()
    assert calls == [("verify record", "2026-02-02_second"), ("verify tokenizer", "2026-02-02_second")]
    assert "✅ passed" in report.markdown()


def test_a_failing_stage_fails_the_gate(repo):
    add_record(repo)
    commit_all(repo, "add a record")
    stages = {"verify record": lambda folder: [CheckResult("claims_match_logs", "fail", "seed 42 differs")]}
    report = gate_pull_request(Path(repo.working_tree_dir), "main", stages=stages, wanted=lambda *a: True)
    assert not report.ok
    assert "claims_match_logs" in report.markdown() and "❌" in report.markdown()


def test_editing_an_existing_record_fails(repo):
    add_record(repo)
    write(Path(repo.working_tree_dir), f"{EXISTING}/submission.json", '{"val_bpb": 0.1}\n')
    commit_all(repo, "edit an old record")
    report = gate(repo, [])
    assert not report.ok
    assert any("edits the existing record" in p.message for p in report.scope.problems)
    assert report.stages == []  # not judged as a record


def test_deleting_an_existing_record_fails(repo):
    add_record(repo)
    Path(repo.working_tree_dir, EXISTING, "train_seed42.log").unlink()
    commit_all(repo, "delete a log")
    report = gate(repo, [])
    assert not report.ok
    assert any("deletes the existing record" in p.message for p in report.scope.problems)


def test_two_records_fail(repo):
    add_record(repo, "2026-02-02_a")
    add_record(repo, "2026-02-02_b")
    commit_all(repo, "two records")
    report = gate(repo, [])
    assert not report.ok
    assert any("adds 2 records" in p.message for p in report.scope.problems)


def test_a_core_change_is_reported_not_judged(repo):
    write(Path(repo.working_tree_dir), "train_gpt.py", BASELINE + "# faster\n")
    commit_all(repo, "core")
    calls = []
    report = gate(repo, calls)
    # Not a record, nothing wrong with it as far as the gate can tell: no record to judge, and a maintainer reviews.
    assert report.verdict == "no record to judge" and report.ok
    assert report.scope.core_changes == ["train_gpt.py"]
    assert calls == []
    assert "Core change" in report.markdown() and "core change: train_gpt.py" in report.needs_human


def test_oversized_files_symlinks_and_judge_evidence_fail():
    changes = [
        Change("A", "records/t/r/train_gpt.py", size=100),
        Change("A", "records/t/r/weights.bin", size=20_000_001),
        Change("A", "records/t/r/link", size=10, is_symlink=True),
        Change("A", "records/t/r/verification.json", size=10),
    ]
    scope = classify_changes(changes, existing_record_folders=set())
    assert len(scope.problems) == 3
    assert any("over the 20,000,000-byte file cap" in p.message for p in scope.problems)
    assert any("symlinks" in p.message for p in scope.problems)
    assert any("only the judge writes verification.json" in p.message for p in scope.problems)
    assert not scope.is_record_pr


def test_generated_files_are_ignored():
    changes = [Change("A", "records/t/r/README.md", size=1), Change("M", "leaderboard.md", size=1),
               Change("M", "records/t/progress.png", size=1)]
    scope = classify_changes(changes, existing_record_folders=set())
    assert scope.is_record_pr
    assert scope.ignored_generated == ["leaderboard.md", "records/t/progress.png"]


def test_changed_byte_accounting_is_flagged_with_its_diff(repo):
    doctored = BASELINE.replace('.encode())', '.encode()) + 1')
    add_record(repo, script=doctored)
    commit_all(repo, "record with its own byte table")
    report = gate(repo, [])
    kinds = [f.kind for f in report.flags]
    assert kinds == ["byte_accounting"]
    assert "+    return np.array" in report.flags[0].diff and "+ 1" in report.flags[0].diff
    assert "Needs a maintainer" in report.markdown() and "```diff" in report.markdown()


def test_unchanged_byte_accounting_and_other_code_changes_are_not_flagged():
    assert byte_accounting_diff(BASELINE.replace("return 1", "return 2"), BASELINE, "r") == ""


def test_shipped_tokenizer_and_dataset_code_are_flagged():
    flags = audit_flags("r", ["r/tokenizer.model", "r/prepare_data.py", "r/train_gpt.py"], BASELINE, BASELINE)
    assert [f.kind for f in flags] == ["tokenizer", "dataset"]


def test_unparseable_script_is_flagged():
    flags = audit_flags("r", ["r/train_gpt.py"], "def broken(:\n", BASELINE)
    assert [f.kind for f in flags] == ["unparseable"]


def test_bad_references_are_bad_usage(repo, tmp_path):
    with pytest.raises(RecordError, match="unknown git reference"):
        gate_pull_request(Path(repo.working_tree_dir), "no-such-branch", stages={})
    os.makedirs(tmp_path / "plain")
    with pytest.raises(RecordError, match="not a git repository"):
        gate_pull_request(tmp_path / "plain", "main", stages={})


def test_a_backdated_record_fails(repo):
    root = Path(repo.working_tree_dir)
    repo.git.checkout("main")
    write(root, f"{EXISTING}/submission.json", '{"date": "2026-03-01"}\n')
    commit_all(repo, "existing record dated")
    repo.git.checkout("-B", "pr")
    add_record(repo, extra={"submission.json": '{"date": "2026-02-01"}\n'})
    commit_all(repo, "backdated")
    report = gate(repo, [])
    assert not report.ok
    assert any("earlier than the newest track_cpu_shakespeare record" in p.message for p in report.scope.problems)


def test_a_record_dated_after_the_newest_passes_the_date_rule(repo):
    root = Path(repo.working_tree_dir)
    repo.git.checkout("main")
    write(root, f"{EXISTING}/submission.json", '{"date": "2026-03-01"}\n')
    commit_all(repo, "existing record dated")
    repo.git.checkout("-B", "pr")
    add_record(repo, extra={"submission.json": '{"date": "2026-03-02"}\n'})
    commit_all(repo, "dated after")
    assert gate(repo, []).ok


def test_a_record_dated_in_the_future_fails(repo):
    add_record(repo, extra={"submission.json": '{"date": "2999-01-01"}\n'})
    commit_all(repo, "from the future")
    report = gate(repo, [])
    assert any("in the future" in p.message for p in report.scope.problems)
