"""The judges the pull-request gate runs on an added record, and the rules for when each one applies.

Each judge takes optional `tracks`, `records_root` and `repo_root`: `verify all` leaves them unset (the working
tree's), the gate passes the base commit's (`gate_stages`), so nothing a pull request changes decides its verdict.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from tools.records.model import CheckResult, Report, Track
from tools.verify.pr.audit import AuditFlag

RECORD = "verify record"
TOKENIZER = "verify tokenizer"
PROBES = "verify probes"
REPRODUCE = "verify reproduce"


def record_report(folder: Path, *, tracks: Mapping[str, Track] | None = None,
                  records_root: Path | None = None) -> Report:
    from tools.verify.checks.verdict import verify_record

    return verify_record(folder, tracks=tracks, records_root=records_root)


def run_verify_record(folder: Path, **roots) -> list[CheckResult]:
    return list(record_report(folder, **roots).checks)


def run_tokenizer_audit(folder: Path, *, tracks: Mapping[str, Track] | None = None,
                        repo_root: Path | None = None) -> list[CheckResult]:
    from tools.verify.tokenizer.audit import audit_record

    return audit_record(folder, tracks=tracks, repo_root=repo_root)


def run_probes(folder: Path, *, tracks: Mapping[str, Track] | None = None,
               records_root: Path | None = None) -> list[CheckResult]:
    from tools.verify.probes import probe_record

    return probe_record(folder, tracks=tracks, records_root=records_root)


def run_reproduction(folder: Path, *, tracks: Mapping[str, Track] | None = None,
                     records_root: Path | None = None) -> list[CheckResult]:
    from tools.verify.reproduce import reproduce_record
    from tools.verify.reproduce.progress import progress_factory

    # Progress goes to stderr so the CI log shows each seed's steps; the verdict goes to the summary.
    return [reproduce_record(folder, tracks=tracks, records_root=records_root,
                             progress=progress_factory(sys.stderr)).check]


def real_stages() -> dict:
    return {RECORD: run_verify_record, TOKENIZER: run_tokenizer_audit, PROBES: run_probes,
            REPRODUCE: run_reproduction}


def gate_stages(tracks: Mapping[str, Track], judged_root: Path) -> dict:
    """The judges as the gate runs them: the base commit's rules (`tracks`) and the tree of `judged_root` (the base's
    accepted records and baseline trainer, plus the new record). `verify record` returns its whole Report, so the
    gate's JSON carries its statistics."""
    records = judged_root / "records"
    return {
        RECORD: partial(record_report, tracks=tracks, records_root=records),
        TOKENIZER: partial(run_tokenizer_audit, tracks=tracks, repo_root=judged_root),
        PROBES: partial(run_probes, tracks=tracks, records_root=records),
        REPRODUCE: partial(run_reproduction, tracks=tracks, records_root=records),
    }


def _track_of(folder: Path, tracks: Mapping[str, Track] | None):
    if tracks is None:
        from tools.records.paths import tracks_path
        from tools.records.tracks import load_tracks

        tracks = load_tracks(tracks_path())
    return tracks.get(folder.parent.name)


def stage_applies(name: str, folder: Path, flags: list[AuditFlag], tracks: Mapping[str, Track] | None = None) -> bool:
    """verify record: always. verify tokenizer: when flagged. verify probes: always — without an artifact or an
    entry point it reports `skip` (a human must review), which the summary must show. verify reproduce: when the
    track (of `tracks`, default the working tree's table) runs on the CI machine."""
    if name == TOKENIZER:
        return any(f.kind in ("tokenizer", "dataset", "byte_accounting") for f in flags)
    if name == REPRODUCE:
        track = _track_of(folder, tracks)
        return bool(track is not None and track.reproducible_in_ci)
    return True
