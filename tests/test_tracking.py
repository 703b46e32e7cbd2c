"""MLflow tracking: ingestion is idempotent, metrics/params/tags/artifacts land, verdicts are runs too.

One SQLite store per module (creating its tables takes seconds); everything lives under tmp folders.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from tests.recordkit import make_record, make_repo_tree, repo_env
from tools.records.model import CheckResult, RecordError, Report
from tools.submit import tracking
from tools.submit.cli import main

SEEDS = (42, 1337, 2025)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy deprecations inside MLflow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{base / 'mlflow.db'}", base


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Two contract-format logs as the trainer leaves them: logs/<RUN_ID>.txt and logs/<RUN_ID>/final_model.int8.ptz."""
    tmp = tmp_path_factory.mktemp("logs")
    record = make_record(make_repo_tree(tmp), name="2026-01-10_base", seeds=SEEDS, artifacts=True)
    folder = tmp / "logs"
    folder.mkdir()
    paths = []
    for seed in SEEDS:
        run_id = f"2026-01-10_base_seed{seed}"
        path = folder / f"{run_id}.txt"
        shutil.copyfile(record / f"train_seed{seed}.log", path)
        (folder / run_id).mkdir()
        shutil.copyfile(record / f"final_model_seed{seed}.int8.ptz", folder / run_id / "final_model.int8.ptz")
        paths.append(path)
    return paths


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_ingest_is_idempotent_and_records_the_run(store, logs, tmp_path):
    uri, base = store
    first = tracking.ingest(logs, uri, track_id="track_cpu_shakespeare")
    again = tracking.ingest(list(reversed(logs)), uri)
    assert [i.created for i in first] == [True, True, True]
    assert [i.created for i in again] == [False, False, False]
    assert {i.run_id for i in first} == {i.run_id for i in again}
    assert tracking.ingest_logs(logs[:1], uri) == [first[0].run_id]

    client = _client(uri)
    experiment = client.get_experiment_by_name(tracking.TRAINING_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # three logs, seven ingestions

    run = client.get_run(first[0].run_id)
    digest = hashlib.sha256(logs[0].read_bytes()).hexdigest()
    assert run.data.tags["log_sha256"] == digest
    assert run.data.tags["run_id"] == "2026-01-10_base_seed42"
    assert run.data.tags["track"] == "track_cpu_shakespeare"
    assert len(run.data.tags["code_sha256"]) == 64
    assert run.data.params["seed"] == "42"
    assert run.data.params["hp.ITERATIONS"] == "200"
    assert run.data.params["dataset.name"] == "shakespeare_sp1024"
    assert run.data.params["software.torch"] == "2.13.0"
    # The latest val_bpb is the final round-trip score; the history holds the curve with step numbers.
    assert run.data.metrics["val_bpb"] == pytest.approx(1.5012)
    assert run.data.metrics["train_time_s"] == pytest.approx(175.0)
    assert run.data.metrics["bytes_total"] > 150_000
    history = client.get_metric_history(run.info.run_id, "val_bpb")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 200, 201]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) >= 2
    assert run.info.artifact_uri.startswith((base / "mlartifacts").as_uri())

    fetched = tracking.fetch_logs([first[0].run_id], tmp_path / "fetched", uri)
    assert fetched[0].read_bytes() == logs[0].read_bytes()
    model = fetched[0].parent / "2026-01-10_base_seed42" / "final_model.int8.ptz"
    assert model.read_bytes() == (logs[0].parent / "2026-01-10_base_seed42" / "final_model.int8.ptz").read_bytes()


def test_verdict_is_a_run_with_checks_and_stats(store):
    uri, _ = store
    report = Report(
        record="records/track_cpu_shakespeare/2026-01-10_base",
        checks=[CheckResult("files", "pass", "all there"), CheckResult("significance", "fail", "p=0.2 >= 0.01")],
        stats={"mean": 1.5, "p": 0.2, "welch": {"t": -1.25}, "status": "fail", "ok": True},
    )
    run_id = tracking.log_verdict(report, verdict="rejected", track_id="track_cpu_shakespeare", tracking_uri=uri)
    run = _client(uri).get_run(run_id)
    assert run.data.tags["check.significance"] == "fail"
    assert run.data.tags["ok"] == "false"
    assert run.data.params["verdict"] == "rejected"
    assert run.data.metrics == {"mean": 1.5, "p": 0.2, "welch.t": -1.25}


def test_unreadable_log_ingests_nothing(tmp_path):
    not_a_log = tmp_path / "notes.txt"
    not_a_log.write_text("just some notes\n")
    database = tmp_path / "mlflow.db"
    with pytest.raises(RecordError, match="not a training log"):
        tracking.ingest([not_a_log], f"sqlite:///{database}")
    with pytest.raises(RecordError, match="no such log"):
        tracking.ingest([tmp_path / "missing.txt"], f"sqlite:///{database}")
    assert not database.exists()


def test_default_store_is_the_repository_sqlite(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PG_REPO_ROOT", str(tmp_path))
    uri = tracking.resolve_tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking.artifact_location(uri) == (tmp_path / "mlartifacts").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.resolve_tracking_uri() == "http://mlflow.example:5000"
    assert tracking.artifact_location("http://mlflow.example:5000") is None


def test_record_from_mlflow_runs_assembles_the_same_folder(store, logs, tmp_path, monkeypatch):
    uri, _ = store
    run_ids = tracking.ingest_logs(logs, uri)
    root = make_repo_tree(tmp_path)
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    args = ["record", "--from-mlflow", *run_ids, "--track", "track_cpu_shakespeare", "--name", "From MLflow",
            "--author", "Jane", "--date", "2026-02-02", "--tracking-uri", uri]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    folder = root / "records" / "track_cpu_shakespeare" / "2026-02-02_from-mlflow"
    for seed, log in zip(SEEDS, logs, strict=True):
        assert (folder / f"train_seed{seed}.log").read_bytes() == log.read_bytes()
        assert (folder / f"final_model_seed{seed}.int8.ptz").is_file()
    # The verdict of `submit record` is itself a run of experiment "verdicts".
    client = _client(uri)
    verdicts = client.search_runs([client.get_experiment_by_name(tracking.VERDICTS_EXPERIMENT).experiment_id],
                                  filter_string="tags.verdict = 'record'")  # fmt: skip
    assert any(run.data.tags["record"] == str(folder) for run in verdicts)

    result = CliRunner().invoke(main, [*args[:2], "0123456789abcdef", *args[2 + len(run_ids):]])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: mlflow run 0123456789abcdef: not found")


def test_track_command_reports_existing_runs_and_refuses_bad_logs(store, logs, tmp_path):
    uri, _ = store
    expected = tracking.ingest_logs(logs[:1], uri)
    result = CliRunner().invoke(main, ["track", str(logs[0]), "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"] == [{"path": str(logs[0]), "run_id": expected[0], "created": False}]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = CliRunner().invoke(main, ["track", str(logs[0]), str(empty), "--tracking-uri", uri])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {empty}: empty log"
