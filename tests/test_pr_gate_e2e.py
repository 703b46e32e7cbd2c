"""The pull-request gate end to end, with every real judge: a temporary repository whose main branch holds the
baseline and a tiny CPU track; a participant trains three seeds with the real baseline, assembles a record with
`submit record --from-logs` and opens a pull request. The gate runs verify record, probes and reproduce (the
track runs on this machine) and passes it. A second pull request ships the same record with a doctored byte
table: it is flagged for a maintainer with the diff, the tokenizer audit runs and fails it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
from click.testing import CliRunner

from tests.recordkit import cpu_track_toml
from tools.submit.cli import main as submit_main
from tools.verify.cli import main as verify_main

REPO = Path(__file__).resolve().parents[1]
TRACK = "track_cpu_shakespeare"
SEEDS = (42, 1337, 2025)
TINY_ENV = {  # deterministic and short: ITERATIONS ends each run long before the wall-clock cap
    "MAX_WALLCLOCK_SECONDS": "120", "TORCH_NUM_THREADS": "1", "ITERATIONS": "10", "NUM_LAYERS": "1",
    "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "TRAIN_SEQ_LEN": "32", "TRAIN_BATCH_TOKENS": "256",
    "VAL_BATCH_TOKENS": "4096", "WARMUP_STEPS": "2", "TRAIN_LOG_EVERY": "5",
}
TRACKS_TOML = cpu_track_toml(TRACK, title="tiny CPU track for the gate test", dataset="tiny_byte", tokenizer="byte",
                             min_seeds=3, train_cap_s=120, env=TINY_ENV)
WORDS = ("now is the winter of our discontent made glorious summer by this sun of york and all the clouds that "
         "lour'd upon our house in the deep bosom of the ocean buried").split()


def write_corpus(path: Path, documents: int = 12) -> None:
    """Seeded random lines of Shakespeare's words: no long passage repeats, so train and val do not overlap."""
    rng = random.Random(7)
    with path.open("w") as out:
        for _ in range(documents):
            text = "\n".join(" ".join(rng.choices(WORDS, k=9)) for _ in range(40)) + "\n"
            out.write(json.dumps({"text": text}) + "\n")


def commit_all(repo: git.Repo, message: str) -> None:
    repo.git.add(A=True)
    repo.index.commit(message)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """main: the baseline + tracks; a prepared dataset outside the repo; three real training logs."""
    tmp = tmp_path_factory.mktemp("gate")
    root, datasets = tmp / "repo", tmp / "datasets"
    repo = git.Repo.init(root, initial_branch="main")
    shutil.copy(REPO / "train_gpt.py", root / "train_gpt.py")
    (root / "records").mkdir()
    (root / "records" / "tracks.toml").write_text(TRACKS_TOML)
    (root / ".gitignore").write_text("logs/\nmlflow.db\nmlartifacts/\n")
    commit_all(repo, "main: baseline and tracks")

    write_corpus(tmp / "corpus.jsonl")
    prepared = subprocess.run([sys.executable, str(REPO / "data" / "prepare.py"), "docs", "--jsonl",
                               str(tmp / "corpus.jsonl"), "--val-docs", "2", "--name", "tiny", "--tokenizer", "byte",
                               "--out-dir", str(datasets), "-q"], capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    logs = []
    for seed in SEEDS:
        env = {**os.environ, **TINY_ENV, "SEED": str(seed), "RUN_ID": f"tiny_seed{seed}",
               "DATA_PATH": str(datasets / "tiny_byte")}
        run = subprocess.run([sys.executable, "train_gpt.py"], cwd=root, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        logs.append(root / "logs" / f"tiny_seed{seed}.txt")
    return repo, root, datasets, logs


@pytest.fixture
def env(world, monkeypatch):
    repo, root, datasets, _ = world
    monkeypatch.setenv("PG_REPO_ROOT", str(root))
    monkeypatch.setenv("PG_DATASETS_ROOT", str(datasets))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.chdir(root)
    yield
    repo.git.checkout("-f", "main")
    repo.git.clean("-fdq", "records")


def open_pull_request(repo: git.Repo, branch: str, logs: list[Path], name: str) -> Path:
    repo.git.checkout("-B", branch, "main")
    result = CliRunner().invoke(submit_main, ["record", "--from-logs", *map(str, logs), "--track", TRACK,
                                              "--name", name, "--author", "tester", "--no-track"])
    assert result.exit_code == 0, result.output
    folders = [p for p in (Path(repo.working_tree_dir) / "records" / TRACK).iterdir() if p.is_dir()]
    assert len(folders) == 1
    return folders[0]


@pytest.mark.slow
def test_a_good_cpu_track_record_passes_the_gate_end_to_end(world, env, tmp_path):
    repo, _, _, logs = world
    folder = open_pull_request(repo, "good", logs, "Tiny baseline")
    commit_all(repo, "add a record")
    summary = tmp_path / "summary.md"
    result = CliRunner().invoke(verify_main, ["pr", "--base", "main", "--summary", str(summary), "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0, json.dumps(report, indent=1)
    assert report["record"] == f"records/{TRACK}/{folder.name}"
    stages = {stage["name"]: {c["id"]: c["status"] for c in stage["checks"]} for stage in report["stages"]}
    assert set(stages) == {"verify record", "verify probes", "verify reproduce"}  # not flagged: no tokenizer audit
    assert stages["verify probes"] == {"normalization": "pass", "causality": "pass", "rescore": "pass"}
    assert stages["verify reproduce"] == {"reproduction": "pass"}
    assert all(status in ("pass", "skip", "warn") for status in stages["verify record"].values())
    assert stages["verify record"]["significance"] == "skip"  # the first record of its track
    assert "✅ passed" in summary.read_text()


@pytest.mark.slow
def test_doctored_byte_accounting_is_flagged_and_fails_the_tokenizer_audit(world, env):
    repo, _, _, logs = world
    folder = open_pull_request(repo, "doctored", logs, "Tiny doctored")
    script = folder / "train_gpt.py"
    honest = "table[:256] = 1  # ids 0..255 are bytes"
    assert honest in script.read_text()
    script.write_text(script.read_text().replace(honest, "table[:256] = 1; table[32] = 2  # ids 0..255 are bytes"))
    commit_all(repo, "a record with its own byte table")
    result = CliRunner().invoke(verify_main, ["pr", "--base", "main", "--no-reproduce", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [flag["kind"] for flag in report["flags"]] == ["byte_accounting"]
    assert "table[32] = 2" in report["flags"][0]["diff"]
    stages = {stage["name"]: {c["id"]: c["status"] for c in stage["checks"]} for stage in report["stages"]}
    assert stages["verify tokenizer"]["tokenizer_bytes"] == "fail"
    assert stages["verify record"]["code_matches_logs"] == "fail"  # the logs ran the honest script
    assert any("byte-accounting" in reason for reason in report["needs_human"])


@pytest.mark.slow
def test_verify_all_runs_every_judge_and_writes_evidence_only_when_asked(world, env):
    repo, _, _, logs = world
    folder = open_pull_request(repo, "all", logs, "Tiny all")
    evidence = folder / "verification.json"
    result = CliRunner().invoke(verify_main, ["all", str(folder), "--no-reproduce", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0, json.dumps(report, indent=1)
    assert set(report["stages"]) == {"verify record", "verify tokenizer", "verify probes"}  # --no-reproduce
    assert {c["id"]: c["status"] for c in report["stages"]["verify tokenizer"]}["tokenizer_bytes"] == "pass"
    assert not evidence.exists()

    result = CliRunner().invoke(verify_main, ["all", str(folder), "--no-reproduce", "--write-evidence"])
    assert result.exit_code == 0, result.output
    written = {id_: c["status"] for id_, c in json.loads(evidence.read_text())["checks"].items()}
    assert written["tokenizer_bytes"] == "pass" and written["rescore"] == "pass"
    assert "schema" not in written  # static checks are recomputed by the leaderboard, never trusted from a file

    result = CliRunner().invoke(verify_main, ["all", str(folder / "missing")])
    assert result.exit_code == 2
