"""The judges the pull-request gate runs on an added record, and the rules for when each one applies."""

from __future__ import annotations

import sys
from pathlib import Path

from tools.records.model import CheckResult
from tools.verify.pr_audit import AuditFlag

RECORD = "verify record"
TOKENIZER = "verify tokenizer"
PROBES = "verify probes"
REPRODUCE = "verify reproduce"


def run_verify_record(folder: Path) -> list[CheckResult]:
    from tools.verify.record_checks import verify_record

    return list(verify_record(folder).checks)


def run_tokenizer_audit(folder: Path) -> list[CheckResult]:
    from tools.verify.tokenizer_audit import audit_record

    return audit_record(folder)


def run_probes(folder: Path) -> list[CheckResult]:
    from tools.verify.probes import probe_record

    return probe_record(folder)


def run_reproduction(folder: Path) -> list[CheckResult]:
    from tools.verify.progress import progress_factory
    from tools.verify.reproduce import reproduce_record

    # Progress goes to stderr so the CI log shows each seed's steps; the verdict goes to the summary.
    return [reproduce_record(folder, progress=progress_factory(sys.stderr)).check]


def real_stages() -> dict:
    return {RECORD: run_verify_record, TOKENIZER: run_tokenizer_audit, PROBES: run_probes,
            REPRODUCE: run_reproduction}


def _track_of(folder: Path):
    from tools.records.paths import tracks_path
    from tools.records.tracks import load_tracks

    return load_tracks(tracks_path()).get(folder.parent.name)


def stage_applies(name: str, folder: Path, flags: list[AuditFlag]) -> bool:
    """verify record: always. verify tokenizer: when flagged. verify probes: always — without an artifact or an
    entry point it reports `skip` (a human must review), which the summary must show. verify reproduce: when the
    track runs on the CI machine."""
    if name == TOKENIZER:
        return any(f.kind in ("tokenizer", "dataset", "byte_accounting") for f in flags)
    if name == REPRODUCE:
        track = _track_of(folder)
        return bool(track is not None and track.reproducible_in_ci)
    return True
