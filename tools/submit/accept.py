"""Accept a record: judge it, place it, regenerate the leaderboard, record the verdict.

Verdicts (the one acceptance policy, tools.verify.evidence.classify, as the chain and the leaderboard apply it):
  record      every check passed on a ranked track: the new SOTA of its track
  non-record  every check passed but the t-test against SOTA (or the track is unranked): listed, not ranked
  rejected    a check failed, or the folder's verification.json is not the judge's bound, sandboxed evidence for
              these files or shows a failure: nothing changes (an assembled draft goes to logs/rejected/<name>/,
              never records/)

Nothing is edited in place: the leaderboard is regenerated from the folders, and a draft enters records/ by one
atomic rename, only once accepted. Tracking (MLflow) failures become warnings; they never lose a verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.records.model import RecordError, Report
from tools.records.paths import records_root as default_records_root
from tools.submit.assemble import Draft
from tools.submit.leaderboard import (
    LEADERBOARD_FILE,
    classify,
    default_leaderboard_path,
    render_leaderboard,
    update_leaderboard,
    verification_summary,
)
from tools.submit.tracking import log_verdict
from tools.verify.checks.verdict import load_track_table, record_label, verify_record
from tools.verify.report_format import report_json

REJECTED_DIR = Path("logs") / "rejected"


@dataclass
class SubmitOutcome:
    folder: Path  # the record's place in records/ (for a rejected draft: where it would have gone)
    track_id: str
    verdict: str  # "record" | "non-record" | "rejected"
    reason: str  # one line: the significance result, or the first failing check
    report: Report
    dry_run: bool
    leaderboard_path: Path
    leaderboard_changed: bool = False
    leaderboard_diff: str = ""
    moved_to: Path | None = None  # where a rejected draft was kept
    tracking_run_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.verdict != "rejected"

    @property
    def exit_code(self) -> int:
        return 0 if self.accepted else 1

    def to_json(self) -> dict[str, Any]:

        return {
            "verdict": self.verdict,
            "accepted": self.accepted,
            "reason": self.reason,
            "record": str(self.folder),
            "track": self.track_id,
            "dry_run": self.dry_run,
            "leaderboard": {
                "path": str(self.leaderboard_path),
                "changed": self.leaderboard_changed,
                "diff": self.leaderboard_diff,
            },
            "moved_to": str(self.moved_to) if self.moved_to else None,
            "tracking_run_id": self.tracking_run_id,
            "warnings": list(self.warnings),
            "report": report_json(self.report),
        }


def _roots(records_root: Path | None, leaderboard_path: Path | None) -> tuple[Path, Path]:

    root = Path(records_root or default_records_root()).resolve()
    return root, Path(leaderboard_path) if leaderboard_path is not None else default_leaderboard_path(root)


def unified_diff(before: str, after: str, name: str = LEADERBOARD_FILE) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}"
        )
    )


def _judge(folder: Path, root: Path, datasets_root: Path | None) -> tuple[Report, str, str, str]:
    """(report, track id, verdict, reason) for a folder inside the records root."""

    report = verify_record(folder, records_root=root, datasets_root=datasets_root)
    track_id = folder.resolve().parent.name
    track = load_track_table(root).get(track_id)
    _, evidence_failures = verification_summary(report, folder)
    verdict, reason = classify(report, track, evidence_failures)
    return report, track_id, verdict, reason


def _track_verdict(outcome: SubmitOutcome, enabled: bool, tracking_uri: str | None) -> None:
    if not enabled or outcome.dry_run:
        return
    try:

        outcome.tracking_run_id = log_verdict(
            outcome.report, verdict=outcome.verdict, record_path=outcome.folder, track_id=outcome.track_id,
            tracking_uri=tracking_uri,
        )  # fmt: skip
    except Exception as problem:  # the verdict stands whatever the tracking store does
        first_line = (str(problem).splitlines() or [""])[0][:200]
        outcome.warnings.append(f"tracking: verdict not recorded in MLflow ({type(problem).__name__}: {first_line})")


def _regenerate(outcome: SubmitOutcome, root: Path, datasets_root: Path | None) -> None:
    update = update_leaderboard(
        outcome.leaderboard_path, records_root=root, datasets_root=datasets_root, dry_run=outcome.dry_run
    )
    outcome.leaderboard_changed = update.changed
    outcome.leaderboard_diff = unified_diff(update.previous, update.text)


def submit_record(
    folder: str | Path,
    dry_run: bool = False,
    *,
    records_root: Path | None = None,
    datasets_root: Path | None = None,
    leaderboard_path: Path | None = None,
    track: bool = True,
    tracking_uri: str | None = None,
) -> SubmitOutcome:
    """Judge a record folder already in records/<track>/ and, unless rejected, regenerate the leaderboard.

    RecordError (exit 2) when the folder is missing, not a folder, or outside the records root.
    A rejected record changes nothing (leaderboard.md is not touched). dry_run: judge and diff, write nothing.
    """
    root, board_path = _roots(records_root, leaderboard_path)
    folder = Path(folder)
    if folder.resolve().name.startswith("."):
        raise RecordError(folder, "a hidden folder is never a record (staging folders are hidden)")
    report, track_id, verdict, reason = _judge(folder, root, datasets_root)
    outcome = SubmitOutcome(folder.resolve(), track_id, verdict, reason, report, dry_run, board_path)
    if outcome.accepted:
        _regenerate(outcome, root, datasets_root)
    _track_verdict(outcome, track, tracking_uri)
    return outcome


def _relabel(report: Report, staging: Path, destination: Path, root: Path) -> Report:
    """The report of a staging folder, worded as for the folder's final name."""

    def fix(text: str) -> str:
        return text.replace(staging.name, destination.name)

    checks = [dataclasses.replace(c, message=fix(c.message)) for c in report.checks]
    return Report(record=record_label(destination, root), checks=checks, stats=report.stats)


def park_rejected(draft_folder: Path, name: str, root: Path) -> Path:
    """Move a draft to <repo>/logs/rejected/<name>[-N]/ so nothing is lost; returns where it went."""
    parking = root.parent / REJECTED_DIR
    parking.mkdir(parents=True, exist_ok=True)
    target = parking / name
    number = 2
    while target.exists() or target.is_symlink():
        target, number = parking / f"{name}-{number}", number + 1
    shutil.move(str(draft_folder), str(target))
    return target


@contextlib.contextmanager
def shadow_records(root: Path, draft_folder: Path, destination: Path) -> Iterator[Path]:
    """A throwaway copy of the records tree with the draft at its final name, for a dry run's leaderboard diff.

    Files are hard-linked (copied where linking fails), so it costs no disk; it lives in a hidden folder of the
    records root (same file system, ignored by every reader) and is removed on exit.
    """
    holder = Path(tempfile.mkdtemp(prefix=".dryrun-", dir=root))
    try:
        shadow = holder / root.name
        shadow.mkdir()
        shutil.copyfile(root / "tracks.toml", shadow / "tracks.toml")
        for track_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if track_dir.is_symlink():
                continue
            (shadow / track_dir.name).mkdir()
            for record in sorted(p for p in track_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if not record.is_symlink():
                    _replicate(record, shadow / track_dir.name / record.name)
        _replicate(draft_folder, shadow / destination.parent.name / destination.name)
        yield shadow
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _replicate(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)


def _drop_created_track_folder(draft: Draft) -> None:
    """Leave records/ as it was: remove the track folder assembly created, if it is still empty."""
    if draft.created_track_folder:
        with contextlib.suppress(OSError):
            draft.destination.parent.rmdir()


def submit_draft(
    draft: Draft,
    dry_run: bool = False,
    *,
    records_root: Path | None = None,
    datasets_root: Path | None = None,
    leaderboard_path: Path | None = None,
    track: bool = True,
    tracking_uri: str | None = None,
) -> SubmitOutcome:
    """Judge an assembled draft in its staging folder; rename it into records/ when accepted, else park it.

    With dry_run the draft is judged, the leaderboard diff is computed as if it were in place, and the draft is
    removed: nothing is left anywhere.
    """
    root, board_path = _roots(records_root, leaderboard_path)
    staging, destination = draft.folder, draft.destination
    try:
        report, track_id, verdict, reason = _judge(staging, root, datasets_root)
    except BaseException as problem:
        parked = None
        if dry_run:
            shutil.rmtree(staging, ignore_errors=True)
        else:
            parked = park_rejected(staging, destination.name, root)
        _drop_created_track_folder(draft)
        if isinstance(problem, RecordError) and parked is not None:
            raise RecordError(problem.where, f"{problem.message}; the draft is kept in {parked}") from None
        raise
    report = _relabel(report, staging, destination, root)
    reason = reason.replace(staging.name, destination.name)
    outcome = SubmitOutcome(destination, track_id, verdict, reason, report, dry_run, board_path)
    if dry_run:
        try:
            if outcome.accepted:
                with shadow_records(root, staging, destination) as shadow:
                    after = render_leaderboard(shadow, datasets_root=datasets_root)
                before = board_path.read_text(encoding="utf-8") if board_path.is_file() else ""
                outcome.leaderboard_changed = before != after
                outcome.leaderboard_diff = unified_diff(before, after)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            _drop_created_track_folder(draft)
        return outcome
    if not outcome.accepted:
        outcome.moved_to = park_rejected(staging, destination.name, root)
        _drop_created_track_folder(draft)
        _track_verdict(outcome, track, tracking_uri)
        return outcome
    if destination.exists() or destination.is_symlink():
        parked = park_rejected(staging, destination.name, root)
        raise RecordError(destination, f"appeared while the draft was judged; the draft is kept in {parked}")
    os.rename(staging, destination)
    _regenerate(outcome, root, datasets_root)
    _track_verdict(outcome, track, tracking_uri)
    return outcome
