"""leaderboard.md, generated from the record folders alone, and the judge's verification evidence.

The generator re-judges every record (tools.verify.checks.sota.judge_track / accepted_chain): a record enters a track's
SOTA chain only when its checks pass and its t-test against the SOTA at its date passes, whatever its
submission.json claims. Every number shown is recomputed from the files (means and stds from the logs, sizes
from the logs and artifacts, p-values from the test). Output is deterministic: same records -> same bytes
(tracks in tracks.toml order, records by date then folder name, no timestamps, no absolute paths). Nothing is
edited in place: each run renders from scratch and replaces the file atomically, so two submissions landing one
after the other cannot drop a row.

Evidence from the slower judges (tokenizer audit, probes, reproduction) lives in the record folder as
`verification.json`, written by `write_verification_evidence`. Whether a document is accepted is decided in one
place, tools.verify.evidence.evidence_problems (bound to the record's files now, a judge commit, every check run
in the sandbox); a document it refuses rejects the record, and the reason is the row's note in "Not accepted".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tools.records.model import RecordError, Report, Track
from tools.records.paths import records_root as default_records_root
from tools.records.record import load_record
from tools.submit.plots import ProgressPoint, render_progress
from tools.verify.checks.sota import accepted_chain, as_date, date_from_name, judge_track
from tools.verify.checks.verdict import load_track_table
from tools.verify.evidence import (  # noqa: F401  (re-exported: the publisher's users read them here)
    EVIDENCE_FILE,
    EVIDENCE_STAGES,
    STATIC_CHECKS_EXEMPT,
    classify,
    evidence_problems,
    read_verification_evidence,
    record_sha256,
    verification_summary,
    write_atomic,
    write_verification_evidence,
)

LEADERBOARD_FILE = "leaderboard.md"
PROGRESS_FILE = "progress.png"


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write `data` unless the file already holds exactly these bytes; True when written."""
    try:
        if Path(path).read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(Path(path), data)
    return True


# -- the board -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One record folder as the board shows it; every number recomputed from the folder's files."""

    folder: Path
    name: str  # folder name
    track_id: str
    date: dt.date | None
    author: str | None
    seeds: tuple[int, ...]
    mean: float | None
    std: float | None
    p_value: float | None
    artifact_bytes: int | None  # max over seeds of code + model
    verified: str  # how far it was verified, for people
    note: str  # why it is not ranked / the first failing check


@dataclass
class TrackBoard:
    track: Track
    chain: list[Entry] = field(default_factory=list)
    non_record: list[Entry] = field(default_factory=list)
    rejected: list[Entry] = field(default_factory=list)


def _load_facts(folder: Path, records_root: Path) -> tuple[Any, tuple[int, ...]]:
    """(the submission or None, the logged seeds) of a record folder; never raises."""

    try:
        record = load_record(folder, records_root)
    except RecordError:
        return None, ()
    seeds = sorted({log.seed for log in record.logs.values() if log.seed is not None})
    return record.submission, tuple(seeds)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _entry(folder: Path, track_id: str, report: Report, records_root: Path, *, date, p_value, note, verified) -> Entry:

    submission, seeds = _load_facts(folder, records_root)
    artifact = report.get("artifact_bytes")
    largest = artifact.evidence.get("largest") if artifact is not None else None
    if date is None:
        date = as_date(submission.date) if submission is not None and submission.date else date_from_name(folder.name)
    return Entry(
        folder=folder,
        name=folder.name,
        track_id=track_id,
        date=date,
        author=submission.author if submission is not None else None,
        seeds=seeds,
        mean=_number(report.stats.get("mean")),
        std=_number(report.stats.get("std")),
        p_value=_number(p_value),
        artifact_bytes=largest if isinstance(largest, int) else None,
        verified=verified,
        note=_portable(note, records_root),
    )


def _portable(message: str, records_root: Path) -> str:
    """Messages without this machine's absolute paths, so the board is the same everywhere."""
    for root in {str(records_root), str(records_root.resolve())}:
        message = message.replace(root, "records")
    return message


def judge_board(
    records_root: Path | None = None,
    *,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: Path | None = None,
) -> list[TrackBoard]:
    """Every track's chain, non-record entries and rejected records, judged from the folders."""

    root = Path(records_root or default_records_root()).resolve()
    table = load_track_table(root, tracks)
    boards = []
    for track_id, track in table.items():
        board = TrackBoard(track)
        options = {"tracks": table, "datasets_root": datasets_root}
        chain = {item.record: item for item in accepted_chain(track_id, root, **options)} if track.ranked else {}
        for judgement in judge_track(track_id, root, **options):
            report, folder = judgement.report, Path(judgement.path)
            verified, evidence_failures = verification_summary(report, folder)
            verdict, reason = classify(report, track, evidence_failures)
            accepted = chain.get(folder)
            if verdict == "record" and accepted is not None:
                note = f"vs {accepted.previous.split('/')[-1]}" if accepted.previous else "first record of the track"
                board.chain.append(_entry(folder, track_id, report, root, date=accepted.date,
                                          p_value=accepted.p_value, note=note, verified=verified))  # fmt: skip
                continue
            if verdict == "record":  # judged valid here but not in the judge's chain: do not rank what we cannot explain
                verdict, reason = "rejected", "not in the accepted chain (tools.verify.checks.sota)"
            entry = _entry(folder, track_id, report, root, date=None, p_value=report.stats.get("p"), note=reason,
                           verified=verified)  # fmt: skip
            (board.non_record if verdict == "non-record" else board.rejected).append(entry)
        boards.append(board)
    return boards


# -- rendering -------------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#"})


def _text(value: Any, limit: int = 80) -> str:
    """A table cell from untrusted text: one line, markdown neutralized, bounded length."""
    if value is None:
        return "?"
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(_MARKDOWN_SPECIAL)


def _link(entry: Entry) -> str:
    target = quote(f"records/{entry.track_id}/{entry.name}/")
    return f"[{_text(entry.name)}]({target})"


def _bpb(entry: Entry) -> str:
    if entry.mean is None:
        return "?"
    return f"{entry.mean:.5f} ± {entry.std:.5f}" if entry.std is not None else f"{entry.mean:.5f}"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _bytes(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _seeds(entry: Entry) -> str:
    return f"{len(entry.seeds)} ({', '.join(map(str, entry.seeds))})" if entry.seeds else "0"


def _date(entry: Entry) -> str:
    return entry.date.isoformat() if entry.date else "?"


def _rules(track: Track) -> str:
    parts = [track.hardware]
    if track.train_time_cap_s is not None:
        parts.append(f"train ≤ {track.train_time_cap_s:g} s")
    if track.eval_time_cap_s is not None:
        parts.append(f"eval ≤ {track.eval_time_cap_s:g} s")
    parts += [f"artifact ≤ {track.artifact_cap_bytes:,} bytes", f"dataset `{track.dataset}`", f"≥ {track.min_seeds} seed{'' if track.min_seeds == 1 else 's'}"]
    rule = track.significance
    if track.ranked:
        parts.append(f"new SOTA: one-sided t-test vs SOTA − {rule.min_improvement:g}, p < {rule.alpha:g}")
    else:
        parts.append("not ranked against SOTA")
    return " · ".join(parts)


def render_board(boards: Sequence[TrackBoard], progress_plots: Mapping[str, bool] | None = None) -> str:
    """The markdown for judged boards. `progress_plots`: track id -> whether a progress.png is linked."""
    lines = [
        "# Leaderboard",
        "",
        "Generated by `submit leaderboard` from the record folders under `records/`; do not edit by hand.",
        "Every record is re-judged: a record enters its track's SOTA chain only when every check passes and its",
        "one-sided t-test against the SOTA at its date passes. Means, stds, p-values and sizes are recomputed",
        "from the logs and files. *verified*: static checks and statistics always; tokenizer audit, probes and",
        "reproduction when the judge left evidence in the record's `verification.json`.",
        "",
    ]
    for board in boards:
        track = board.track
        lines += [f"## {_text(track.title, 120)} (`{track.id}`)", "", _rules(track), ""]
        if track.ranked:
            if (progress_plots or {}).get(track.id):
                lines += [f"![progress of {track.id}](records/{quote(track.id)}/{PROGRESS_FILE})", ""]
            if board.chain:
                sota = board.chain[-1]
                lines += [f"Current SOTA: {_link(sota)}, val_bpb {_bpb(sota)}.", ""]
                lines += [
                    "| # | date | record | author | val_bpb (mean ± std) | seeds | p vs previous SOTA | artifact bytes | verified |",
                    "|---:|---|---|---|---|---|---|---:|---|",
                ]
                for number, entry in enumerate(board.chain, 1):
                    lines.append(
                        f"| {number} | {_date(entry)} | {_link(entry)} | {_text(entry.author, 40)} | {_bpb(entry)} "
                        f"| {_seeds(entry)} | {_p(entry.p_value)} | {_bytes(entry.artifact_bytes)} | {entry.verified} |"
                    )
                lines.append("")
            else:
                lines += ["_No accepted record yet._", ""]
        if board.non_record:
            heading = "Entries" if not track.ranked else "Non-record entries (passed every check, not significant)"
            lines += [
                f"**{heading}**",
                "",
                "| date | record | author | val_bpb (mean ± std) | seeds | p | artifact bytes | verified | note |",
                "|---|---|---|---|---|---|---:|---|---|",
            ]
            for entry in board.non_record:
                lines.append(
                    f"| {_date(entry)} | {_link(entry)} | {_text(entry.author, 40)} | {_bpb(entry)} | {_seeds(entry)} "
                    f"| {_p(entry.p_value)} | {_bytes(entry.artifact_bytes)} | {entry.verified} | {_text(entry.note, 160)} |"
                )
            lines.append("")
        elif not track.ranked:
            lines += ["_No entries yet._", ""]
        if board.rejected:
            lines += ["**Not accepted**", "", "| date | record | first failing check |", "|---|---|---|"]
            for entry in board.rejected:
                lines.append(f"| {_date(entry)} | {_link(entry)} | {_text(entry.note, 160)} |")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def progress_points(board: TrackBoard):
    """The accepted chain as plot points, each with its seeds' spread (an error bar)."""
    return [ProgressPoint(e.date, e.mean, e.name, e.std) for e in board.chain
            if e.date is not None and e.mean is not None]


def render_leaderboard(
    records_root: Path | None = None,
    *,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: Path | None = None,
) -> str:
    """CONTRACTS §7: leaderboard.md's text, judged from the record folders (progress plots linked when drawable)."""
    boards = judge_board(records_root, tracks=tracks, datasets_root=datasets_root)
    return render_board(boards, {b.track.id: bool(progress_points(b)) for b in boards})


def default_leaderboard_path(records_root: Path | None = None) -> Path:

    return Path(records_root or default_records_root()).parent / LEADERBOARD_FILE


@dataclass(frozen=True)
class BoardUpdate:
    text: str  # the generated leaderboard.md
    changed: bool  # leaderboard.md was (or, with dry_run, would be) rewritten
    plots_written: tuple[Path, ...]  # progress plots rewritten (empty with dry_run)
    previous: str  # leaderboard.md before ("" when it did not exist)


def update_leaderboard(
    path: Path | None = None,
    *,
    records_root: Path | None = None,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: Path | None = None,
    plots: bool = True,
    dry_run: bool = False,
) -> BoardUpdate:
    """Regenerate leaderboard.md (and records/<track>/progress.png) from scratch; write only changed bytes."""

    root = Path(records_root or default_records_root())
    if not root.is_dir():
        raise RecordError(root, "no records folder here (set PG_REPO_ROOT to the repository)")
    path = Path(path) if path is not None else default_leaderboard_path(root)
    with _exclusive(root, enabled=not dry_run):
        boards = judge_board(root, tracks=tracks, datasets_root=datasets_root)
        drawable = {b.track.id: bool(progress_points(b)) for b in boards}
        text = render_board(boards, drawable)
        try:
            previous = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            previous = ""
        written: list[Path] = []
        if not dry_run and plots:
            written = write_progress_plots(boards, root)
        changed = previous != text
        if changed and not dry_run:
            write_atomic(path, text.encode("utf-8"))
    return BoardUpdate(text, changed, tuple(written), previous)


@contextlib.contextmanager
def _exclusive(records_root: Path, enabled: bool = True):
    """Serialize local regenerations (judge + write) with a lock on the records folder itself, so a board rendered
    before another submission's rename cannot be written after that submission's board (no lock file needed)."""
    if not enabled:
        yield
        return
    import fcntl

    descriptor = os.open(records_root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def write_progress_plots(boards: Sequence[TrackBoard], records_root: Path) -> list[Path]:
    """records/<track>/progress.png for each ranked track with a chain; a stale one is removed. Returns changes."""

    changed = []
    for board in boards:
        path = records_root / board.track.id / PROGRESS_FILE
        points = progress_points(board) if board.track.ranked else []
        if not points:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                changed.append(path)
            continue
        path.parent.mkdir(exist_ok=True)
        title = f"{board.track.title}: SOTA val_bpb over time"
        if write_if_changed(path, render_progress(points, title)):
            changed.append(path)
    return changed


def write_leaderboard(path: Path | None = None, *, records_root: Path | None = None, plots: bool = True) -> bool:
    """CONTRACTS §7: regenerate leaderboard.md atomically; True when its bytes changed."""
    return update_leaderboard(path, records_root=records_root, plots=plots).changed
