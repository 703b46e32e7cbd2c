"""`verify audit`'s library half: judge every record folder of a records tree under one ruleset.

A records tree is `<root>/<track>/<record>/` (ours, or a checkout of the public competition's `records/`). Each
record is judged by tools.verify.checks.verdict.verify_record, alone: a record that cannot be read at all, or that
makes a checker raise, is an entry with an error and never stops the others. Pure library: no printing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.records.model import STATUSES, CheckResult, RecordError, Report, Track


@dataclass
class AuditEntry:
    """One record's verdict: its report, or the one line saying why it could not be judged."""

    record: str  # <track>/<record>, relative to the tree
    report: Report | None = None
    error: str | None = None
    seconds: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)  # the report's checks, filtered by --check

    @property
    def ok(self) -> bool:
        return self.error is None and not any(check.status == "fail" for check in self.checks)


def records_tree(path: Path) -> Path:
    """The records tree at `path`: the folder itself, or its `records/` (a repository checkout)."""
    if (path / "records").is_dir() and not any(child.name.startswith("track") for child in path.iterdir()):
        return path / "records"
    return path


def record_folders(root: Path) -> list[Path]:
    """Every `<root>/<track>/<record>/` folder, sorted; hidden folders and symlinks are not walked."""
    folders = []
    for track in sorted(root.iterdir()):
        if track.name.startswith(".") or track.is_symlink() or not track.is_dir():
            continue
        for record in sorted(track.iterdir()):
            if not record.name.startswith(".") and not record.is_symlink() and record.is_dir():
                folders.append(record)
    return folders


def audit_tree(
    root: Path,
    tracks: Mapping[str, Track],
    *,
    datasets_root: Path | None = None,
    check_ids: Iterable[str] | None = None,
    on_record: Callable[[AuditEntry], None] | None = None,
) -> list[AuditEntry]:
    """Judge every record under `root`. `check_ids`: only these checks count toward a record's verdict."""
    from tools.verify.checks.verdict import verify_record

    wanted = set(check_ids) if check_ids else None
    entries = []
    for folder in record_folders(root):
        entry = AuditEntry(record=f"{folder.parent.name}/{folder.name}")
        started = time.perf_counter()
        try:
            entry.report = verify_record(folder, tracks=tracks, records_root=root, datasets_root=datasets_root)
            entry.checks = [c for c in entry.report.checks if wanted is None or c.id in wanted]
        except RecordError as error:
            entry.error = f"{error.where}: {error.message}"
        except Exception as error:  # a checker's bug on one record must not hide the verdicts of the others
            entry.error = f"{folder}: the judge failed on this record: {type(error).__name__}: {error}"
        entry.seconds = time.perf_counter() - started
        entries.append(entry)
        if on_record is not None:
            on_record(entry)
    return entries


def summarize(entries: list[AuditEntry]) -> dict[str, Any]:
    """Counts per check id and status, and the records that failed or could not be judged."""
    per_check: dict[str, Counter] = {}
    for entry in entries:
        for check in entry.checks:
            per_check.setdefault(check.id, Counter())[check.status] += 1
    seconds = sorted(entry.seconds for entry in entries)
    return {
        "records": len(entries),
        "passed": sum(entry.ok for entry in entries),
        "failed": sum(not entry.ok and entry.error is None for entry in entries),
        "errors": sum(entry.error is not None for entry in entries),
        "checks": {check_id: {status: counts.get(status, 0) for status in STATUSES}
                   for check_id, counts in per_check.items()},
        "seconds_total": round(sum(seconds), 3),
        "seconds_median": round(seconds[len(seconds) // 2], 3) if seconds else None,
    }


def audit_json(ruleset: str, entries: list[AuditEntry]) -> dict[str, Any]:
    """`{"ruleset", "records": [{"record", "ok", "checks": [{"id", "status", "message"}]}], "summary"}`."""
    records = []
    for entry in entries:
        item: dict[str, Any] = {"record": entry.record, "ok": entry.ok,
                                "checks": [{"id": c.id, "status": c.status, "message": c.message} for c in entry.checks]}
        if entry.error is not None:
            item["error"] = entry.error
        records.append(item)
    return {"ruleset": ruleset, "records": records, "summary": summarize(entries)}
