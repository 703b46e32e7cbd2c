"""The queue: submissions (budget, idempotency, numbering, all in one transaction), worker threads that run them one
at a time each, and recovery after a restart.

A run's worker is a thread of the service process, and its sandboxed child dies with the process
(bubblewrap's --die-with-parent). So after a restart, a run still marked `running` lost its worker: it is failed
with that reason. Queued runs are kept and start in order. A worker that raises fails its run with the error
instead of dying silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tools.service import budget as budgets
from tools.service.budget import BudgetState, Usage
from tools.service.config import ServiceConfig
from tools.service.outcome import FAILED, FINISHED, SUCCEEDED
from tools.service.runner import RunJob, RunResult
from tools.service.store import Run, Store, Submission, Submitted

LOG = logging.getLogger("pg.service")
INTERRUPTED = ("the service stopped while this run was running and its worker died with it; nothing was scored "
               "(submit it again)")

Executor = Callable[[RunJob], RunResult]
Tracker = Callable[[Run], object]  # logs a finished run to MLflow (tools.service.tracking.track_run)
# Turns a submission whose seed runs all succeeded into a judged record (tools.service.submission.RecordMaker):
# returns (status "judged" or "failed", one-line reason, the record folder or None, the verdict or None).
RecordMaker = Callable[[Submission, list[Run]], tuple[str, str, "str | None", "dict | None"]]
JUDGED, SUBMISSION_FAILED = "judged", "failed"


class OverBudget(Exception):
    def __init__(self, state: BudgetState):
        super().__init__(state.message)
        self.state = state


class SandboxExecutor:
    """The real executor: each job through tools.service.runner.execute_run with the dataset loaded once."""

    def __init__(self, config: ServiceConfig):
        from tools.service.dataset import train_dir, val_bytes
        from tools.service.evaluation import eval_layout

        self.config = config
        self.layout = eval_layout(val_bytes(config.dataset_dir))
        self.train_dir = train_dir(config.dataset_dir)

    def __call__(self, job: RunJob) -> RunResult:
        from tools.service.runner import execute_run

        return execute_run(job, self.config, self.layout, self.train_dir,
                           progress=lambda line: LOG.info("%s %s: %s", job.owner, job.label, line))


class Engine:
    def __init__(self, config: ServiceConfig, store: Store, execute: Executor | None = None,
                 clock: Callable[[], float] = time.time, track: Tracker | None = None,
                 make_record: RecordMaker | None = None):
        self.config, self.store, self.clock = config, store, clock
        self.execute = execute
        self.track = track
        self.make_record = make_record
        self._records_lock = threading.Lock()
        self._stop = threading.Event()
        self._work = threading.Event()
        self._threads: list[threading.Thread] = []
        self.running: dict[int, str] = {}  # run id -> worker name, for the status page

    def start(self) -> list[Run]:
        """Fail the runs a previous process left running, then start the workers. Returns the failed runs."""
        lost = self.store.fail_interrupted(INTERRUPTED)
        self.resume_submissions()
        if self.execute is None:
            self.execute = SandboxExecutor(self.config)
        for index in range(self.config.workers):
            thread = threading.Thread(target=self._worker, name=f"worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._work.set()
        return lost

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._work.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def submit(self, owner: str, code: str, name: str | None, idempotency_key: str | None) -> Submitted:
        """Queue a run (or return the one this idempotency key made). OverBudget / store.Conflict refuse it."""
        submitted = self.store.submit(owner, code, name, idempotency_key, self.config.run_limit_s, self._admit)
        if submitted.created:
            self._queued([submitted.run])
        return submitted

    def _admit(self, usage: list[Usage]) -> None:
        state = budgets.check(usage, self.clock(), self.config.budget, self.config.run_limit_s)
        if not state.ok:
            raise OverBudget(state)

    def _queued(self, runs: list[Run]) -> None:
        """New runs are in the queue: wake the workers."""
        self._work.set()

    def submit_record(self, owner: str, source_number: int, details: dict) -> tuple[Submission, list[Run], bool]:
        """Re-run a succeeded run's code on the record seeds (one queued run per seed, TORCH_SEED set), then
        assemble and judge the record when they are done. One submission per run at a time: asking again while one
        runs returns it (created False). LookupError (no such run), ValueError (not succeeded), OverBudget."""
        for existing in self.store.submissions_of(owner):
            if existing.source_number == source_number and existing.status == "running":
                return existing, self.store.seed_runs(existing.id), False
        seeds = list(self.config.record_seeds)
        submission, runs = self.store.submit_record(owner, source_number, seeds, {**details, "seeds": seeds},
                                                    self.config.run_limit_s, self._admit)
        self._queued(runs)
        return submission, runs, True

    def resume_submissions(self) -> None:
        """After a restart: decide the submissions whose seed runs all ended while the service was down."""
        for submission in self.store.running_submissions():
            self._advance(submission.id)

    def _finished(self, run: Run) -> None:
        """A run ended: track it, and move its submission on if it was a seed run."""
        self._track(run)
        if run.submission_id is not None:
            try:
                self._advance(run.submission_id)
            except Exception as problem:  # the record's failure, never the worker's
                LOG.exception("submission of %s: assembling the record failed", run.owner)
                self.store.finish_submission(run.submission_id, SUBMISSION_FAILED,
                                             f"assembling the record failed: {type(problem).__name__}: {problem}",
                                             None, None)

    def _advance(self, submission_id: int) -> None:
        with self._records_lock:  # two workers finishing the last two seeds at once decide it once
            submission = self.store.submission_by_id(submission_id)
            if submission is None or submission.status != "running":
                return
            runs = self.store.seed_runs(submission_id)
            if any(run.status not in FINISHED for run in runs):
                return
            failed = [run for run in runs if run.status != SUCCEEDED]
            if failed:
                first = failed[0]
                self.store.finish_submission(submission_id, SUBMISSION_FAILED,
                                             f"seed {first.seed} ({first.label}) {first.status}: {first.reason}",
                                             None, None)
                return
            if self.make_record is None:
                self.store.finish_submission(submission_id, SUBMISSION_FAILED,
                                             "this service assembles no records", None, None)
                return
            status, reason, path, verdict = self.make_record(submission, runs)
            self.store.finish_submission(submission_id, status, reason, path, verdict)

    def budget(self, owner: str) -> dict:
        return budgets.summary(self.store.usage(owner), self.clock(), self.config.budget, self.config.run_limit_s)

    def _worker(self) -> None:
        while not self._stop.is_set():
            run = self.store.claim_next()
            if run is None:
                self._work.wait(1.0)
                self._work.clear()
                continue
            self._work.set()  # there may be more for the other workers
            self.running[run.id] = threading.current_thread().name
            try:
                result = self.execute(RunJob(run.id, run.label, run.owner, run.code, run.seed))
            except Exception as problem:  # the run must not stay "running" forever
                LOG.exception("run %s of %s: the worker failed", run.label, run.owner)
                self.store.finish(run.id, FAILED, f"the worker died: {type(problem).__name__}: {problem}", None, None)
            else:
                self.store.finish(run.id, result.status, result.reason, result.val_bpb, result.to_dict())
            finally:
                self.running.pop(run.id, None)
            self._finished(run)

    def _track(self, run: Run) -> None:
        """Log the finished run to MLflow; a tracking failure is a warning, never the run's verdict."""
        if self.track is None:
            return
        finished = self.store.get(run.owner, run.number)
        try:
            if finished is not None:
                self.track(finished)
        except Exception as problem:
            LOG.warning("run %s of %s: MLflow tracking failed: %s: %s", run.label, run.owner,
                        type(problem).__name__, problem)


def state_dir_ready(path: Path) -> Path:
    """The state folder, with a .gitignore of its own: nothing in it is ever committed, wherever it is."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# the run service's state (tools/service): never committed\n*\n")
    return path
