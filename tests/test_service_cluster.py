"""The run service on several workers (tools/service/cluster.py): Celery through a real redis-server on a loopback
port, worker processes started as a participant's machine would start them, and the head's engine in this process.

Two workers run two runs at once; a worker killed mid-run fails its run with the reason; a head that restarts
follows runs already running instead of failing them; a message delivered twice runs once; a worker with other data
scores nothing. The transitions themselves are a pure function, tested without a broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_service_kit import honest_code, tiny_config, tiny_dataset
from tools.service.cluster import (
    ClusterEngine,
    Step,
    WorkerContext,
    dataset_fingerprint,
    next_step,
    run_job,
)
from tools.service.outcome import FAILED, QUEUED, RUNNING, SUCCEEDED
from tools.service.runner import RunJob, RunResult
from tools.service.store import Store

ROOT = Path(__file__).resolve().parents[1]
STALE = 60.0


# --- the pure part ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "state", "info", "quiet", "action"), [
    (QUEUED, "PENDING", None, 1e6, "wait"),  # waiting in the queue is never stale
    (QUEUED, "STARTED", {"worker": "w1", "beat": 0}, 0.0, "start"),
    (RUNNING, "STARTED", {"worker": "w1", "beat": 3}, 10.0, "wait"),
    (RUNNING, "STARTED", {"worker": "w1", "beat": 3}, STALE + 1, "fail"),  # heartbeat stopped
    (RUNNING, "PENDING", None, STALE + 1, "fail"),  # the broker lost it
    (RUNNING, "PENDING", None, 1.0, "wait"),
    (RUNNING, "SUCCESS", {"status": "succeeded", "reason": "ok", "val_bpb": 2.0}, 0.0, "finish"),
    (QUEUED, "SUCCESS", {"status": "failed", "reason": "x"}, 0.0, "finish"),
    (RUNNING, "SUCCESS", "not a result", 0.0, "fail"),
    (RUNNING, "FAILURE", RuntimeError("boom"), 0.0, "fail"),
    (RUNNING, "REVOKED", None, 0.0, "fail"),
])
def test_what_a_task_state_means_for_its_run(status, state, info, quiet, action):
    assert next_step(status, state, info, quiet, STALE).action == action


def test_a_stale_worker_and_a_failed_task_give_their_reasons():
    stale = next_step(RUNNING, "STARTED", {"worker": "gpu-7", "beat": 9}, 75.0, STALE)
    assert stale == Step("fail", "gpu-7", None, stale.reason) and "gpu-7 stopped answering" in stale.reason
    lost = next_step(RUNNING, "FAILURE", RuntimeError("Worker exited prematurely: signal 9 (SIGKILL)"), 0.0, STALE)
    assert "RuntimeError: Worker exited prematurely" in lost.reason


def test_a_worker_with_another_dataset_scores_nothing(tmp_path):
    executed = []
    context = WorkerContext(tiny_config(tmp_path, tmp_path), "w1", 60.0, "a" * 64,
                            lambda job, config: executed.append(job) or RunResult(SUCCEEDED, "ok", 1.0))
    beats = []
    job = {"run_id": 1, "label": "run-0", "owner": "o", "code": "", "time_budget_s": 1, "grace_s": 1,
           "eval_allowance_s": 1, "dataset_sha256": "b" * 64}
    result = run_job(context, job, beats.append)
    assert result["status"] == FAILED and "another dataset" in result["reason"] and not executed
    assert beats == [{"worker": "w1", "beat": 0}]  # it did say it started, so the head shows where it failed


def test_a_job_runs_with_the_heads_limits_and_beats_while_it_runs(tmp_path):
    seen = {}

    def execute(job: RunJob, config) -> RunResult:
        seen.update(job=job, budget=config.time_budget_s, allowance=config.eval_allowance_s)
        time.sleep(0.35)
        return RunResult(SUCCEEDED, "ok", 1.25)

    context = WorkerContext(tiny_config(tmp_path, tmp_path, time_budget_s=99.0), "w1", 0.1, "f" * 64, execute)
    beats = []
    job = {"run_id": 7, "label": "run-3", "owner": "alice", "code": "print(1)", "time_budget_s": 2.5,
           "grace_s": 5, "eval_allowance_s": 7, "dataset_sha256": "f" * 64}
    result = run_job(context, job, beats.append)
    assert result["status"] == SUCCEEDED and result["val_bpb"] == 1.25 and result["worker"] == "w1"
    assert seen["job"] == RunJob(7, "run-3", "alice", "print(1)") and (seen["budget"], seen["allowance"]) == (2.5, 7)
    assert len(beats) >= 3 and [b["beat"] for b in beats] == list(range(len(beats)))


# --- a real broker, real worker processes ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing: `make redis` (make test) installs Debian's")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture()
def flushed(broker):
    import redis

    redis.Redis.from_url(broker).flushall()
    return broker


FAKE_WORKER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from tools.service.cluster import WorkerContext, make_app, run_worker
    from tools.service.config import ServiceConfig
    from tools.service.runner import RunResult

    broker, name, fingerprint, sleep_s, log = sys.argv[1:6]

    def execute(job, config):
        with open(log, "a") as sink:
            sink.write(f"{name} {job.id} {job.label}\\n")
        time.sleep(float(sleep_s))
        return RunResult("succeeded", "ok", val_bpb=1.5, steps=job.id)

    config = ServiceConfig(state_dir=Path(log).parent / name, dataset_dir=Path(log).parent)
    run_worker(make_app(broker), WorkerContext(config, name, 0.2, fingerprint, execute), loglevel="WARNING")
''')


class Workers:
    """Worker processes, each in its own process group (so a test can kill one whole, as a machine dies)."""

    def __init__(self, broker: str, folder: Path):
        self.broker, self.folder = broker, folder
        self.processes: dict[str, subprocess.Popen] = {}

    def start_fake(self, name: str, fingerprint: str, sleep_s: float) -> None:
        self._start(name, [sys.executable, "-c", FAKE_WORKER, self.broker, name, fingerprint, str(sleep_s),
                           str(self.folder / "executed.log")])

    def start_real(self, name: str, dataset: Path) -> None:
        self._start(name, [sys.executable, "-m", "tools.submit.cli", "serve", "--state-dir",
                           str(self.folder / name), "worker", "--broker", self.broker, "--name", name,
                           "--dataset-dir", str(dataset), "--heartbeat", "0.5"])

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / f"{name}.out", "w")
        self.processes[name] = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def wait_ready(self, app, seconds: float = 90.0) -> None:
        deadline = time.monotonic() + seconds
        wanted = set(self.processes)
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            answered = {name.split("@")[0] for reply in replies for name in reply}
            if wanted <= answered:
                return
            for name, process in self.processes.items():
                if process.poll() is not None:
                    pytest.fail(f"worker {name} exited: {(self.folder / f'{name}.out').read_text()[-2000:]}")
        pytest.fail(f"workers {sorted(wanted)} did not answer within {seconds:.0f} s")

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture()
def cluster(flushed, tmp_path):
    dataset = tiny_dataset(tmp_path)
    config = tiny_config(tmp_path, dataset)
    store = Store(config.database)
    store.create_token("alice")
    store.create_token("bob")
    workers = Workers(flushed, tmp_path)
    engines: list[ClusterEngine] = []

    def head(**options) -> ClusterEngine:
        engine = ClusterEngine(config, store, flushed, poll_s=0.1, **options)
        engine.start()
        engines.append(engine)
        return engine

    yield head, workers, store, dataset_fingerprint(dataset), dataset
    for engine in engines:
        engine.stop()
    workers.stop()


def wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


def finished(store: Store, owner: str, number: int):
    run = store.get(owner, number)
    return run if run is not None and run.status not in (QUEUED, RUNNING) else None


@pytest.mark.slow
def test_two_workers_run_two_real_runs_at_once_in_their_sandboxes(cluster):
    head, workers, store, _, dataset = cluster
    workers.start_real("w1", dataset)
    workers.start_real("w2", dataset)
    engine = head()
    workers.wait_ready(engine.app)
    engine.submit("alice", honest_code(), "a", None)
    engine.submit("bob", honest_code(), "b", None)
    runs = [wait_until(lambda o=o: finished(store, o, 0), 240, f"{o}'s run") for o in ("alice", "bob")]
    for run in runs:
        assert run.status == SUCCEEDED, run.reason
        assert run.val_bpb is not None and 0 < run.val_bpb < 9 and run.result["evaluation"]["passed"]
        assert run.result["isolation"] and not run.result["reported_mismatch"]
    assert {run.result["worker"] for run in runs} == {"w1", "w2"}
    assert max(r.started_at for r in runs) < min(r.finished_at for r in runs), "the runs did not overlap"


def test_a_worker_killed_mid_run_fails_its_run_with_the_reason(cluster):
    head, workers, store, fingerprint, _ = cluster
    workers.start_fake("doomed", fingerprint, sleep_s=60)
    engine = head(stale_after_s=2.0)
    workers.wait_ready(engine.app)
    engine.submit("alice", "print(1)", None, None)
    wait_until(lambda: (r := store.get("alice", 0)) is not None and r.status == RUNNING, 30, "the run to start")
    assert engine.running == {store.get("alice", 0).id: "doomed"}
    workers.kill("doomed")
    run = wait_until(lambda: finished(store, "alice", 0), 30, "the run to fail")
    assert run.status == FAILED and "worker doomed stopped answering" in run.reason
    assert engine.running == {}


def test_a_restarted_head_follows_the_runs_its_workers_kept_running(cluster):
    head, workers, store, fingerprint, _ = cluster
    workers.start_fake("w1", fingerprint, sleep_s=3)
    first = head()
    workers.wait_ready(first.app)
    first.submit("alice", "print(1)", None, None)
    first.submit("alice", "print(2)", None, None)  # queued behind it on the only worker
    wait_until(lambda: store.get("alice", 0).status == RUNNING, 30, "the first run to start")
    first.stop()
    second = head()  # a new process on the same database: nothing is failed, both runs finish
    runs = [wait_until(lambda n=n: finished(store, "alice", n), 60, f"run-{n}") for n in (0, 1)]
    assert [run.status for run in runs] == [SUCCEEDED, SUCCEEDED] and second is not first
    executed = (workers.folder / "executed.log").read_text().splitlines()
    assert [line.split()[2] for line in executed] == ["run-0", "run-1"]


def test_a_message_delivered_twice_runs_once(cluster):
    head, workers, store, fingerprint, _ = cluster
    engine = head()
    engine.submit("bob", "print(1)", None, None)
    engine._send(store.get("bob", 0))  # as after a head crash between sending and knowing it sent
    workers.start_fake("w1", fingerprint, sleep_s=0.5)
    workers.wait_ready(engine.app)
    run = wait_until(lambda: finished(store, "bob", 0), 60, "the run")
    assert run.status == SUCCEEDED
    import redis

    queue = redis.Redis.from_url(workers.broker)
    wait_until(lambda: queue.llen("pg-runs") == 0, 30, "the second copy to be consumed")
    time.sleep(1.0)  # had the copy run, it would have logged within its 0.5 s
    assert len((workers.folder / "executed.log").read_text().splitlines()) == 1


def test_runs_queue_in_order_and_an_idle_worker_never_waits_behind_a_busy_one(cluster):
    head, workers, store, fingerprint, _ = cluster
    workers.start_fake("slow", fingerprint, sleep_s=4)
    engine = head()
    workers.wait_ready(engine.app)
    engine.submit("alice", "print(0)", None, None)
    wait_until(lambda: store.get("alice", 0).status == RUNNING, 30, "run-0 on the slow worker")
    engine.submit("alice", "print(1)", None, None)
    workers.start_fake("fresh", fingerprint, sleep_s=0.2)
    workers.wait_ready(engine.app)
    run = wait_until(lambda: finished(store, "alice", 1), 30, "run-1")
    assert run.result["worker"] == "fresh"
    assert store.get("alice", 0).status == RUNNING, "run-1 should not have waited for run-0"


def test_a_submission_is_kept_queued_while_the_broker_is_away_and_sent_when_it_is_back(tmp_path):
    dataset = tiny_dataset(tmp_path)
    config = tiny_config(tmp_path, dataset)
    store = Store(config.database)
    store.create_token("alice")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    engine = ClusterEngine(config, store, url, poll_s=0.1)
    started = time.monotonic()
    submitted = engine.submit("alice", "print(1)", None, None)
    assert time.monotonic() - started < 5, "POST /run must not hang on an absent broker"
    assert submitted.created and store.get("alice", 0).status == QUEUED and engine._sent == set()
    engine.start()
    server = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save",
                               "", "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    workers = Workers(url, tmp_path)
    try:
        workers.start_fake("late", dataset_fingerprint(dataset), sleep_s=0.2)
        run = wait_until(lambda: finished(store, "alice", 0), 90, "the run once the broker is back")
        assert run.status == SUCCEEDED and run.result["worker"] == "late"
    finally:
        engine.stop()
        workers.stop()
        server.terminate()
        server.wait(10)


def test_make_test_installs_the_broker_these_tests_start():
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest: $(VENV)/.installed sandbox redis\n" in makefile
    assert "apt-get install -y -qq redis-server" in makefile
