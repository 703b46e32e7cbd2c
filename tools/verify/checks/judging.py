"""Judge one loaded record against a given baseline: every static check and the significance test, in order.

The lower half of `verify record` (tools.verify.checks.verdict adds finding the baseline through the SOTA chain,
tools.verify.checks.sota, which itself judges earlier records with `judge_loaded`). Nothing here runs or imports the
record's code, and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.records import paths
from tools.records.model import Record, Report, Track
from tools.records.tracks import load_tracks
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
