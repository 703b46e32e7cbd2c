"""`verify record`'s library half: run every static check and the significance test on one record folder.

The summarizer of tools.verify.checks (one checker per concern): load the record as data, find what it must beat
(`--against`, or the accepted chain of its track at its date, tools.verify.sota), run the checks in their fixed
order and return a Report. Nothing here runs or imports the record's code, and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.records import paths
from tools.records.model import Record, RecordError, Report, Track
from tools.verify.checks import CHECKS, Baseline, RecordContext
from tools.verify.checks.common import sample_std


def resolve_roots(
    records_root: str | Path | None, datasets_root: str | Path | None
) -> tuple[Path, Path]:
    root = Path(records_root) if records_root is not None else paths.records_root()
    data = Path(datasets_root) if datasets_root is not None else paths.datasets_root()
    return root.resolve(), data


def load_track_table(records_root: Path, tracks: Mapping[str, Track] | None = None) -> Mapping[str, Track]:
    """The given tracks, else records_root/tracks.toml (the tree being judged), else the repository's table."""
    if tracks is not None:
        return tracks
    from tools.records.tracks import load_tracks

    local = records_root / "tracks.toml"
    return load_tracks(local if local.is_file() else None)


def record_label(record_path: Path, records_root: Path) -> str:
    """`records/<track>/<name>` for reports; the absolute path when it is not under the root."""
    try:
        return str(Path(records_root.name) / record_path.relative_to(records_root))
    except ValueError:
        return str(record_path)


def describe_seeds(ctx: RecordContext, metric: str) -> dict[str, Any]:
    """n / mean / std of the logged scores when no test was run (first record, unranked track)."""
    values = [value for _, value in ctx.metric_values(metric)]
    finite = bool(values) and all(math.isfinite(v) for v in values)
    return {
        "metric": metric,
        "n": len(values),
        "mean": math.fsum(values) / len(values) if finite else None,
        "std": sample_std(values),
    }


def judge_loaded(
    record: Record,
    *,
    tracks: Mapping[str, Track],
    baseline: Baseline | None,
    datasets_root: Path,
    records_root: Path,
) -> Report:
    """Run every check on an already loaded record against a given baseline (None: nothing to beat)."""
    track = tracks.get(record.track_id)
    ctx = RecordContext(
        record=record,
        track=track,
        known_tracks=tuple(sorted(tracks)),
        datasets_root=datasets_root,
        baseline=baseline,
    )
    report = Report(record=record_label(record.path, records_root))
    for _check_id, check in CHECKS:
        report.checks.append(check(ctx))
    metric = track.significance.metric if track else "val_bpb"
    report.stats = ctx.cache.get("stats") or {**describe_seeds(ctx, metric), "sota_source": None}
    significance = report.get("significance")
    if significance is not None and "reason" not in report.stats:
        report.stats["reason"] = significance.message
    return report


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
    from tools.records.record import load_record

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
            from tools.verify.sota import baseline_for, record_date, sota_at

            accepted = sota_at(
                record.track_id, record_date(record), exclude=record.path, records_root=root, tracks=table,
                datasets_root=data,
            )
            baseline = baseline_for(accepted) if accepted is not None else None
    return judge_loaded(record, tracks=table, baseline=baseline, datasets_root=data, records_root=root)
