"""The HTTP API (tools/service/api.py) through FastAPI's TestClient, with the engine's real queue, store and
workers but a stand-in executor (the real one is tests/test_service_runs.py): status codes and bodies of every
error, per-token run ids, idempotency, budgets, the status page, and a restart that keeps queued and finished runs
and fails the one whose worker died."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from tools.service.api import create_app
from tools.service.config import Budget, ServiceConfig
from tools.service.engine import INTERRUPTED, Engine
from tools.service.outcome import FAILED, SUCCEEDED
from tools.service.runner import RunJob, RunResult
from tools.service.store import Store


class Executor:
    """Finishes each run at once with val_bpb = 1 + number/100, or waits for `gate` when it is closed."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.jobs: list[RunJob] = []
        self.fail_with: Exception | None = None

    def __call__(self, job: RunJob) -> RunResult:
        self.jobs.append(job)
        self.gate.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        number = int(job.label.split("-")[1])
        return RunResult(status=SUCCEEDED, reason="scored by the service", val_bpb=1 + number / 100,
                         reported={"val_bpb": 0.5}, reported_val_bpb=0.5, reported_mismatch=True,
                         flags=["reported_val_bpb_differs"], steps=7, training_s=1.5, eval_s=2.0, wall_s=4.0,
                         output_tail=["hello"], evaluation={"checks": [{"id": "causality", "passed": True}]},
                         isolation="bubblewrap")


def make(tmp_path, executor=None, track=None, **overrides):
    values = dict(state_dir=tmp_path / "state", dataset_dir=tmp_path / "unused", time_budget_s=60.0, grace_s=10.0,
                  eval_allowance_s=50.0, budget=Budget(runs=50, hours=3.0))
    values.update(overrides)
    config = ServiceConfig(**values)
    store = Store(config.database)
    engine = Engine(config, store, executor or Executor(), track=track)
    return config, store, engine


@pytest.fixture()
def service(tmp_path):
    config, store, engine = make(tmp_path)
    tokens = {name: store.create_token(name) for name in ("alice", "bob")}
    with TestClient(create_app(config, store, engine)) as client:
        yield client, tokens, engine


def auth(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def wait_for(client, token, run_id, status, seconds=10.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        body = client.get(f"/runs/{run_id}", headers=auth(token)).json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_run_is_accepted_queued_run_and_reported(service):
    client, tokens, _ = service
    response = client.post("/run", json={"train_code": "import prepare\n", "name": "first"},
                           headers=auth(tokens["alice"]))
    assert response.status_code == 202
    body = response.json()
    assert body == {"run_id": "run-0", "status": "queued", "queue_position": 1}
    done = wait_for(client, tokens["alice"], "run-0", SUCCEEDED)
    assert done["status"] == SUCCEEDED and done["val_bpb"] == 1.0 and done["name"] == "first"
    assert done["reported_val_bpb"] == 0.5 and done["reported_mismatch"] and done["reported"] == {"val_bpb": 0.5}
    assert done["steps"] == 7 and done["training_seconds"] == 1.5 and done["eval_seconds"] == 2.0
    assert done["stderr_tail"] == ["hello"] and done["checks"][0]["id"] == "causality"
    assert done["created_at"].endswith("Z") and done["finished_at"] and done["queue_position"] is None
    assert done["code_bytes"] == len("import prepare\n") and len(done["code_sha256"]) == 64


def test_run_ids_are_per_token_and_private(service):
    client, tokens, _ = service
    for token in (tokens["alice"], tokens["alice"], tokens["bob"]):
        client.post("/run", json={"train_code": "x = 1"}, headers=auth(token))
    alice = client.get("/runs", headers=auth(tokens["alice"])).json()
    bob = client.get("/runs", headers=auth(tokens["bob"])).json()
    assert [r["run_id"] for r in alice["runs"]] == ["run-0", "run-1"] and alice["owner"] == "alice"
    assert [r["run_id"] for r in bob["runs"]] == ["run-0"]
    assert client.get("/runs/run-1", headers=auth(tokens["bob"])).status_code == 404
    missing = client.get("/runs/banana", headers=auth(tokens["alice"]))
    assert missing.status_code == 404 and "run-0" in missing.json()["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_requests_without_a_valid_token_get_401(service, headers):
    client, _, _ = service
    for method, path, kwargs in [("post", "/run", {"json": {"train_code": "x"}}), ("get", "/runs", {}),
                                 ("get", "/runs/run-0", {}), ("get", "/budget", {})]:
        response = getattr(client, method)(path, headers=headers, **kwargs)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert "token" in response.json()["error"]


def test_code_over_the_limit_gets_413(service):
    client, tokens, _ = service
    big = "#" * (256 * 1024 + 1)
    response = client.post("/run", json={"train_code": big}, headers=auth(tokens["alice"]))
    assert response.status_code == 413 and response.json()["limit_bytes"] == 256 * 1024
    assert client.post("/run", json={"train_code": big[:-1]}, headers=auth(tokens["alice"])).status_code == 202
    multibyte = "é" * (128 * 1024 + 1)  # 2 bytes each in UTF-8: bytes count, not characters
    assert client.post("/run", json={"train_code": multibyte}, headers=auth(tokens["alice"])).status_code == 413
    huge = client.post("/run", content=b'{"train_code": "' + b"x" * (3 * 1024 * 1024) + b'"}',
                       headers=auth(tokens["alice"], **{"Content-Type": "application/json"}))
    assert huge.status_code == 413 and "error" in huge.json()


@pytest.mark.parametrize("body, field", [
    ({}, "train_code"), ({"train_code": 5}, "train_code"), ({"train_code": "x", "name": "n" * 201}, "name"),
    ({"train_code": None}, "train_code"),
])
def test_bad_bodies_get_422_naming_the_field(service, body, field):
    client, tokens, _ = service
    response = client.post("/run", json=body, headers=auth(tokens["alice"]))
    assert response.status_code == 422
    assert field in response.json()["fields"] and field in response.json()["error"]


def test_malformed_json_gets_422(service):
    client, tokens, _ = service
    response = client.post("/run", content=b'{"train_code": ', headers=auth(tokens["alice"], **{
        "Content-Type": "application/json"}))
    assert response.status_code == 422 and response.json()["error"].startswith("invalid request")


def test_an_idempotency_key_retry_never_starts_a_second_run(service):
    client, tokens, engine = service
    headers = auth(tokens["alice"], **{"Idempotency-Key": "try-1"})
    first = client.post("/run", json={"train_code": "x = 1"}, headers=headers)
    retry = client.post("/run", json={"train_code": "x = 1"}, headers=headers)
    assert first.status_code == retry.status_code == 202 and first.json()["run_id"] == retry.json()["run_id"]
    conflict = client.post("/run", json={"train_code": "x = 2"}, headers=headers)
    assert conflict.status_code == 409 and "different code" in conflict.json()["error"]
    wait_for(client, tokens["alice"], "run-0", SUCCEEDED)
    assert len(client.get("/runs", headers=auth(tokens["alice"])).json()["runs"]) == 1
    assert len(engine.execute.jobs) == 1


def test_over_the_run_budget_gets_429_naming_the_limit_and_reset(tmp_path):
    config, store, engine = make(tmp_path, budget=Budget(runs=2, hours=100, window_hours=24))
    token = store.create_token("alice")
    with TestClient(create_app(config, store, engine)) as client:
        for _ in range(2):
            assert client.post("/run", json={"train_code": "x"}, headers=auth(token)).status_code == 202
        refused = client.post("/run", json={"train_code": "x"}, headers=auth(token))
        assert refused.status_code == 429
        body = refused.json()
        assert body["limit"] == "runs" and body["resets_at"].endswith("Z") and "2 runs per 24 h" in body["error"]
        assert 0 < int(refused.headers["retry-after"]) <= 24 * 3600 and body["budget"]["runs"]["remaining"] == 0
        budget = client.get("/budget", headers=auth(token)).json()
        assert budget["can_submit"] is False and budget["limited_by"] == "runs" and budget["resets_at"]


def test_over_the_hour_budget_gets_429(tmp_path):
    config, store, engine = make(tmp_path, budget=Budget(runs=100, hours=0.05, window_hours=24))  # 180 s
    token = store.create_token("alice")
    with TestClient(create_app(config, store, engine)) as client:
        executor = engine.execute
        executor.gate.clear()  # the first run stays running: its whole 120 s limit is reserved
        assert client.post("/run", json={"train_code": "x"}, headers=auth(token)).status_code == 202
        refused = client.post("/run", json={"train_code": "x"}, headers=auth(token))
        assert refused.status_code == 429 and refused.json()["limit"] == "hours"
        executor.gate.set()


def test_budget_endpoint(service):
    client, tokens, _ = service
    client.post("/run", json={"train_code": "x"}, headers=auth(tokens["alice"]))
    body = client.get("/budget", headers=auth(tokens["alice"])).json()
    assert body["owner"] == "alice" and body["runs"]["used"] == 1 and body["runs"]["limit"] == 50
    assert body["hours"]["limit"] == 3.0 and body["window_hours"] == 24.0 and body["run_reserves_seconds"] == 120.0


def test_queue_positions_and_the_status_page(tmp_path):
    config, store, engine = make(tmp_path)
    token = store.create_token("<script>alice</script>")
    with TestClient(create_app(config, store, engine)) as client:
        engine.execute.gate.clear()
        accepted = [client.post("/run", json={"train_code": "x", "name": f"<b>{i}</b>"}, headers=auth(token)).json()
                    for i in range(3)]
        wait_for(client, token, "run-0", "running")
        assert [client.get(f"/runs/{a['run_id']}", headers=auth(token)).json()["queue_position"]
                for a in accepted] == [None, 1, 2]
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script>alice" not in page.text and "&lt;script&gt;alice" in page.text
        assert "&lt;b&gt;1&lt;/b&gt;" in page.text and "1 running; 2 queued" in page.text
        engine.execute.gate.set()
        wait_for(client, token, "run-2", SUCCEEDED)
        assert "Best per participant" in client.get("/").text and "1.0000" in client.get("/").text
        assert client.get("/docs").status_code == 200 and "/run" in client.get("/openapi.json").json()["paths"]


def test_a_worker_that_raises_fails_its_run_with_the_reason(tmp_path):
    executor = Executor()
    executor.fail_with = RuntimeError("boom")
    config, store, engine = make(tmp_path, executor)
    token = store.create_token("alice")
    with TestClient(create_app(config, store, engine)) as client:
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        body = wait_for(client, token, "run-0", FAILED)
        assert body["status"] == FAILED and body["reason"] == "the worker died: RuntimeError: boom"


def test_a_restart_keeps_queued_and_finished_runs_and_fails_the_interrupted_one(tmp_path):
    config, store, engine = make(tmp_path)
    token = store.create_token("alice")
    with TestClient(create_app(config, store, engine)) as client:  # a first life: one run finishes
        client.post("/run", json={"train_code": "x"}, headers=auth(token))
        wait_for(client, token, "run-0", SUCCEEDED)
    # The process dies with run-1 running and run-2 queued (no engine: nothing moves them).
    store.submit("alice", "y", None, None, config.run_limit_s, lambda usage: None)
    store.submit("alice", "z", None, None, config.run_limit_s, lambda usage: None)
    store.claim_next()
    config2, store2, engine2 = make(tmp_path)
    with TestClient(create_app(config2, store2, engine2)) as client:
        assert client.get("/runs/run-0", headers=auth(token)).json()["status"] == SUCCEEDED
        interrupted = client.get("/runs/run-1", headers=auth(token)).json()
        assert interrupted["status"] == FAILED and interrupted["reason"] == INTERRUPTED
        assert wait_for(client, token, "run-2", SUCCEEDED)["status"] == SUCCEEDED
        assert [job.label for job in engine2.execute.jobs] == ["run-2"]
