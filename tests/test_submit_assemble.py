"""`submit record --from-logs`: assemble a record folder from training logs, atomically, then judge it."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import change_line, make_record, make_repo_tree, repo_env
from tools.records.model import RecordError
from tools.records.schema import load_submission
from tools.submit.assemble import assemble_draft, record_folder_name, slugify
from tools.submit.cli import main
from tools.verify.checks.verdict import verify_record

TRACK = "track_cpu_shakespeare"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    root = make_repo_tree(tmp_path)
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return root


def write_logs(repo: Path, tmp_path: Path, tag: str = "run", **record_options) -> list[Path]:
    """Trainer output as the contract lays it out: logs/<RUN_ID>.txt and logs/<RUN_ID>/final_model.int8.ptz.

    The logs come from a recordkit record built in a scratch tree (same dataset manifest as `repo`)."""
    scratch = make_repo_tree(tmp_path / f"scratch-{tag}")
    source = make_record(scratch, name=tag, artifacts=True, **record_options)
    logs = repo / "logs"
    logs.mkdir(exist_ok=True)
    paths = []
    for log in sorted(source.glob("train_seed*.log")):
        seed = log.stem.removeprefix("train_seed")
        run_id = f"{tag}_seed{seed}"
        paths.append(logs / f"{run_id}.txt")
        shutil.copyfile(log, paths[-1])
        (logs / run_id).mkdir()
        shutil.copyfile(source / f"final_model_seed{seed}.int8.ptz", logs / run_id / "final_model.int8.ptz")
    return paths


def from_logs(logs, *extra: str, name: str = "Wider MLP", date: str = "2026-02-01"):
    args = ["record", "--from-logs", *map(str, logs), "--track", TRACK, "--name", name, "--author", "Jane Doe",
            "--github-id", "janedoe", "--date", date, "--no-track", *extra]  # fmt: skip
    return CliRunner().invoke(main, args)


def track_listing(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / "records" / TRACK).iterdir())


def test_assembled_folder_holds_everything_and_verifies(repo, tmp_path):
    logs = write_logs(repo, tmp_path, bpbs=(1.5012, 1.4991, 1.5003))
    result = from_logs(logs, "--blurb", "Wider MLP, same budget.")
    assert result.exit_code == 0, result.output
    folder = repo / "records" / TRACK / "2026-02-01_wider-mlp"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "curves.png", "final_model_seed1337.int8.ptz", "final_model_seed2025.int8.ptz",
        "final_model_seed42.int8.ptz", "submission.json", "train_gpt.py", "train_seed1337.log",
        "train_seed2025.log", "train_seed42.log",
    ]  # fmt: skip
    assert (folder / "train_seed42.log").read_bytes() == logs[2].read_bytes()  # sorted: run_seed1337, run_seed2025, run_seed42
    assert (folder / "final_model_seed42.int8.ptz").read_bytes() == (repo / "logs" / "run_seed42" / "final_model.int8.ptz").read_bytes()
    submission = load_submission(folder / "submission.json")
    assert submission.seeds == (42, 1337, 2025)
    assert submission.val_bpb == pytest.approx(statistics.fmean([1.5012, 1.4991, 1.5003]), abs=1e-8)
    assert submission.val_bpb_std == pytest.approx(statistics.stdev([1.5012, 1.4991, 1.5003]), abs=1e-8)
    assert submission.seed_results[42].log == "train_seed42.log"
    assert (submission.author, submission.github_id, submission.date) == ("Jane Doe", "janedoe", dt.date(2026, 2, 1))
    readme = (folder / "README.md").read_text()
    assert "| 42 | 1.50120000 |" in readme and "Wider MLP, same budget." in readme
    # How to reproduce: the shared environment once (track env + logged hyperparameters), then one line per seed.
    assert readme.count("ITERATIONS=200") == 1 and "  TORCH_NUM_THREADS=2" in readme
    assert "RUN_ID=run_seed42 SEED=42 python train_gpt.py" in readme
    assert (folder / "curves.png").read_bytes().startswith(b"\x89PNG")
    report = verify_record(folder)
    assert report.ok, [c for c in report.checks if c.status == "fail"]
    assert "2026-02-01\\_wider-mlp" in (repo / "leaderboard.md").read_text()
    assert not [p for p in (repo / "records" / TRACK).iterdir() if p.name.startswith(".")]


def test_logs_with_different_code_exit_2_and_write_nothing(repo, tmp_path):
    logs = write_logs(repo, tmp_path, seeds=(1, 2), log_code={2: change_line(_script(), 5, "SEED = 7")})
    result = from_logs(logs)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {logs[1]}: embeds different code from {logs[0]}; a record runs one script"
    assert track_listing(repo) == []
    assert not (repo / "logs" / "rejected").exists()


def test_script_must_equal_the_logged_code(repo, tmp_path):
    logs = write_logs(repo, tmp_path)
    script = tmp_path / "train_gpt.py"
    script.write_text(_script() + "# edited after the runs\n")
    result = from_logs(logs, "--script", str(script))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {script}: differs from the code embedded in the logs")
    script.write_text(_script())
    assert from_logs(logs, "--script", str(script)).exit_code == 0


def test_rejected_draft_leaves_records_untouched_and_is_kept_in_logs_rejected(repo, tmp_path):
    logs = write_logs(repo, tmp_path, train_time_ms=180_300)  # 0.3 s over the track's cap
    result = from_logs(logs)
    assert result.exit_code == 1
    assert "REJECTED" in result.output and re.search(r"train_time +FAIL", result.output)
    assert track_listing(repo) == []
    assert not (repo / "leaderboard.md").exists()
    kept = repo / "logs" / "rejected" / "2026-02-01_wider-mlp"
    assert f"it is kept in {kept}" in result.output
    assert (kept / "submission.json").is_file() and (kept / "train_seed42.log").is_file()


def test_existing_destination_is_never_overwritten(repo, tmp_path):
    logs = write_logs(repo, tmp_path)
    assert from_logs(logs).exit_code == 0
    folder = repo / "records" / TRACK / "2026-02-01_wider-mlp"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = from_logs(logs)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {folder}: already exists")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize(
    "defect, message",
    [
        ({"drop_log_lines": {42: ("final_int8_zlib_roundtrip",)}}, "no score"),
        ({"drop_log_lines": {42: ("run_id",)}}, "no seed"),
        ({"drop_log_lines": {42: ("eval_time", "final_int8_zlib_roundtrip val_loss")}}, "no eval_time"),
    ],
)
def test_logs_that_cannot_make_a_record_exit_2(repo, tmp_path, defect, message):
    logs = write_logs(repo, tmp_path, **defect)
    bad = next(p for p in logs if p.name == "run_seed42.txt")
    result = from_logs(logs)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}: {message}")
    assert track_listing(repo) == []


def test_unreadable_log_exits_2(repo, tmp_path):
    binary = repo / "logs" / "binary.txt"
    binary.parent.mkdir()
    binary.write_bytes(b"\x00\x01\x02")
    for path in (binary, repo / "logs" / "missing.txt"):
        result = from_logs([path])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {path}")
        assert len(result.stderr.strip().splitlines()) == 1
    assert track_listing(repo) == []


def test_dry_run_from_logs_writes_nothing_and_shows_the_diff(repo, tmp_path):
    make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.60, 1.601, 1.599))
    logs = write_logs(repo, tmp_path, bpbs=(1.50, 1.501, 1.499))
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))
    result = from_logs(logs, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "ACCEPTED as the new SOTA" in result.output and "[dry run]" in result.output
    assert "+| 2 | 2026-02-01 | [2026-02-01\\_wider-mlp]" in result.output
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == before


def test_slug_and_folder_name():
    assert slugify("Int6 QAT + Muon!") == "int6-qat-muon"
    assert slugify("Ünïcode näme") == "unicode-name"
    assert record_folder_name(dt.date(2026, 3, 1), "A/B ../test") == "2026-03-01_a-b-test"
    with pytest.raises(RecordError, match="no letters or digits"):
        record_folder_name(dt.date(2026, 3, 1), "!!!")


def test_duplicate_seed_is_refused(repo, tmp_path):
    logs = write_logs(repo, tmp_path, seeds=(42,))
    copy = logs[0].with_name("again.txt")
    shutil.copyfile(logs[0], copy)
    with pytest.raises(RecordError, match="seed 42 again"):
        assemble_draft([logs[0], copy], TRACK, "x", "y", records_root=repo / "records")
    assert track_listing(repo) == []


def test_json_output_is_machine_readable(repo, tmp_path):
    logs = write_logs(repo, tmp_path)
    result = from_logs(logs, "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["verdict"] == "record"
    assert outcome["record"].endswith("records/track_cpu_shakespeare/2026-02-01_wider-mlp")
    assert outcome["report"]["record"] == "records/track_cpu_shakespeare/2026-02-01_wider-mlp"
    assert ".staging-" not in result.stdout


def _script() -> str:
    from tests.recordkit import SCRIPT

    return SCRIPT


def test_rejected_draft_of_a_track_without_a_folder_leaves_no_folder_behind(repo, tmp_path):
    (repo / "records" / TRACK).rmdir()  # git keeps no empty folders: a fresh clone may lack it
    logs = write_logs(repo, tmp_path, train_time_ms=180_300)
    assert from_logs(logs).exit_code == 1
    assert not (repo / "records" / TRACK).exists()
    assert from_logs(logs, "--dry-run").exit_code == 1
    assert not (repo / "records" / TRACK).exists()


def test_an_author_that_is_not_a_github_login_needs_github_id(repo, tmp_path):
    logs = write_logs(repo, tmp_path)
    args = ["record", "--from-logs", *map(str, logs), "--track", TRACK, "--name", "X", "--author", "Jane Doe",
            "--no-track"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--github-id" in result.stderr and "'Jane Doe' is not a GitHub login" in result.stderr
    assert track_listing(repo) == []
    result = CliRunner().invoke(main, [*args[:-3], "--author", "janedoe", "--no-track"])  # a login is its own id
    assert result.exit_code == 0, result.output
    assert load_submission(next((repo / "records" / TRACK).iterdir()) / "submission.json").github_id == "janedoe"


def test_reproduce_commands_show_paths_inside_the_repository_relative_to_it(repo):
    from tools.submit.assemble import _portable

    assert _portable(str(repo / "data" / "datasets" / "shakespeare_sp1024")) == "data/datasets/shakespeare_sp1024"
    assert _portable("/elsewhere/datasets/x") == "/elsewhere/datasets/x"
    assert _portable("logs/run1") == "logs/run1"


def test_staging_folders_left_by_an_interrupted_submit_are_ignored_then_cleaned(repo, tmp_path):
    """A `submit record` killed mid-way leaves records/<track>/.staging-XXXX: no judge or board reads it (hidden),
    and the next `submit record` removes it once it is stale (a young one may belong to a run still going)."""
    import os
    import time

    from tools.submit.assemble import STALE_STAGING_S
    from tools.verify.checks.sota import accepted_chain

    track_dir = repo / "records" / TRACK
    track_dir.mkdir(exist_ok=True)
    stale = make_record(repo, name=".staging-old1", date="2026-01-10")
    young = make_record(repo, name=".staging-new1", date="2026-01-11")
    old = time.time() - STALE_STAGING_S - 60
    os.utime(stale, (old, old))
    assert accepted_chain(TRACK, records_root=repo / "records") == []  # neither is a record
    result = from_logs(write_logs(repo, tmp_path))
    assert result.exit_code == 0, result.output
    assert not stale.exists() and young.exists()
    assert ".staging-new1" not in (repo / "leaderboard.md").read_text()
