"""The gate judges a pull request by the base commit's rules, records and judge (issue 10, part 4).

The pull request is data: a tracks.toml it loosens, a tools/verify it rewrites to always pass, or a working tree
that differs from its commit never decide its verdict; a base branch that moved on since the pull request
branched is what the record must beat. `verify pr --json` has `verify record --json`'s shape, and the gate fails
closed without the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import TRACKS_TOML, make_record, make_repo_tree, repo_env
from tools.verify.checks.verdict import verify_record
from tools.verify.cli import main as verify_main
from tools.verify.pr.gate import base_tracks, gate_pull_request
from tools.verify.pr.stages import PROBES, REPRODUCE, TOKENIZER

REPO = Path(__file__).resolve().parents[1]
TRACK = "track_cpu_shakespeare"
BASE_CAP = "artifact_cap_bytes = 16_000_000"
LOOSE_CAP = "artifact_cap_bytes = 99_000_000"
OVER_CAP = 16_500_000  # logged model bytes: over the base's cap, under the loosened one
STATIC_ONLY = {TOKENIZER, PROBES, REPRODUCE}  # the synthetic records have no real code to run


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


def _loosen(root: Path) -> None:
    rules = root / "records" / "tracks.toml"
    assert BASE_CAP in rules.read_text()
    rules.write_text(rules.read_text().replace(BASE_CAP, LOOSE_CAP))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """main: the tracks (16 MB cap) and a prepared tiny dataset (ignored by git); the branch `pr` checked out. The
    environment points the tools at this repository's working tree, as a gate run inside the pull request would."""
    root = make_repo_tree(tmp_path)
    (root / ".gitignore").write_text("data/\n")
    (root / "train_gpt.py").write_text("print('baseline')\n")
    _git(root, "init", "-q", "-b", "main")
    _commit(root, "main")
    _git(root, "checkout", "-q", "-b", "pr")
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    return root


def _stages(report) -> dict[str, dict[str, str]]:
    return {stage.name: {c.id: c.status for c in stage.checks} for stage in report.stages}


def test_the_rules_are_read_from_the_base_commit(repo):
    _loosen(repo)
    _commit(repo, "loosen the cap")
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert base_tracks(repo / ".git", "main")[TRACK].artifact_cap_bytes == 16_000_000
    assert base_tracks(repo / ".git", head)[TRACK].artifact_cap_bytes == 99_000_000


def test_a_record_over_the_base_cap_fails_though_the_working_tree_loosens_it(repo):
    folder = make_record(repo, name="2026-01-15_big", model_bytes=OVER_CAP)
    _commit(repo, "a record over the cap")
    _loosen(repo)  # uncommitted: the tree the tools would read by default
    assert {c.id: c.status for c in verify_record(folder).checks}["artifact_bytes"] == "pass"  # the loose rules
    report = gate_pull_request(repo, "main", "HEAD", skip=STATIC_ONLY)
    assert _stages(report)["verify record"]["artifact_bytes"] == "fail"
    assert report.verdict == "failed"
    assert report.rules.endswith(":records/tracks.toml") and report.rules in report.markdown()


def test_a_pull_request_that_loosens_the_rules_with_its_record_is_not_judged_by_them(repo):
    make_record(repo, name="2026-01-15_big", model_bytes=OVER_CAP)
    _loosen(repo)
    _commit(repo, "a record and a looser cap")
    report = gate_pull_request(repo, "main", "HEAD", skip=STATIC_ONLY)
    assert report.verdict == "failed" and report.stages == []
    assert report.scope.core_changes == ["records/tracks.toml"]
    checks = {c["id"]: c["status"] for c in report.to_json()["checks"]}
    assert checks["core_change"] == "fail"


def test_the_record_must_beat_the_base_branchs_current_sota(repo):
    """The pull request branched before main accepted a better record: it is judged against that record, not
    against the stale tree it branched from (where it would be the track's first record and pass)."""
    folder = make_record(repo, name="2026-01-15_mine", bpbs=(1.50, 1.51, 1.49))
    _commit(repo, "my record")
    assert {c.id: c.status for c in verify_record(folder).checks}["significance"] == "skip"  # first in its tree
    _git(repo, "checkout", "-q", "main")
    make_record(repo, name="2026-01-10_better", bpbs=(1.40, 1.41, 1.39))
    _commit(repo, "main accepts a better record")
    _git(repo, "checkout", "-q", "pr")
    report = gate_pull_request(repo, "main", "pr", skip=STATIC_ONLY)
    assert report.record == f"records/{TRACK}/2026-01-15_mine"
    assert _stages(report)["verify record"]["significance"] == "fail"
    assert report.to_json()["stats"]["sota_mean"] == pytest.approx(1.40)


def test_a_pull_request_that_rewrites_the_judge_is_not_run_and_not_judged_by_it(repo, tmp_path):
    """The pull request's tools/verify would pass anything and leaves a mark when imported; the gate (run as CI
    runs it: the judge's own checkout as the working directory, the pull request as --repo) never imports it."""
    mark = tmp_path / "pr-code-ran"
    package = repo / "tools" / "verify"
    package.mkdir(parents=True)
    (repo / "tools" / "__init__.py").write_text(f"open({str(mark)!r}, 'w').write('tools')\n")
    (package / "__init__.py").write_text(f"open({str(mark)!r}, 'w').write('verify')\n")
    (package / "record_checks.py").write_text("def verify_record(*a, **k):\n    raise SystemExit(0)  # always pass\n")
    make_record(repo, name="2026-01-15_big", model_bytes=OVER_CAP)
    _commit(repo, "a record and a judge that passes everything")
    env = {key: value for key, value in os.environ.items() if key != "PG_REPO_ROOT"}
    done = subprocess.run([sys.executable, "-m", "tools.verify.cli", "pr", "--repo", str(repo), "--base", "main",
                           "--head", "pr", "--json", "--unisolated"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["verdict"] == "failed" and report["stages"] == []
    assert {"tools/__init__.py", "tools/verify/__init__.py", "tools/verify/record_checks.py"} <= set(
        report["core_changes"])
    assert not mark.exists()


def test_pr_json_has_the_shape_of_verify_record_json(repo):
    folder = make_record(repo, name="2026-01-15_big", model_bytes=OVER_CAP)
    _commit(repo, "a record over the cap")
    record = CliRunner().invoke(verify_main, ["record", str(folder), "--json"])
    gate = CliRunner().invoke(verify_main, ["pr", "--base", "main", "--json", "--no-reproduce", "--unisolated"])
    record_json, gate_json = json.loads(record.stdout), json.loads(gate.stdout)
    assert gate.exit_code == 1
    assert set(record_json) <= set(gate_json)  # ok, record, checks, stats
    assert gate_json["record"] == f"records/{TRACK}/2026-01-15_big"
    for check in gate_json["checks"]:
        assert {"id", "status", "message", "stage"} <= set(check)
        assert check["status"] in ("pass", "fail", "warn", "skip")
    by_stage = {(c["stage"], c["id"]): c["status"] for c in gate_json["checks"]}
    assert by_stage[("verify record", "artifact_bytes")] == "fail"
    assert {c["id"]: c["status"] for c in record_json["checks"]}["artifact_bytes"] == "fail"
    assert gate_json["stats"]["n"] == record_json["stats"]["n"] == 3


def test_pr_json_gives_every_problem_an_id_and_a_failing_check(repo):
    first = make_record(repo, name="2026-01-15_first")
    _commit(repo, "first")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--ff-only", "pr")
    _git(repo, "checkout", "-q", "pr")
    copy = repo / "records" / TRACK / "2026-01-16_copy"
    copy.mkdir()
    for log in first.glob("*.log"):
        (copy / log.name).write_bytes(log.read_bytes())
    (first / "README.md").write_text("edited\n")
    _commit(repo, "a copy, and an edit of the first")
    result = CliRunner().invoke(verify_main, ["pr", "--base", "main", "--json", "--unisolated"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    ids = {p["id"] for p in report["problems"]}
    assert {"copied_log", "existing_record"} <= ids
    failing = {c["id"] for c in report["checks"] if c["status"] == "fail" and c["stage"] == "pr scope"}
    assert ids <= failing


def test_a_docs_only_pull_request_is_no_record_to_judge_in_json(repo):
    (repo / "README.md").write_text("# docs\n")
    _commit(repo, "docs")
    result = CliRunner().invoke(verify_main, ["pr", "--base", "main", "--json", "--unisolated"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["ok"] and report["verdict"] == "no record to judge"
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == {"core_change": "warn", "record": "skip"}


def test_verify_pr_fails_closed_without_the_sandbox(repo, monkeypatch):
    import tools.verify.sandbox as sandbox

    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    (repo / "README.md").write_text("# docs\n")
    _commit(repo, "docs")
    refused = CliRunner().invoke(verify_main, ["pr", "--base", "main"])
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sandbox:") and refused.stdout == ""
    allowed = CliRunner().invoke(verify_main, ["pr", "--base", "main", "--unisolated"])
    assert allowed.exit_code == 0 and "--unisolated" in allowed.stderr
    assert "not evidence" in allowed.stdout


def test_tracks_toml_fixture_has_the_cap_this_file_loosens():
    assert BASE_CAP in TRACKS_TOML
