"""The accepted chain of a track: which records became SOTA, in order, computed from the record folders alone.

Records are taken chronologically (submission date, then folder name). A record enters the chain when every check
passes and its significance test against the SOTA at its date (the chain's last entry dated strictly before it)
passes; the first valid record of a track enters with nothing to beat. On an unranked track nothing is tested
against SOTA, so every valid record enters. One pass: each record is judged once, against the running chain, so
there is no recursion however long the history. Results are cached per process, keyed by the files' sizes and
modification times, so a changed tree is judged afresh.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tools.records.model import CheckResult, Record, RecordError, Report, Track
from tools.records.record import load_record
from tools.records.schema import load_submission
from tools.verify.checks import Baseline, RecordContext
from tools.verify.checks.entry_order import UNKNOWN, entry_order
from tools.verify.checks.judging import judge_loaded, load_track_table, record_label, resolve_roots
from tools.verify.evidence import classify, verification_summary

_NAME_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
_UNDATED = dt.date.max  # a record without a date sorts last and is never "before" anything
_CACHE_LIMIT = 32


@dataclass(frozen=True)
class Accepted:
    """One step of the chain: a record that became SOTA."""

    record: Path  # the record folder
    label: str  # records/<track>/<name>
    date: dt.date | None
    metric: str  # the track's significance metric (val_bpb by default)
    mean: float
    std: float | None
    values: tuple[float, ...]  # one per distinct seed, from the logs
    seeds: tuple[int | None, ...]
    p_value: float | None  # against the previous SOTA; None for the first record of the track
    previous: str | None  # label of the SOTA it beat
    report: Report


class Judgement(NamedTuple):
    path: Path
    report: Report
    accepted: bool


def as_date(value: dt.date | dt.datetime | None) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def record_date(record: Record) -> dt.date | None:
    """The submission's date, else the folder name's YYYY-MM-DD prefix, else None."""
    if record.submission is not None and record.submission.date is not None:
        return as_date(record.submission.date)
    return date_from_name(record.path.name)


def date_from_name(name: str) -> dt.date | None:
    match = _NAME_DATE.match(name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _peek_date(folder: Path) -> dt.date | None:
    """The date only, without parsing logs (records are sorted before any is judged)."""

    try:
        submission = load_submission(folder / "submission.json", follow_symlinks=False)
        if submission.date is not None:
            return as_date(submission.date)
    except RecordError:
        pass
    return date_from_name(folder.name)


def baseline_for(accepted: Accepted) -> Baseline:
    """What a later record must beat: this entry's mean and seed values."""
    return Baseline(mean=accepted.mean, values=accepted.values, source=accepted.label)


def _record_folders(track_dir: Path) -> list[Path]:
    if not track_dir.is_dir():
        return []
    with os.scandir(track_dir) as scan:
        return [Path(e.path) for e in scan if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]


def _fingerprint(folders: list[Path]) -> tuple:
    """Sizes and mtimes of every top-level entry of every record: any edit changes it."""
    parts = []
    for folder in sorted(folders):
        try:
            with os.scandir(folder) as scan:
                entries = tuple(sorted((e.name, *_size_mtime(e)) for e in scan))
        except OSError:
            entries = ()
        parts.append((folder.name, entries))
    return tuple(parts)


def _stat_or_none(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _size_mtime(entry: os.DirEntry) -> tuple[int, int]:
    info = entry.stat(follow_symlinks=False)
    return info.st_size, info.st_mtime_ns


class _TrackJudge:
    """Judges a track's records in chronological order, as far as asked (judge_until), keeping the chain."""

    def __init__(self, track_id: str, root: Path, tracks: Mapping[str, Track], datasets_root: Path,
                 folders: list[Path], exclude: Path | None):  # fmt: skip
        self.track_id, self.root, self.tracks, self.datasets_root = track_id, root, tracks, datasets_root
        self.entered = entry_order(root)
        dated = [(_peek_date(folder), folder) for folder in folders if folder != exclude]
        self.pending = sorted(dated, key=lambda item: self.order_key(item[0], item[1]))
        self.position = 0
        self.judged: list[Judgement] = []
        self.chain: list[Accepted] = []
        self.keys: dict[Path, tuple] = {}

    def order_key(self, date: dt.date | None, folder: Path) -> tuple:
        """Chronological: the date, then the order records entered the repository (tools.verify.checks.entry_order:
        a copy committed later never precedes its original), then, only for uncommitted records, the name."""
        return (date or _UNDATED, self.entered.get((self.track_id, folder.name), UNKNOWN), folder.name)

    def judge_until(self, before: dt.date | None, key: tuple | None = None) -> None:
        """Judge every record dated strictly before `before`, or ordered before `key` (None: all of them)."""
        while self.position < len(self.pending):
            date, folder = self.pending[self.position]
            if before is not None and (date or _UNDATED) >= before:
                return
            if key is not None and self.order_key(date, folder) >= key:
                return
            self.position += 1
            self._judge(folder)

    def _judge(self, folder: Path) -> None:

        label = record_label(folder, self.root)
        try:
            record = load_record(folder, self.root)
        except RecordError as problem:
            report = Report(record=label, checks=[CheckResult("files", "fail", f"{problem.where}: {problem.message}")])
            self.judged.append(Judgement(folder, report, False))
            return
        track = self.tracks.get(self.track_id)
        date = record_date(record)
        key = self.keys[record.path] = self.order_key(date, folder)
        previous = self.sota_before_key(key) if track is not None and track.ranked else None
        baseline = baseline_for(previous) if previous is not None else None
        try:
            report = judge_loaded(record, tracks=self.tracks, baseline=baseline, datasets_root=self.datasets_root,
                                  records_root=self.root)  # fmt: skip
        except Exception as problem:  # one record's defect (or a checker's bug) must not stop the chain
            message = f"{label}: the judge failed on this record: {type(problem).__name__}: {problem}"
            report = Report(record=label, checks=[CheckResult("files", "fail", message)])
            self.judged.append(Judgement(record.path, report, False))
            return
        accepted = track is not None and policy_accepts(report, track, record.path)
        self.judged.append(Judgement(record.path, report, accepted))
        if accepted:
            metric = track.significance.metric
            scored = RecordContext(record=record, track=track).metric_values(metric)
            values = tuple(value for _, value in scored)
            seeds = tuple(record.logs[name].seed for name, _ in scored)
            stats = report.stats
            self.chain.append(Accepted(
                record=record.path, label=label, date=date, metric=metric,
                mean=stats.get("mean") if stats.get("mean") is not None else (sum(values) / len(values) if values else float("nan")),
                std=stats.get("std"), values=values, seeds=seeds,
                p_value=stats.get("p") if previous is not None else None,
                previous=previous.label if previous is not None else None, report=report,
            ))  # fmt: skip

    def sota_before_key(self, key: tuple) -> Accepted | None:
        """The chain's last entry ordered before `key` (same-day records: those that entered the repository first)."""
        for entry in reversed(self.chain):
            if self.keys.get(entry.record, key) < key:
                return entry
        return None

    def sota_before(self, date: dt.date | None) -> Accepted | None:
        """The chain's last entry dated strictly before `date` (None: the last entry, the SOTA now)."""
        for entry in reversed(self.chain):
            if date is None or (entry.date or _UNDATED) < date:
                return entry
        return None


def policy_accepts(report: Report, track: Track, folder: Path) -> bool:
    """The one acceptance policy (tools.verify.evidence.classify, also the leaderboard's): every check but
    significance passes, the judge's evidence shows no failure, and the t-test passes (unranked: not tested)."""

    _, evidence_failures = verification_summary(report, folder)
    verdict, _ = classify(report, track, evidence_failures)
    return verdict == "record" or (verdict == "non-record" and not track.ranked)


_cache: dict[tuple, _TrackJudge] = {}


def _track_judge(
    track_id: str,
    records_root: str | Path | None,
    tracks: Mapping[str, Track] | None,
    datasets_root: str | Path | None,
    exclude: Path | None = None,
) -> _TrackJudge:
    root, data = resolve_roots(records_root, datasets_root)
    table = load_track_table(root, tracks)
    folders = _record_folders(root / track_id)
    track = table.get(track_id)
    manifest = _stat_or_none(data / track.dataset / "manifest.json") if track is not None else None
    key = (track_id, str(root), str(data), repr(track), manifest, str(exclude), _fingerprint(folders))
    judge = _cache.get(key)
    if judge is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        judge = _cache[key] = _TrackJudge(track_id, root, table, data, folders, exclude)
    return judge


def judge_track(
    track_id: str,
    records_root: str | Path | None = None,
    *,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: str | Path | None = None,
) -> list[Judgement]:
    """Every record folder of a track in chronological order: (path, report, accepted into the chain)."""
    judge = _track_judge(track_id, records_root, tracks, datasets_root)
    judge.judge_until(None)
    return list(judge.judged)


def accepted_chain(
    track_id: str,
    records_root: str | Path | None = None,
    *,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: str | Path | None = None,
) -> list[Accepted]:
    """The records that became SOTA, oldest first; the last one is the track's current SOTA."""
    judge = _track_judge(track_id, records_root, tracks, datasets_root)
    judge.judge_until(None)
    return list(judge.chain)


def sota_at(
    track_id: str,
    date: dt.date | dt.datetime | None,
    exclude: str | Path | None = None,
    *,
    records_root: str | Path | None = None,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: str | Path | None = None,
) -> Accepted | None:
    """The SOTA a record dated `date` must beat: the chain's last entry dated strictly before it (None: none).

    `exclude` (a record folder, usually the candidate itself) is left out of the history. A `date` of None means
    "now": the current SOTA.
    """
    date = as_date(date)
    excluded = Path(exclude).resolve() if exclude is not None else None
    judge = _track_judge(track_id, records_root, tracks, datasets_root)
    if excluded is not None and excluded.parent == judge.root / track_id and date is not None:
        # The candidate is a record of this track: records of its own day that entered the repository before it
        # are its history too (a same-day copy of an accepted record is judged against that record).
        key = judge.order_key(date, excluded)
        judge.judge_until(None, key=key)  # the candidate's own key is not before itself: it is never judged here
        for entry in reversed(judge.chain):
            if entry.record != excluded and judge.keys.get(entry.record, key) < key:
                return entry
        return None
    # The candidate is usually dated `date` itself, so it cannot be in the history before it; only an excluded
    # record dated earlier changes that history and needs a chain of its own.
    if excluded is not None and any(f == excluded and (d or _UNDATED) < (date or _UNDATED) for d, f in judge.pending):
        judge = _track_judge(track_id, records_root, tracks, datasets_root, exclude=excluded)
    judge.judge_until(date)
    for entry in reversed(judge.chain):
        if entry.record != excluded and (date is None or (entry.date or _UNDATED) < date):
            return entry
    return None
