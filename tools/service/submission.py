"""From a finished record submission to a judged record folder: the service's seed runs (tools.service.store) are
handed to the assembler (tools.service.record) and the folder to the judge (verify_record), once.

The folder goes under the service's record root (`<state dir>/records` unless `--records-dir` says otherwise:
pointing it at the repository's records/ puts the folder where a pull request wants it). A refusal by the
assembler (a run that cannot make an honest record) fails the submission with that line; a record the judge
rejects is still written and returned with the verdict, so the participant can read every check.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tools.service.config import ServiceConfig
from tools.service.engine import JUDGED, SUBMISSION_FAILED
from tools.service.record import SeedRun, assemble_service_record, judge_service_record
from tools.service.store import Run, Submission


def seed_run(run: Run, config: ServiceConfig) -> SeedRun:
    """One seed run as the assembler reads it. A run a Celery worker executed keeps its model on that worker: its
    compressed size is the one the worker measured (model_path None)."""
    result = run.result or {}
    local = config.runs_dir / str(run.id) / "model.pt2"
    return SeedRun(seed=int(run.seed), run_label=f"{run.owner}/{run.label}", result=result,
                   started_at=run.started_at or run.created_at, finished_at=run.finished_at or run.created_at,
                   model_path=None if result.get("worker") and not local.exists() else local)


class RecordMaker:
    """Engine's `make_record`: assemble the submission's record, judge it, answer (status, reason, path, verdict)."""

    def __init__(self, config: ServiceConfig, today=lambda: dt.datetime.now(dt.UTC).date()):
        self.config, self.today = config, today

    def __call__(self, submission: Submission, runs: list[Run]) -> tuple[str, str, str | None, dict | None]:
        details = submission.details
        name = details.get("name") or f"{submission.owner} run-{submission.source_number}"
        blurb = details.get("blurb") or (f"Submitted through the run service by {submission.owner} "
                                         f"(run-{submission.source_number}, {submission.label}).")
        try:
            folder = assemble_service_record(
                runs[0].code, [seed_run(run, self.config) for run in runs], records_dir=self.config.record_root,
                dataset_dir=self.config.dataset_dir, author=details.get("author") or submission.owner,
                github_id=details.get("github_id") or submission.owner, name=name, blurb=blurb,
                date=self.today().isoformat(), time_budget_s=self.config.time_budget_s)
        except ValueError as refused:
            return SUBMISSION_FAILED, f"the record was not assembled: {refused}", None, None
        report = judge_service_record(Path(folder), dataset_dir=self.config.dataset_dir)
        verdict = report.to_json()
        failed = [check["id"] for check in verdict["checks"] if check["status"] == "fail"]
        reason = ("the judge passed every check that applies" if report.ok
                  else f"the judge failed {len(failed)} check(s): {', '.join(failed)}")
        return JUDGED, reason, str(folder), verdict
