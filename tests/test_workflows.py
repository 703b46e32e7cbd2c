"""The GitHub workflows lint clean and keep their security properties."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"


def actionlint() -> str:
    found = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    if not Path(found).exists():
        pytest.fail("actionlint is not installed: it is a dev dependency (pip install -e '.[dev]')")
    return found


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean True.
    return workflow.get("on", workflow.get(True)) or {}


def test_every_workflow_passes_actionlint():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "pr-verify.yml", "reproduce.yml", "leaderboard.yml"}
    result = subprocess.run([actionlint(), *map(str, files)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    result = subprocess.run([actionlint(), str(broken)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "nope" in result.stdout


def test_pull_request_gate_never_runs_untrusted_code_with_write_access():
    workflow = load("pr-verify.yml")
    assert "pull_request" in triggers(workflow)
    assert "pull_request_target" not in triggers(workflow)
    assert workflow["permissions"] == {"contents": "read"}
    text = (WORKFLOWS / "pr-verify.yml").read_text()
    assert "secrets." not in text
    assert "verify pr" in text


def test_ci_runs_the_readme_test_command():
    steps = load("ci.yml")["jobs"]["test"]["steps"]
    assert any(step.get("run") == "make test" for step in steps)
    assert load("ci.yml")["permissions"] == {"contents": "read"}
    assert "make test" in (REPO / "README.md").read_text()
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_reproduce_is_manual_and_on_the_gpu_runner():
    workflow = load("reproduce.yml")
    assert set(triggers(workflow)) == {"workflow_dispatch"}
    runs_on = workflow["jobs"]["reproduce"]["runs-on"]
    assert "self-hosted" in runs_on
    assert "--nproc 8" in (WORKFLOWS / "reproduce.yml").read_text()


def test_leaderboard_updates_cannot_race():
    workflow = load("leaderboard.yml")
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "push" in triggers(workflow)
