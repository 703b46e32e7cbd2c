"""Workers on other processes or machines: runs go through Celery, with Redis as broker and result store.

    head    submit serve --broker redis://HOST:6379/0     API, database, budgets, MLflow; sends runs, follows them
    worker  submit serve worker --broker redis://HOST:6379/0   (one per machine) runs and scores one run at a time

Why Celery (with Redis) and not Ray or Dramatiq: a run is one long task, and what the head needs from the engine is
a durable FIFO queue, at most one run per worker, JSON-only messages, and each task's state readable by id (queued,
started, its result or its error). Celery has all of these built in: `acks_late` with a prefetch of one (an idle
worker never waits behind a busy one's reserved message), a result backend keyed by task id, and a prefork pool
that reports a killed child as WorkerLostError. Dramatiq has no task state without extra middleware; Ray brings a
cluster runtime (object store, scheduler, dashboard) this service has no use for. Redis is one Debian package.

The protocol is Celery's, not ours: the head sends task "pg.run" with a JSON job (the code and the run's limits)
under a task id made from the database's instance id and the run's id, and polls the task's state:
- STARTED, set by the worker with a heartbeat counter it bumps every few seconds: the run is running there;
- SUCCESS: the worker's RunResult (status, service val_bpb, checks, output tail), recorded as is;
- FAILURE: failed, with the worker's error (a killed prefork child is WorkerLostError);
- a heartbeat that has not changed for `stale_after_s` (measured on the head's clock, so machines' clocks do not
  matter): failed, the worker is gone.
Workers outlive the head: after a restart the head follows its running runs again instead of failing them, and
re-sends queued runs it cannot see started; a worker ignores a task whose id has already started or finished, so a
message sent twice never runs twice. A worker holds its own dataset and scores with it; the job carries the head's
dataset fingerprint and a worker with other data fails the run rather than score it on other text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from tools.service.config import ServiceConfig
from tools.service.engine import Engine, RecordMaker, Tracker
from tools.service.outcome import FAILED, QUEUED, RUNNING
from tools.service.runner import RunJob, RunResult
from tools.service.store import Run, Store

LOG = logging.getLogger("pg.service.cluster")
TASK_NAME = "pg.run"
QUEUE = "pg-runs"
DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_STALE_AFTER_S = 60.0
RESULT_KEEP_S = 7 * 24 * 3600  # results stay readable this long: a head that was down for days still finds them


def make_app(broker_url: str, backend_url: str | None = None, *, head: bool = False):
    """The Celery app both sides use: JSON only (nothing is ever unpickled), one unacknowledged run per worker.
    The head's gives up on an absent broker in about a second (a POST /run must not hang on it: the run stays
    queued and is sent later); a worker's keeps Celery's patient retries."""
    from celery import Celery

    app = Celery("pg-service", broker=broker_url, backend=backend_url or broker_url)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, worker_prefetch_multiplier=1, task_reject_on_worker_lost=False,
        task_default_queue=QUEUE, result_expires=RESULT_KEEP_S, broker_connection_retry_on_startup=True,
        # A message is handed to another worker only when unacknowledged this long: longer than any run.
        broker_transport_options={"visibility_timeout": 24 * 3600}, worker_hijack_root_logger=False,
        worker_send_task_events=False, task_track_started=False)
    if head:
        app.conf.update(
            broker_connection_timeout=1.0,
            task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5,
                                       "interval_max": 0.5},
            result_backend_transport_options={"retry_policy": {"max_retries": 1, "interval_start": 0,
                                                               "interval_step": 0.5, "interval_max": 0.5}})
    return app


def dataset_fingerprint(dataset_dir: Path) -> str:
    """sha256 of the dataset's documents (name, split, sha256 of the bytes): equal on head and worker or no run."""
    manifest = json.loads((Path(dataset_dir) / "manifest.json").read_text())
    documents = sorted((d["name"], d["split"], d["sha256"]) for d in manifest["documents"])
    return hashlib.sha256(json.dumps(documents).encode()).hexdigest()


def job_message(run: Run, config: ServiceConfig, fingerprint: str) -> dict:
    return {"run_id": run.id, "label": run.label, "owner": run.owner, "code": run.code,
            "time_budget_s": config.time_budget_s, "grace_s": config.grace_s,
            "eval_allowance_s": config.eval_allowance_s, "dataset_sha256": fingerprint, "seed": run.seed}


# --- the head: what a task's state means for its run (pure) ----------------------------------------------------

class Step(NamedTuple):
    action: str  # "wait", "start", "finish" or "fail"
    worker: str = ""
    result: dict | None = None
    reason: str = ""


def next_step(status: str, state: str, info: object, quiet_s: float, stale_after_s: float) -> Step:
    """What to do with a queued or running run given its task's state and payload, and how long (on the head's
    clock) that state and payload have not changed."""
    worker = str(info.get("worker", "")) if isinstance(info, dict) else ""
    if state == "SUCCESS":
        if isinstance(info, dict) and isinstance(info.get("status"), str) and isinstance(info.get("reason"), str):
            return Step("finish", worker, info)
        return Step("fail", reason="the worker returned no result")
    if state == "FAILURE":
        return Step("fail", reason=f"the worker failed: {type(info).__name__}: {info}"[:500])
    if state == "REVOKED":
        return Step("fail", reason="the run was revoked on the worker")
    if state == "STARTED":
        if quiet_s > stale_after_s:
            return Step("fail", worker, reason=f"worker {worker or '?'} stopped answering: no heartbeat for "
                                               f"{quiet_s:.0f} s; nothing was scored (submit it again)")
        return Step("start", worker) if status == QUEUED else Step("wait", worker)
    if state == "PENDING" and status == RUNNING and quiet_s > stale_after_s:
        return Step("fail", reason="the broker no longer knows this running run (its state was lost); nothing was "
                                   "scored (submit it again)")
    return Step("wait", worker)


@dataclass
class Seen:
    state: str
    payload: str
    since: float  # monotonic, on the head


class ClusterEngine(Engine):
    """The Engine with its runs executed by Celery workers. Submissions, budgets and idempotency are the Engine's."""

    def __init__(self, config: ServiceConfig, store: Store, broker_url: str, *, track: Tracker | None = None,
                 clock: Callable[[], float] = time.time, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 poll_s: float = 0.5, app=None, make_record: RecordMaker | None = None):
        super().__init__(config, store, execute=None, clock=clock, track=track, make_record=make_record)
        self.app = app or make_app(broker_url, head=True)
        self.broker_url = broker_url
        self.stale_after_s, self.poll_s = stale_after_s, poll_s
        self.instance = store.instance_id()
        self.fingerprint = dataset_fingerprint(config.dataset_dir)
        self._sent: set[int] = set()
        self._seen: dict[int, Seen] = {}

    def task_id(self, run: Run) -> str:
        return f"pg-{self.instance}-{run.id}"

    def start(self) -> list[Run]:
        """Follow the runs in flight (workers outlive the head: nothing is failed here)."""
        self.resume_submissions()
        thread = threading.Thread(target=self._monitor, name="cluster-monitor", daemon=True)
        thread.start()
        self._threads.append(thread)
        return []

    def _queued(self, runs: list[Run]) -> None:
        for run in runs:
            try:
                self._send(run)
            except Exception as problem:  # the broker is down: the run stays queued and the monitor retries
                LOG.warning("run %s of %s: not sent yet (%s: %s)", run.label, run.owner, type(problem).__name__,
                            problem)

    def _send(self, run: Run) -> None:
        self.app.send_task(TASK_NAME, args=[job_message(run, self.config, self.fingerprint)],
                           task_id=self.task_id(run), queue=QUEUE)
        self._sent.add(run.id)

    def _monitor(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as problem:  # the broker may be away for a while; keep following
                LOG.warning("cluster monitor: %s: %s", type(problem).__name__, problem)
            self._stop.wait(self.poll_s)

    def poll_once(self) -> None:
        """One look at every queued and running run's task."""
        now = time.monotonic()
        for run in self.store.active():
            meta = self.app.backend.get_task_meta(self.task_id(run))
            state, info = meta.get("status", "PENDING"), meta.get("result")
            if run.status == QUEUED and state == "PENDING" and run.id not in self._sent:
                self._send(run)  # queued before a restart, or while the broker was away
            payload = json.dumps(info, sort_keys=True, default=repr)
            seen = self._seen.get(run.id)
            if seen is None or (seen.state, seen.payload) != (state, payload):
                seen = self._seen[run.id] = Seen(state, payload, now)
            self._apply(run, next_step(run.status, state, info, now - seen.since, self.stale_after_s))

    def _apply(self, run: Run, step: Step) -> None:
        if step.worker and step.action in ("start", "wait") and run.status in (QUEUED, RUNNING):
            if step.action == "start":
                self.store.mark_running(run.id)
            self.running[run.id] = step.worker
        if step.action not in ("finish", "fail"):
            return
        if run.status == QUEUED:
            self.store.mark_running(run.id)  # finished between two looks: it did run
        if step.action == "finish":
            result = step.result
            self.store.finish(run.id, result["status"], result["reason"], result.get("val_bpb"), result)
        else:
            LOG.warning("run %s of %s: %s", run.label, run.owner, step.reason)
            self.store.finish(run.id, FAILED, step.reason, None, None)
        self.running.pop(run.id, None)
        self._seen.pop(run.id, None)
        self._finished(run)


# --- the worker ------------------------------------------------------------------------------------------------

@dataclass
class WorkerContext:
    config: ServiceConfig
    name: str
    heartbeat_s: float
    fingerprint: str
    execute: Callable[[RunJob, ServiceConfig], RunResult]


def sandbox_executor(config: ServiceConfig) -> Callable[[RunJob, ServiceConfig], RunResult]:
    """Runs a job exactly as the one-machine service does, with this worker's dataset loaded once."""
    from tools.service.dataset import train_dir, val_bytes
    from tools.service.evaluation import eval_layout
    from tools.service.runner import execute_run

    layout = eval_layout(val_bytes(config.dataset_dir))
    training = train_dir(config.dataset_dir)

    def execute(job: RunJob, run_config: ServiceConfig) -> RunResult:
        return execute_run(job, run_config, layout, training,
                           progress=lambda line: LOG.info("%s %s: %s", job.owner, job.label, line))

    return execute


def run_job(context: WorkerContext, job: dict, beat: Callable[[dict], None]) -> dict:
    """Execute one job message; `beat(meta)` publishes the STARTED state (called at once, then every heartbeat)."""
    meta = {"worker": context.name, "beat": 0}
    beat(dict(meta))
    if job.get("dataset_sha256") != context.fingerprint:
        result = RunResult(FAILED, f"worker {context.name} holds another dataset than the service "
                                   f"({context.fingerprint[:12]} vs {str(job.get('dataset_sha256'))[:12]}); "
                                   "nothing was scored")
        return {**result.to_dict(), "worker": context.name}
    config = replace(context.config, time_budget_s=float(job["time_budget_s"]), grace_s=float(job["grace_s"]),
                     eval_allowance_s=float(job["eval_allowance_s"]))
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(context.heartbeat_s):
            meta["beat"] += 1
            try:
                beat(dict(meta))
            except Exception as problem:  # the broker blinked: the next beat tries again
                LOG.warning("heartbeat: %s", problem)

    thread = threading.Thread(target=heartbeat, name="heartbeat", daemon=True)
    thread.start()
    try:
        seed = job.get("seed")
        result = context.execute(RunJob(int(job["run_id"]), str(job["label"]), str(job["owner"]), str(job["code"]),
                                        None if seed is None else int(seed)), config)
    finally:
        done.set()
        thread.join()
    return {**result.to_dict(), "worker": context.name}


def register_worker_task(app, context: WorkerContext) -> None:
    from celery.exceptions import Ignore

    @app.task(name=TASK_NAME, bind=True, acks_late=True)
    def pg_run(task, job: dict) -> dict:
        if app.backend.get_task_meta(task.request.id).get("status", "PENDING") != "PENDING":
            raise Ignore()  # this run was started by another delivery of the same message
        return run_job(context, job, lambda meta: task.update_state(state="STARTED", meta=meta))


def default_worker_name() -> str:
    return f"pg-worker-{socket.gethostname()}"


def run_worker(app, context: WorkerContext, loglevel: str = "INFO") -> None:
    """Block, running one job at a time from the queue (a prefork child per job's process, so a dead one is seen)."""
    register_worker_task(app, context)
    app.worker_main(["worker", f"--loglevel={loglevel}", "--concurrency=1", "--pool=prefork",
                     f"--hostname={context.name}@%h", f"--queues={QUEUE}", "--without-gossip", "--without-mingle"])
