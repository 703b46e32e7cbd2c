"""A run becomes a record (POST /runs/{run_id}/submit): its code re-runs on the record seeds through the same queue
and budget, and when every seed run has ended the service assembles and judges the record once. The record maker
is a stand-in here (the real one, and the judge on the folder it writes: tests/test_service_record.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.test_service_api import Executor, auth, make, wait_for
from tests.test_service_kit import honest_code, tiny_config
from tests.test_service_record import SEEDS, honest_runs, record_world
from tools.service.api import create_app
from tools.service.config import Budget
from tools.service.engine import Engine
from tools.service.outcome import FAILED, SUCCEEDED
from tools.service.runner import RunJob, RunResult
from tools.service.store import Store
from tools.service.submission import RecordMaker, seed_run

CODE = honest_code()

BODY = {"author": "Alice A.", "github_id": "alice", "name": "byte GPT", "blurb": "a small byte-level GPT"}


class Maker:
    """Records what it was asked to assemble; answers judged (or raises `fail_with`)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.fail_with: Exception | None = None

    def __call__(self, submission, runs):
        self.calls.append((submission, runs))
        if self.fail_with is not None:
            raise self.fail_with
        return "judged", "every check passed", f"/records/{submission.label}", {"passed": True, "checks": {}}


def wait_submission(client, token, submission_id, seconds=10.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        body = client.get(f"/submissions/{submission_id}", headers=auth(token)).json()
        if body["status"] != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def service(tmp_path, executor=None, maker=None, **overrides):
    config, store, _ = make(tmp_path, **overrides)
    engine = Engine(config, store, executor or Executor(), make_record=maker or Maker())
    return config, store, engine, store.create_token("alice")


def test_a_succeeded_run_is_rerun_on_each_seed_then_assembled_and_judged_once(tmp_path):
    config, store, engine, token = service(tmp_path)
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "print('model')"}, headers=auth(token))
        wait_for(client, token, "run-0", SUCCEEDED)
        answer = client.post("/runs/run-0/submit", json=BODY, headers=auth(token))
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert accepted["submission_id"] == "sub-0" and accepted["created"] and accepted["status"] == "running"
        assert [s["seed"] for s in accepted["seeds"]] == [42, 1337, 2025]
        assert [s["run_id"] for s in accepted["seeds"]] == ["run-1", "run-2", "run-3"]
        body = wait_submission(client, token, "sub-0")
    assert body["status"] == "judged" and body["record_path"] == "/records/sub-0" and body["verdict"]["passed"]
    assert [s["status"] for s in body["seeds"]] == [SUCCEEDED] * 3
    seeded = [job for job in engine.execute.jobs if job.seed is not None]
    assert [job.seed for job in seeded] == [42, 1337, 2025] and {job.code for job in seeded} == {"print('model')"}
    assert len(engine.make_record.calls) == 1
    submission, runs = engine.make_record.calls[0]
    assert submission.details["author"] == "Alice A." and [r.seed for r in runs] == [42, 1337, 2025]


def test_only_a_succeeded_run_of_the_caller_can_become_a_record(tmp_path):
    executor = Executor()
    executor.fail_with = RuntimeError("boom")
    config, store, engine, token = service(tmp_path, executor)
    bob = store.create_token("bob")
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        wait_for(client, token, "run-0", FAILED)
        refused = client.post("/runs/run-0/submit", json=BODY, headers=auth(token))
        assert refused.status_code == 409 and "only a succeeded run" in refused.json()["error"]
        assert client.post("/runs/run-0/submit", json=BODY, headers=auth(bob)).status_code == 404
        assert client.post("/runs/run-9/submit", json=BODY, headers=auth(token)).status_code == 404
        bad = client.post("/runs/run-0/submit", json={"name": "no author"}, headers=auth(token))
        assert bad.status_code == 422 and "author" in bad.json()["fields"]
        assert client.get("/submissions/sub-0", headers=auth(token)).status_code == 404
        assert client.get("/submissions", headers=auth(token)).json()["submissions"] == []


def test_the_seed_runs_fit_the_budget_all_or_none_is_queued(tmp_path):
    config, store, engine, token = service(tmp_path, budget=Budget(runs=3, hours=3.0))
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        wait_for(client, token, "run-0", SUCCEEDED)
        refused = client.post("/runs/run-0/submit", json=BODY, headers=auth(token))
        assert refused.status_code == 429 and refused.json()["limit"] == "runs"
        assert [run["run_id"] for run in client.get("/runs", headers=auth(token)).json()["runs"]] == ["run-0"]
        assert client.get("/submissions", headers=auth(token)).json()["submissions"] == []


def test_a_failed_seed_fails_the_submission_naming_it_and_nothing_is_assembled(tmp_path):
    class FailsSeed1337(Executor):
        def __call__(self, job: RunJob) -> RunResult:
            if job.seed == 1337:
                return RunResult(status=FAILED, reason="causality check failed")
            return super().__call__(job)

    config, store, engine, token = service(tmp_path, FailsSeed1337())
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        wait_for(client, token, "run-0", SUCCEEDED)
        client.post("/runs/run-0/submit", json=BODY, headers=auth(token))
        body = wait_submission(client, token, "sub-0")
    assert body["status"] == "failed" and body["reason"] == "seed 1337 (run-2) failed: causality check failed"
    assert engine.make_record.calls == []


def test_asking_again_while_it_runs_returns_the_same_submission(tmp_path):
    executor = Executor()
    config, store, engine, token = service(tmp_path, executor)
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        wait_for(client, token, "run-0", SUCCEEDED)
        executor.gate.clear()  # the seed runs wait
        first = client.post("/runs/run-0/submit", json=BODY, headers=auth(token)).json()
        again = client.post("/runs/run-0/submit", json=BODY, headers=auth(token)).json()
        assert (first["created"], again["created"]) == (True, False)
        assert again["submission_id"] == "sub-0" and len(client.get("/runs", headers=auth(token)).json()["runs"]) == 4
        executor.gate.set()
        assert wait_submission(client, token, "sub-0")["status"] == "judged"


def test_a_record_maker_that_raises_fails_the_submission_not_the_worker(tmp_path):
    maker = Maker()
    maker.fail_with = OSError("disk full")
    config, store, engine, token = service(tmp_path, maker=maker)
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        wait_for(client, token, "run-0", SUCCEEDED)
        client.post("/runs/run-0/submit", json=BODY, headers=auth(token))
        body = wait_submission(client, token, "sub-0")
        assert body["status"] == "failed" and body["reason"] == "assembling the record failed: OSError: disk full"
        client.post("/run", json={"train_code": "y"}, headers=auth(token))  # the worker goes on
        assert wait_for(client, token, "run-4", SUCCEEDED)["status"] == SUCCEEDED


def test_a_submission_whose_seeds_ended_while_the_service_was_down_is_decided_at_start(tmp_path):
    config, store, _, token = service(tmp_path)
    store.submit("alice", "x", None, None, config.run_limit_s, lambda usage: None)
    run = store.claim_next()
    store.finish(run.id, SUCCEEDED, "ok", 1.5, {"status": SUCCEEDED})
    submission, runs = store.submit_record("alice", 0, [1, 2, 3], {"author": "a"}, config.run_limit_s,
                                           lambda usage: None)
    for pending in runs:  # they ran and ended; then the service stopped before deciding
        store.claim_next()
        store.finish(pending.id, SUCCEEDED, "ok", 1.5, {"status": SUCCEEDED})
    maker = Maker()
    engine = Engine(config, Store(config.database), Executor(), make_record=maker)
    engine.start()
    try:
        assert engine.store.submission("alice", 0).status == "judged" and len(maker.calls) == 1
    finally:
        engine.stop()


def test_two_seeds_ending_at_once_decide_the_submission_once(tmp_path):
    config, store, _, _ = service(tmp_path)
    store.submit("alice", "x", None, None, config.run_limit_s, lambda usage: None)
    store.finish(store.claim_next().id, SUCCEEDED, "ok", 1.5, {"status": SUCCEEDED})
    submission, runs = store.submit_record("alice", 0, [1, 2], {"author": "a"}, config.run_limit_s,
                                           lambda usage: None)
    for pending in runs:
        store.claim_next()
        store.finish(pending.id, SUCCEEDED, "ok", 1.5, {"status": SUCCEEDED})
    maker = Maker()
    engine = Engine(config, Store(config.database), Executor(), make_record=maker)
    threads = [threading.Thread(target=engine._finished, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(maker.calls) == 1 and engine.store.submission("alice", 0).status == "judged"


# --- the real record maker on stored runs (the assembler and judge themselves: tests/test_service_record.py) -----

def stored_seed_runs(tmp_path, world, **overrides):
    """A store with a source run and a submission whose three seed runs ended with the results a runner keeps, their
    models where a local worker keeps them. -> (config, store, submission, runs)."""
    _, dataset, _ = world
    config = tiny_config(tmp_path, dataset, records_dir=tmp_path / "out")
    store = Store(config.database)
    store.create_token("alice")
    store.submit("alice", CODE, "byte trigram", None, config.run_limit_s, lambda usage: None)
    store.finish(store.claim_next().id, SUCCEEDED, "ok", 2.4, {"status": SUCCEEDED})
    submission, runs = store.submit_record("alice", 0, list(SEEDS), {"author": "Alice A.", "github_id": "alice"},
                                           config.run_limit_s, lambda usage: None)
    for run, seeded in zip(runs, honest_runs(world), strict=True):
        store.claim_next()
        result = {**seeded.result, **overrides}
        store.finish(run.id, SUCCEEDED, "scored by the service", result["val_bpb"], result)
        if "worker" not in overrides:
            (config.runs_dir / str(run.id)).mkdir(parents=True)
            seeded.model_path.rename(config.runs_dir / str(run.id) / "model.pt2")
    return config, store, store.submission("alice", 0), store.seed_runs(submission.id)


@pytest.fixture
def world(tmp_path):
    return record_world(tmp_path)


def test_the_record_maker_assembles_the_seed_runs_and_the_judge_passes_them(tmp_path, world):
    config, _, submission, runs = stored_seed_runs(tmp_path, world)
    status, reason, path, verdict = RecordMaker(config, today=lambda: dt.date(2026, 12, 3))(submission, runs)
    assert (status, reason) == ("judged", "the judge passed every check that applies"), verdict
    assert verdict["ok"] and Path(path).parent == config.record_root / "track_service_bytes"
    assert Path(path).name.startswith("2026-12-03_") and (Path(path) / "train.py").read_text() == CODE
    assert sorted(p.name for p in Path(path).glob("train_seed*.log")) == [
        "train_seed1337.log", "train_seed2025.log", "train_seed42.log"]


def test_runs_a_celery_worker_executed_count_the_model_size_it_measured(tmp_path, world):
    config, _, submission, runs = stored_seed_runs(tmp_path, world, worker="w1")
    assert all(seed_run(run, config).model_path is None for run in runs)
    status, _, _, verdict = RecordMaker(config)(submission, runs)
    assert status == "judged" and verdict["ok"]


def test_runs_that_cannot_make_an_honest_record_fail_the_submission_with_the_reason(tmp_path, world):
    config, _, submission, runs = stored_seed_runs(tmp_path, world)
    (config.runs_dir / str(runs[1].id) / "model.pt2").write_bytes(b"another model")
    status, reason, path, verdict = RecordMaker(config)(submission, runs)
    assert status == "failed" and reason.startswith("the record was not assembled: ") and "not the model" in reason
    assert path is None and verdict is None and not (config.record_root / "track_service_bytes").exists()
