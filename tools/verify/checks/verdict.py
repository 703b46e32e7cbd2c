"""`verify record`'s library half: run every static check and the significance test on one record folder.

Load the record as data, find what it must beat (`--against`, or the accepted chain of its track at its date,
tools.verify.checks.sota), and judge it (tools.verify.checks.judging runs the checks of tools.verify.checks in their fixed
order). Nothing here runs or imports the record's code, and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from tools.records.model import RecordError, Report, Track
from tools.records.record import load_record
from tools.verify.checks import Baseline
from tools.verify.checks.judging import (  # noqa: F401  (re-exported: callers judge through this module)
    describe_seeds,
    judge_loaded,
    load_track_table,
    record_label,
    resolve_roots,
)
from tools.verify.checks.sota import baseline_for, record_date, sota_at


def verify_record(
    folder: str | Path,
    *,
    against: float | None = None,
    tracks: Mapping[str, Track] | None = None,
    records_root: str | Path | None = None,
    datasets_root: str | Path | None = None,
) -> Report:
    """Judge one record folder (records/<track>/<name>/). RecordError when the folder is unusable.

    `against`: test against this SOTA value instead of the track's accepted chain at the record's date.
    """
    root, data = resolve_roots(records_root, datasets_root)
    if against is not None and not math.isfinite(against):
        raise RecordError("--against", f"not a finite number: {against!r}")
    record = load_record(folder, root)
    table = load_track_table(root, tracks)
    track = table.get(record.track_id)
    baseline = None
    if track is not None and track.ranked:
        if against is not None:
            baseline = Baseline(mean=float(against), values=None, source=f"--against {against}")
        else:
            accepted = sota_at(
                record.track_id, record_date(record), exclude=record.path, records_root=root, tracks=table,
                datasets_root=data,
            )
            baseline = baseline_for(accepted) if accepted is not None else None
    return judge_loaded(record, tracks=table, baseline=baseline, datasets_root=data, records_root=root)
