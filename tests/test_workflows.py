"""The GitHub workflows lint clean and keep their security properties."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
# `owner/repo[/path]@<40 hex> # vX.Y.Z`: a tag can be moved to other code, a commit cannot.
PINNED_USE = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


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


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])]


def uses_lines(text: str) -> list[str]:
    """Every `uses:` value with its trailing comment, as written (yaml drops comments)."""
    return [m.group(1).strip() for m in re.finditer(r"^\s*(?:-\s+)?uses:\s*(.+)$", text, re.MULTILINE)]


def run_shell(workflow: dict, job_id: str, step: dict) -> str | None:
    """The shell a `run:` step gets: its own, else its job's default, else the workflow's (None: GitHub's own,
    which on Linux is `bash -e {0}` without pipefail)."""
    job = workflow["jobs"][job_id]
    for scope in (step, job.get("defaults", {}).get("run", {}), workflow.get("defaults", {}).get("run", {})):
        if scope.get("shell"):
            return scope["shell"]
    return None


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


def test_every_third_party_action_is_pinned_by_commit_sha():
    seen = 0
    for path in workflow_files():
        for use in uses_lines(path.read_text()):
            if use.startswith("./") or use.startswith("docker://"):
                continue  # a local action is this repository's own code; none today
            seen += 1
            assert PINNED_USE.match(use), f"{path.name}: `uses: {use}` is not pinned by a 40-hex commit SHA # vX.Y.Z"
    assert seen >= 6


def test_the_pin_pattern_refuses_tags_branches_and_short_shas():
    for loose in ("actions/checkout@v5", "actions/checkout@main", "actions/checkout@08c6903cd8c0",
                  "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8"):  # no version comment
        assert not PINNED_USE.match(loose)
    assert PINNED_USE.match("actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0")


def test_every_shell_step_runs_bash_with_pipefail():
    """GitHub adds `-o pipefail` only when `shell: bash` is given explicitly: every workflow sets it as the
    default, and no step swaps in a shell without it (so `verify ... | tee` cannot hide a failure)."""
    for path in workflow_files():
        workflow = yaml.safe_load(path.read_text())
        assert workflow.get("defaults", {}).get("run", {}).get("shell") == "bash", f"{path.name}: no bash default"
        for job_id, step in steps(workflow):
            if "run" in step:
                assert run_shell(workflow, job_id, step) == "bash", f"{path.name}: {step.get('name', step['run'])}"


def test_the_pipefail_check_catches_a_tee_without_it():
    workflow = yaml.safe_load("jobs:\n  j:\n    steps:\n      - run: verify reproduce x | tee out.json\n")
    assert run_shell(workflow, "j", workflow["jobs"]["j"]["steps"][0]) is None
    workflow["defaults"] = {"run": {"shell": "bash"}}
    assert run_shell(workflow, "j", workflow["jobs"]["j"]["steps"][0]) == "bash"


def test_the_gate_installs_the_base_judge_and_reads_the_pull_request_as_data():
    workflow = load("pr-verify.yml")
    gate = workflow["jobs"]["gate"]["steps"]
    checkouts = [step for step in gate if str(step.get("uses", "")).startswith("actions/checkout@")]
    by_path = {step["with"]["path"]: step["with"] for step in checkouts}
    assert by_path["judge"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert by_path["pr"]["ref"] == "${{ github.event.pull_request.head.sha }}"
    assert all(step["with"]["persist-credentials"] is False for step in checkouts)
    runs = [step for step in gate if "run" in step]
    # Every command runs in the base's checkout: nothing from pr/ (its Makefile, tools/, data/) is executed.
    assert runs and all(step.get("working-directory") == "judge" for step in runs)
    assert not any(re.search(r"(^|[\s;&|])(\.\./)?pr/", step["run"]) for step in runs)
    verify = next(step["run"] for step in runs if "verify pr" in step["run"])
    assert "--repo ../pr" in verify and '--base "$BASE_SHA"' in verify and '--head "$HEAD_SHA"' in verify
    assert any(step["run"] == "make venv" for step in runs)


def test_pip_downloads_are_cached_where_python_is_set_up():
    for path in workflow_files():
        for _, step in steps(yaml.safe_load(path.read_text())):
            if str(step.get("uses", "")).startswith("actions/setup-python@"):
                assert step["with"].get("cache") == "pip", path.name
                assert step["with"].get("cache-dependency-path", "").endswith("pyproject.toml"), path.name


def test_workflows_install_torch_through_make_venv():
    """One place says where torch comes from (the Makefile: the CPU wheel index), so no workflow downloads the
    CUDA build by accident; the GPU runner asks for it explicitly."""
    makefile = (REPO / "Makefile").read_text()
    assert "TORCH_INDEX ?= https://download.pytorch.org/whl/cpu" in makefile
    for path in workflow_files():
        text = path.read_text()
        assert "pip install" not in text and "torch==" not in text, path.name
    assert "make venv TORCH_INDEX=" in (WORKFLOWS / "reproduce.yml").read_text()
