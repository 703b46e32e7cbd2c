"""The judge's verification evidence (`verification.json` in a record folder) and the one acceptance policy.

Evidence from the slower judges (tokenizer audit, probes, reproduction) is written by the judge alone
(`write_verification_evidence`) and counts only while the record's files are the ones it was written for
(`record_sha256`). `classify` is the single rule that decides what a judged record is (a record that may enter the
SOTA chain, a non-record, or rejected): the chain (tools.verify.sota), `submit record` and the leaderboard all use
it, so a record the board rejects for failed evidence never sets the bar for later records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.records.model import STATUSES, CheckResult, Report, Track

EVIDENCE_FILE = "verification.json"
EVIDENCE_SCHEMA = 1
MAX_EVIDENCE_BYTES = 1_000_000
STATIC_CHECKS_EXEMPT = ("significance",)  # judged separately: "statistics"
# Evidence check ids -> the stage they show as, in display order.
EVIDENCE_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tokenizer audit", ("val_documents", "tokenizer_roundtrip", "tokenizer_bytes")),
    ("probes", ("normalization", "causality", "rescore")),
    ("reproduced", ("reproduction",)),
)


# -- small file helpers ----------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and os.replace: readers see the old bytes or the new."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# -- verification evidence -------------------------------------------------------------------------------------


def record_sha256(folder: Path) -> str:
    """A digest of every file of the record except verification.json (paths and contents; symlinks by target)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    entries: list[tuple[str, Path]] = []
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        subdirectories.sort()
        for name in (*names, *(d for d in subdirectories if os.path.islink(os.path.join(directory, d)))):
            path = Path(directory, name)
            relative = path.relative_to(folder).as_posix()
            if relative != EVIDENCE_FILE:
                entries.append((relative, path))
    for relative, path in sorted(entries):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = b"symlink:" + os.readlink(path).encode("utf-8", "surrogateescape")
        elif stat.S_ISREG(info.st_mode):
            content = _file_sha256(path).encode()
        else:
            content = b"special"
        digest.update(relative.encode("utf-8", "surrogateescape") + b"\0" + content + b"\n")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tool_commit() -> str | None:
    """The judge's own git commit (so evidence says which tools produced it); None outside a git checkout."""
    try:
        import git

        from tools.records.paths import repo_root

        return git.Repo(repo_root(), search_parent_directories=True).head.commit.hexsha
    except Exception:
        return None


def write_verification_evidence(folder: str | Path, checks: Iterable[CheckResult], *, commit: str | None = None) -> Path:
    """Record the judge's results for a record in `<folder>/verification.json` (atomic; merged by check id).

    Called by the verify commands that run the record's code (tokenizer audit, probes, reproduction).
    Earlier evidence for other checks is kept only when it was written for the same files; a check id seen
    again is replaced. Schema: {"schema": 1, "checks": {id: {"status", "message"}}, "tool_commit", "record_sha256"}.
    """
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        raise NotADirectoryError(f"{folder}: not a record folder")
    digest = record_sha256(folder)
    previous = read_verification_evidence(folder)
    merged: dict[str, dict[str, str]] = {}
    if previous is not None and previous.get("record_sha256") == digest:
        merged.update(previous["checks"])
    for check in checks:
        if check.status not in STATUSES:
            raise ValueError(f"check {check.id}: unknown status {check.status!r}")
        merged[check.id] = {"status": check.status, "message": check.message}
    document = {
        "schema": EVIDENCE_SCHEMA,
        "checks": dict(sorted(merged.items())),
        "tool_commit": commit if commit is not None else tool_commit(),
        "record_sha256": digest,
    }
    path = folder / EVIDENCE_FILE
    write_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path


def read_verification_evidence(folder: str | Path) -> dict[str, Any] | None:
    """verification.json as written by write_verification_evidence; None when absent or not in that shape."""
    from tools.records.paths import read_regular_file

    path = Path(folder) / EVIDENCE_FILE
    try:
        data, truncated = read_regular_file(path, MAX_EVIDENCE_BYTES, follow_symlinks=False)
        document = json.loads(data)
    except (OSError, ValueError):
        return None
    if truncated or not isinstance(document, dict) or document.get("schema") != EVIDENCE_SCHEMA:
        return None
    checks = document.get("checks")
    if not isinstance(checks, dict):
        return None
    for value in checks.values():
        if not isinstance(value, dict) or value.get("status") not in STATUSES or not isinstance(value.get("message"), str):
            return None
    return document


def _first_failure(report: Report, ignore: Sequence[str] = ()) -> CheckResult | None:
    return next((c for c in report.checks if c.status == "fail" and c.id not in ignore), None)


def verification_summary(report: Report, folder: Path) -> tuple[str, list[str]]:
    """("static, statistics, probes, ...", failed evidence stages) for one judged record."""
    static_failed = _first_failure(report, STATIC_CHECKS_EXEMPT) is not None
    significance = report.get("significance")
    # Warnings (score_progression's traces of tuning on validation, a legacy schema, a dataset that needs an
    # audit) never keep a record out, but a maintainer reading the board should see them.
    warned = [c.id for c in report.checks if c.status == "warn" and c.id not in STATIC_CHECKS_EXEMPT]
    stages = ["static ✗" if static_failed else f"static (warn: {', '.join(warned)})" if warned else "static"]
    if significance is not None and significance.status == "fail":
        stages.append("statistics ✗")
    else:
        stages.append("statistics")
    failed: list[str] = []
    evidence = read_verification_evidence(folder)
    if (folder / EVIDENCE_FILE).exists() and evidence is None:
        stages.append("verification.json unreadable")
    elif evidence is not None and evidence.get("record_sha256") != record_sha256(folder):
        stages.append("verification.json stale (files changed since)")
    elif evidence is not None:
        checks: Mapping[str, Mapping[str, str]] = evidence["checks"]
        known = {check_id for _, ids in EVIDENCE_STAGES for check_id in ids}
        groups = [*EVIDENCE_STAGES, *((check_id, (check_id,)) for check_id in sorted(set(checks) - known))]
        for label, ids in groups:
            statuses = [checks[i]["status"] for i in ids if i in checks]
            if not statuses or all(s == "skip" for s in statuses):
                continue
            if "fail" in statuses:
                bad = [i for i in ids if i in checks and checks[i]["status"] == "fail"]
                stages.append(f"{label} ✗ ({', '.join(bad)})" if len(ids) > 1 else f"{label} ✗")
                failed.append(label)
            elif "warn" in statuses:
                stages.append(f"{label} (warn)")
            else:
                stages.append(label)
    return ", ".join(stages), failed


def classify(report: Report, track: Track | None, evidence_failures: Sequence[str] = ()) -> tuple[str, str]:
    """(verdict, one-line reason): "record" (enters the SOTA chain), "non-record" or "rejected".

    rejected: a check other than significance failed, or the judge's evidence shows a failure.
    non-record: everything passed but the t-test against SOTA (or the track is unranked).
    record: everything passed on a ranked track (the first record of a track has nothing to beat).
    """
    failure = _first_failure(report, STATIC_CHECKS_EXEMPT)
    if failure is not None:
        return "rejected", f"{failure.id}: {failure.message}"
    if evidence_failures:
        return "rejected", f"judge evidence: {', '.join(evidence_failures)} failed"
    if track is None:
        return "rejected", "unknown track"
    significance = report.get("significance")
    if not track.ranked:
        return "non-record", f"unranked track {track.id}"
    if significance is not None and significance.status == "fail":
        return "non-record", significance.message
    return "record", significance.message if significance is not None else "no significance test"
