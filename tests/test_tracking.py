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


# -- one run per training run: the trainer's live run, crashes, times, the UI ---------------------------------

START = "2026-01-10T08:00:00.000+00:00"
START_MS = 1768032000000  # START in ms since the epoch
END = "2026-01-10T08:03:30.500+00:00"
SEPARATOR = "\n" + "=" * 100 + "\n"


def _variant(source, dest, *, start=START, end=END, crash=False):
    """A copy of a contract log with the trainer's start_time/end_time lines; crash=True cuts it after training
    (no size or score lines, as when the process dies in quantization)."""
    code, body = source.read_text().split(SEPARATOR, 1)
    lines = body.splitlines()
    lines.insert(1, f"start_time:{start}")
    if crash:
        lines = lines[: next(i for i, line in enumerate(lines) if line.startswith("peak memory"))]
    elif end:
        lines.append(f"end_time:{end}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(code + SEPARATOR + "\n".join(lines) + "\n")
    return dest


def _only_run(uri, experiment):
    client = _client(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def _live_run(uri, log_path, monkeypatch, seed=42):
    """The trainer's MlflowLogger for this log's training, as train_gpt.py opens it (rank 0, tracking on)."""
    import atexit

    import train_gpt

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    hp = train_gpt.Hyperparameters(run_id=log_path.stem, seed=seed, iterations=200)
    logger = train_gpt.MlflowLogger(hp, True, START, "0" * 64, log_path, log_path.parent / log_path.stem / "final_model.int8.ptz")
    atexit.unregister(logger.finish)  # this process is pytest: no exit hook
    return logger


def test_names_and_rules_are_the_trainers(monkeypatch):
    import train_gpt

    assert train_gpt.MlflowLogger.CURVE_METRICS == tracking.CURVE_METRICS
    assert train_gpt.MlflowLogger.FINAL_METRICS == tracking.FINAL_METRICS
    assert train_gpt.MlflowLogger.EXPERIMENT == tracking.TRAINING_EXPERIMENT
    assert train_gpt.MlflowLogger.EXPERIMENT_TAGS == tracking.EXPERIMENT_TAGS
    monkeypatch.chdir("/")
    for uri in ("sqlite:///mlflow.db", "sqlite:////srv/x/mlflow.db", "sqlite:///a%20b/m.db?timeout=5", "sqlite://",
                "sqlite:///:memory:", "http://mlflow.example:5000", "postgresql://u@h/db"):
        assert train_gpt.mlflow_artifact_location(uri) == tracking.artifact_location(uri), uri
    assert tracking.artifact_location("sqlite:///mlflow.db") == "file:///mlartifacts"  # relative: from the cwd
    assert tracking.artifact_location("sqlite:////srv/x/mlflow.db") == "file:///srv/x/mlartifacts"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    assert tracking.training_experiment() == "mine"


def test_a_crashed_log_is_a_failed_run_with_the_logs_times(store, logs, tmp_path, monkeypatch):
    uri, _ = store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "crashes")
    crashed = _variant(logs[0], tmp_path / "logs" / "crashed.txt", crash=True)
    finished = _variant(logs[1], tmp_path / "logs" / "finished.txt")
    tracking.ingest([crashed, finished], uri)
    client = _client(uri)
    runs = {r.data.tags["log_name"]: r for r in client.search_runs([client.get_experiment_by_name("crashes").experiment_id])}
    assert runs["crashed.txt"].info.status == "FAILED"
    assert "val_bpb" in runs["crashed.txt"].data.metrics  # the curve is kept; only the final point is missing
    assert [m.step for m in client.get_metric_history(runs["crashed.txt"].info.run_id, "val_bpb")] == [0, 200]
    # No end_time line (it crashed): the end is the start plus the training time the log reached.
    assert (runs["crashed.txt"].info.start_time, runs["crashed.txt"].info.end_time) == (START_MS, START_MS + 175_000)
    assert runs["finished.txt"].info.status == "FINISHED"
    assert (runs["finished.txt"].info.start_time, runs["finished.txt"].info.end_time) == (START_MS, START_MS + 210_500)
    history = client.get_metric_history(runs["finished.txt"].info.run_id, "train_loss")
    assert {m.step: m.timestamp for m in history} == {1: START_MS + 875, 100: START_MS + 87_500, 200: START_MS + 175_000}


def test_log_times_without_trainer_lines():
    from tools.records.model import ParsedLog

    log = ParsedLog(path="x", code="print(1)\n", train_time_ms=1000.0)
    assert tracking.log_times("print(1)\n" + SEPARATOR + "step:1/2 train_loss:1\n", log) == (None, None)
    stamped = "print(1)\n" + SEPARATOR + "1776142360.538 step:1/2\n1776142400.000 final_x_exact val_bpb:1\n"
    assert tracking.log_times(stamped, log) == (1776142360538, 1776142400000)
    assert tracking.log_times(f"x\nstart_time:{START}\n", log) == (START_MS, START_MS + 1000)
    assert tracking.log_times("x\nstart_time:2026-01-10T08:00:00\n", log) == (None, None)  # no zone: not a moment
    assert tracking.training_key(f"x\nstart_time:{START}\n", log) is None  # no run_id
    assert tracking.run_status(log) == "FAILED"


def test_a_tracked_training_then_ingested_is_one_run(store, logs, tmp_path, monkeypatch):
    uri, _ = store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "live")
    log_path = _variant(logs[0], tmp_path / "logs" / "2026-01-10_base_seed42.txt")
    shutil.copytree(logs[0].parent / "2026-01-10_base_seed42", log_path.parent / "2026-01-10_base_seed42")
    logger = _live_run(uri, log_path, monkeypatch)
    for key, value, step in (("val_bpb", 3.98761234, 0), ("train_loss", 3.99501234, 1), ("train_loss", 3.0050, 200)):
        logger.metric(key, value, step)
    logger.finish()
    live = _only_run(uri, "live")
    assert live.info.status == "FINISHED" and live.data.tags["log_sha256"] == tracking.sha256_file(log_path)

    (first,) = tracking.ingest([log_path], uri)
    (again,) = tracking.ingest([log_path], uri, track_id="track_cpu_shakespeare")
    assert first.run_id == again.run_id == live.info.run_id and not first.created and not again.created
    run = _only_run(uri, "live")
    client = _client(uri)
    train_loss = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in train_loss) == [1, 100, 200]  # the trainer's points kept, the log's missing one added
    assert {m.step: m.value for m in train_loss}[1] == pytest.approx(3.99501234)
    assert run.data.metrics["val_bpb"] == pytest.approx(1.5012)  # the final score, one step past the last
    assert run.data.params["hardware.cpu_cores"] == "2" and run.data.params["hp.ITERATIONS"] == "200"
    assert run.data.tags["track"] == "track_cpu_shakespeare" and run.info.start_time == START_MS
    assert [a.path for a in client.list_artifacts(run.info.run_id, "log")] == [f"log/{log_path.name}"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/final_model.int8.ptz"]
    # A renamed copy of the same log (as `submit record` stores it) is still the same training run.
    copy = tmp_path / "record" / "train_seed42.log"
    copy.parent.mkdir()
    shutil.copyfile(log_path, copy)
    assert tracking.ingest_logs([copy], uri) == [run.info.run_id]


def test_a_killed_or_crashed_trainer_run_ends_failed(store, logs, tmp_path, monkeypatch):
    uri, _ = store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "killed")
    log_path = _variant(logs[1], tmp_path / "logs" / "2026-01-10_base_seed1337.txt", crash=True)
    logger = _live_run(uri, log_path, monkeypatch, seed=1337)
    logger.metric("train_loss", 3.9950, 1)
    logger.flush()  # then SIGKILL: no exit hook ran, the run is left RUNNING
    assert _only_run(uri, "killed").info.status == "RUNNING"
    (ingested,) = tracking.ingest([log_path], uri)
    run = _only_run(uri, "killed")
    assert ingested.run_id == run.info.run_id and run.info.status == "FAILED"
    assert run.info.end_time == START_MS + 175_000

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "crashed")
    logger = _live_run(uri, log_path, monkeypatch, seed=1337)
    logger.finish("FAILED")  # what the trainer's exit hook does after an exception
    run = _only_run(uri, "crashed")
    assert run.info.status == "FAILED" and [a.path for a in _client(uri).list_artifacts(run.info.run_id, "log")]


def test_experiments_open_on_runs(store, logs, tmp_path, monkeypatch):
    uri, _ = store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "made-before-the-tag")
    client = _client(uri)
    client.create_experiment("made-before-the-tag")
    (ingested,) = tracking.ingest(logs[:1], uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "made-by-ingestion")
    tracking.ingest(logs[:1], uri)
    for name in ("made-before-the-tag", "made-by-ingestion"):
        assert client.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "made-before-the-tag")
    hint = tracking.ui_hint(uri, ingested.experiment_id)
    assert hint.endswith(f"#/experiments/{ingested.experiment_id}/runs?workflowType=machine_learning")
    assert f"--backend-store-uri {uri}" in hint
    assert tracking.ui_hint("http://mlflow:5000/", "7") == "view: http://mlflow:5000/#/experiments/7/runs?workflowType=machine_learning"
    result = CliRunner().invoke(main, ["track", str(logs[0]), "--tracking-uri", uri])
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == hint
