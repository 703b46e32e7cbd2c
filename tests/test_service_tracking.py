"""Every service run is one MLflow run (tools/service/tracking.py): experiment per participant, the trainer's metric
names, the service's val_bpb beside the reported one, code and output as artifacts, status and times from the run;
logged once even when asked twice; a tracking failure never changes a run's verdict."""

from __future__ import annotations

import time

import pytest

from tests.test_service_api import Executor, make
from tools.service.outcome import SUCCEEDED
from tools.service.tracking import SERVICE_RUN_TAG, experiment_name, track_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy chatter inside MLflow's store


def finished_run(store, engine, owner="alice", code="import prepare\nprint('hi')\n", name="first"):
    submitted = engine.submit(owner, code, name, None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run = store.get(owner, submitted.run.number)
        if run is not None and run.status not in ("queued", "running"):
            return run
        time.sleep(0.05)
    raise AssertionError("the run did not finish")


def run_once(tmp_path, owner, executor=None, track=None):
    """One submission through a started engine; the finished run."""
    config, store, engine = make(tmp_path, executor, track=track)
    store.create_token(owner)
    engine.start()
    try:
        return finished_run(store, engine, owner=owner)
    finally:
        engine.stop()


def test_a_finished_run_is_one_mlflow_run_with_the_services_score(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = run_once(tmp_path, "alice", track=lambda run: track_run(run, uri))
    assert run.status == SUCCEEDED
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name("alice"))
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 1
    logged = found[0]
    assert logged.data.tags[SERVICE_RUN_TAG] == "alice/run-0"
    assert logged.data.metrics["val_bpb"] == pytest.approx(1.0)  # the service's, not the printed 0.5
    assert logged.data.metrics["reported_val_bpb"] == pytest.approx(0.5)
    assert logged.data.metrics["steps"] == 7 and logged.data.metrics["train_time_s"] == pytest.approx(1.5)
    assert logged.data.params["code_sha256"] == run.code_sha256
    assert logged.info.status == "FINISHED"
    assert logged.info.start_time == int(run.started_at * 1000)
    assert logged.info.end_time == int(run.finished_at * 1000)
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id, "code")}
    assert artifacts == {"code/train.py"}
    assert track_run(run, uri) == logged.info.run_id  # asked again: found, not logged twice
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_a_failed_run_is_a_failed_mlflow_run(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    executor = Executor()
    executor.fail_with = RuntimeError("boom")
    run = run_once(tmp_path, "bob", executor, track=lambda run: track_run(run, uri))
    assert run.status == "failed"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name("bob"))
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FAILED" and "boom" in logged.data.tags["reason"]


def test_a_tracking_failure_leaves_the_run_and_its_verdict_alone(tmp_path, caplog):
    def broken(run):
        raise ConnectionError("tracking server unreachable")

    run = run_once(tmp_path, "alice", track=broken)
    assert run.status == SUCCEEDED and run.val_bpb == pytest.approx(1.0)
    assert "MLflow tracking failed: ConnectionError" in caplog.text
