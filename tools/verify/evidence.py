"""The judge's verification evidence (`verification.json` in a record folder) and the one acceptance policy.

Evidence from the slower judges (tokenizer audit, probes, reproduction) is written by the judge alone
(`write_verification_evidence`), from the results it computed itself; nothing a record's code writes (it runs
on a private copy) is ever read back. A document binds the record's files (one sha256 each), the judge's commit
and whether its tools/ had uncommitted changes, and the isolation each check ran under. `evidence_problems` is
the one rule for accepting a document; `classify` is the single rule that decides what a judged record is (a
record that may enter the SOTA chain, a non-record, or rejected): the chain (tools.verify.checks.sota), `verify record`,
`submit record` and the leaderboard all use it, so a record the board rejects for failed or untrustworthy
evidence never sets the bar for later records.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.records.model import STATUSES, CheckResult, Report, Track
from tools.records.paths import file_sha256, read_regular_file, write_atomic  # noqa: F401  (write_atomic re-exported)
from tools.verify.sandbox import BUBBLEWRAP, UNISOLATED, unisolated_requested

EVIDENCE_FILE = "verification.json"
# 2: bound to per-file hashes, the judge's commit and tree state, and each check's isolation. 1 had only a
# digest: read as unbound, never accepted.
EVIDENCE_SCHEMA = 2
MAX_EVIDENCE_BYTES = 1_000_000
STATIC_CHECKS_EXEMPT = ("significance",)  # judged separately: "statistics"
# Evidence check ids -> the stage they show as, in display order.
EVIDENCE_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tokenizer audit", ("val_documents", "tokenizer_roundtrip", "tokenizer_bytes")),
    ("probes", ("normalization", "causality", "rescore")),
    ("reproduced", ("reproduction",)),
)


# -- small file helpers ----------------------------------------------------------------------------------------


# -- verification evidence -------------------------------------------------------------------------------------


def record_files(folder: Path) -> dict[str, str]:
    """Every file of the record but verification.json: relative path -> sha256 (a symlink: "symlink:<target>",
    anything else that is not a regular file: "special"), sorted. What the evidence is bound to."""
    folder = Path(folder)
    entries: list[tuple[str, Path]] = []
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        subdirectories.sort()
        for name in (*names, *(d for d in subdirectories if os.path.islink(os.path.join(directory, d)))):
            path = Path(directory, name)
            relative = path.relative_to(folder).as_posix()
            if relative != EVIDENCE_FILE:
                entries.append((relative, path))
    files: dict[str, str] = {}
    for relative, path in sorted(entries):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            files[relative] = "symlink:" + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            files[relative] = file_sha256(path)
        else:
            files[relative] = "special"
    return files


def files_digest(files: Mapping[str, str]) -> str:
    """One digest of a record_files map (the schema-1 `record_sha256`, unchanged, so old digests still compare)."""
    digest = hashlib.sha256()
    for relative, content in sorted(files.items()):
        digest.update(_encoded(relative) + b"\0" + _encoded(content) + b"\n")
    return digest.hexdigest()


def record_sha256(folder: Path) -> str:
    """A digest of every file of the record except verification.json (paths and contents; symlinks by target)."""
    return files_digest(record_files(folder))


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def judge_state() -> tuple[str | None, bool | None]:
    """(the judge's own git commit, whether tools/ has uncommitted changes) of the checkout these tools run from
    (not the records' repository: the evidence says which judge produced it); (None, None) outside a checkout."""
    try:
        import git

        repo = git.Repo(Path(__file__).resolve().parents[2], search_parent_directories=False)
        return repo.head.commit.hexsha, repo.is_dirty(untracked_files=True, path="tools")
    except Exception:
        return None, None


def tool_commit() -> str | None:
    """The judge's own git commit (so evidence says which tools produced it); None outside a git checkout."""
    return judge_state()[0]


def current_isolation() -> str:
    """The isolation run_sandboxed applies to record code right now: it reads the same switch (unisolated_mode),
    so evidence written from inside that switch says what its checks really ran under."""
    return UNISOLATED if unisolated_requested() else BUBBLEWRAP


def write_verification_evidence(
    folder: str | Path,
    checks: Iterable[CheckResult],
    *,
    isolation: str | None = None,
    commit: str | None = None,
    dirty: bool | None = None,
) -> Path:
    """Record the judge's results for a record in `<folder>/verification.json` (atomic; merged by check id).

    Called by the verify commands that run the record's code (tokenizer audit, probes, reproduction) with the
    isolation those checks ran under (default: current_isolation()); commit and dirty default to judge_state().
    Earlier checks are kept only from a document the board would accept, for the same files and the same judge
    commit; a check id seen again is replaced. Nothing is read from anywhere but this folder's own document.
    Schema 2: {"schema", "checks": {id: {"status", "message", "isolation"}}, "files": {path: sha256},
    "record_sha256", "tool_commit", "tool_dirty"}.
    """
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        raise NotADirectoryError(f"{folder}: not a record folder")
    isolation = isolation if isolation is not None else current_isolation()
    state_commit, state_dirty = judge_state()
    commit = commit if commit is not None else state_commit
    dirty = dirty if dirty is not None else state_dirty
    files = record_files(folder)
    merged: dict[str, dict[str, str]] = {}
    _, previous = evidence_document(folder)
    if not evidence_problems(folder, previous) and previous.get("tool_commit") == commit:
        merged.update(previous["checks"])
        dirty = bool(dirty) or bool(previous.get("tool_dirty"))
    for check in checks:
        if check.status not in STATUSES:
            raise ValueError(f"check {check.id}: unknown status {check.status!r}")
        merged[check.id] = {"status": check.status, "message": check.message, "isolation": isolation}
    document = {
        "schema": EVIDENCE_SCHEMA,
        "checks": dict(sorted(merged.items())),
        "files": files,
        "record_sha256": files_digest(files),
        "tool_commit": commit,
        "tool_dirty": dirty,
    }
    path = folder / EVIDENCE_FILE
    write_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path


def evidence_document(folder: str | Path) -> tuple[bool, Any]:
    """(whether `<folder>/verification.json` exists, its parsed JSON or None when unreadable). Never raises."""

    path = Path(folder) / EVIDENCE_FILE
    if not os.path.lexists(path):
        return False, None
    try:
        data, truncated = read_regular_file(path, MAX_EVIDENCE_BYTES, follow_symlinks=False)
        return True, None if truncated else json.loads(data)
    except (OSError, ValueError, RecursionError):  # RecursionError: hostile nesting ([[[[...]]]])
        return True, None


def _shape_problem(document: Any) -> str | None:
    """Why `document` is not a schema-2 evidence document, or None."""
    if not isinstance(document, dict):
        return f"{EVIDENCE_FILE} is unreadable (not a JSON object within {MAX_EVIDENCE_BYTES:,} bytes)"
    schema = document.get("schema")
    if schema == 1:
        return (f"{EVIDENCE_FILE} is unbound (schema 1: no per-file hashes, judge state or isolation); "
                "the judge must re-run `verify all --write-evidence`")
    if schema != EVIDENCE_SCHEMA:
        return f"{EVIDENCE_FILE} has an unknown schema {_short(schema)}"
    checks, files = document.get("checks"), document.get("files")
    if not isinstance(checks, dict) or not all(_is_check(value) for value in checks.values()):
        return f"{EVIDENCE_FILE} is malformed: every check needs a status, a message and an isolation"
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return f"{EVIDENCE_FILE} is malformed: no per-file hashes"
    if not isinstance(document.get("record_sha256"), str) or document.get("tool_dirty") not in (True, False, None):
        return f"{EVIDENCE_FILE} is malformed: record_sha256 or tool_dirty"
    return None


def _is_check(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("status") in STATUSES and isinstance(value.get("message"), str)
            and isinstance(value.get("isolation"), str))


def _short(value: Any) -> str:
    return repr(value)[:40]


def first_file_change(recorded: Mapping[str, str], current: Mapping[str, str]) -> str | None:
    """The first path (sorted) that differs between two record_files maps, said as what happened to it."""
    for path in sorted(set(recorded) | set(current)):
        shown = path if path.isprintable() else ascii(path)  # a name from a hostile document or folder
        if path not in current:
            return f"{shown} was removed"
        if path not in recorded:
            return f"{shown} was added"
        if recorded[path] != current[path]:
            return f"{shown} changed"
    return None


def evidence_problems(folder: str | Path, document: Any) -> list[str]:
    """The one acceptance of an evidence document: why the board must not trust it ([] = accepted).

    It must be the judge's current schema, name the judge's commit, be bound to exactly the record's files now
    (the first changed, added or removed file is named), and every check must have run in the sandbox. A document
    that passes is still only as trustworthy as the way it entered the repository: no pull request may add or
    change one (forged_evidence_paths), because anyone can compute these hashes.
    """
    shape = _shape_problem(document)
    if shape is not None:
        return [shape]
    problems = []
    commit = document.get("tool_commit")
    if not isinstance(commit, str) or not commit.strip():
        problems.append(f"{EVIDENCE_FILE} names no tool_commit (which judge wrote it is unknown)")
    if document["record_sha256"] != files_digest(document["files"]):
        problems.append(f"{EVIDENCE_FILE} is malformed: record_sha256 is not the digest of its file hashes")
    change = first_file_change(document["files"], record_files(Path(folder)))
    if change is not None:
        problems.append(f"{EVIDENCE_FILE} is stale: {change} since the judge's run")
    outside = sorted(check_id for check_id, c in document["checks"].items() if c["isolation"] != BUBBLEWRAP)
    if outside:
        ran = "/".join(sorted({document["checks"][check_id]["isolation"] for check_id in outside}))[:40]
        problems.append(f"{EVIDENCE_FILE}: {', '.join(outside)} ran {ran}, not in the {BUBBLEWRAP} sandbox "
                        "(never evidence)")
    return problems


def read_verification_evidence(folder: str | Path) -> dict[str, Any] | None:
    """verification.json when it is a well-formed schema-2 document (accepted or not); None otherwise."""
    _, document = evidence_document(folder)
    return document if _shape_problem(document) is None else None


def forged_evidence_paths(changed_paths: Iterable[str]) -> list[str]:
    """The paths among a pull request's changes (added, modified, deleted or renamed: pass old and new paths)
    that are, or lie inside, a verification.json: only the judge writes evidence, and a participant can compute
    every hash in it, so the gate must refuse them all. Sorted, unique; compared case-insensitively."""
    wanted = EVIDENCE_FILE.casefold()
    return sorted({p for p in changed_paths if any(part.casefold() == wanted for part in p.split("/"))})


def evidence_provenance(document: Mapping[str, Any]) -> str:
    """One line for people: which judge wrote the document and under what isolation."""
    commit = document.get("tool_commit")
    state = " with uncommitted changes in tools/" if document.get("tool_dirty") else ""
    levels = sorted({c.get("isolation", "?") for c in document.get("checks", {}).values() if isinstance(c, dict)})
    return (f"written by the judge at {str(commit)[:12] if commit else '(unknown commit)'}{state}; "
            f"checks ran under {', '.join(levels) or 'nothing'}")


def _first_failure(report: Report, ignore: Sequence[str] = ()) -> CheckResult | None:
    return next((c for c in report.checks if c.status == "fail" and c.id not in ignore), None)


def _static_stages(report: Report) -> list[str]:
    static_failed = _first_failure(report, STATIC_CHECKS_EXEMPT) is not None
    significance = report.get("significance")
    # Warnings (score_progression's traces of tuning on validation, a legacy schema, a dataset that needs an
    # audit) never keep a record out, but a maintainer reading the board should see them.
    warned = [c.id for c in report.checks if c.status == "warn" and c.id not in STATIC_CHECKS_EXEMPT]
    stages = ["static ✗" if static_failed else f"static (warn: {', '.join(warned)})" if warned else "static"]
    stages.append("statistics ✗" if significance is not None and significance.status == "fail" else "statistics")
    return stages


def _evidence_stages(checks: Mapping[str, Mapping[str, str]]) -> tuple[list[str], list[str]]:
    """(stage labels for the verified column, labels of the stages whose checks failed)."""
    stages: list[str] = []
    failed: list[str] = []
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
    return stages, failed


def verification_summary(report: Report, folder: Path) -> tuple[str, list[str]]:
    """("static, statistics, probes, ...", why the judge's evidence keeps the record out) for one judged record.

    No verification.json: nothing beyond static and statistics is claimed, nothing is held against the record.
    A document evidence_problems does not accept is held against it (reasons: its problems), as is an accepted
    one that shows a failure (reasons: "<stage> failed").
    """
    stages = _static_stages(report)
    present, document = evidence_document(folder)
    if not present:
        return ", ".join(stages), []
    problems = evidence_problems(folder, document)
    if problems:
        return ", ".join([*stages, f"{EVIDENCE_FILE} ✗"]), problems
    shown, failed = _evidence_stages(document["checks"])
    return ", ".join([*stages, *shown]), [f"{label} failed" for label in failed]


def evidence_report(report: Report, folder: Path) -> dict[str, Any] | None:
    """What `verify record` says about the judge's evidence; None when the folder has none.

    {"verified": the board's column, "accepted": whether evidence_problems accepts the document, "reasons": why
    the evidence keeps the record out (as classify words them), "provenance": who wrote it, or None}.
    """
    present, document = evidence_document(folder)
    if not present:
        return None
    verified, reasons = verification_summary(report, folder)
    accepted = not evidence_problems(folder, document)
    provenance = evidence_provenance(document) if _shape_problem(document) is None else None
    return {"verified": verified, "accepted": accepted, "reasons": reasons, "provenance": provenance}


def classify(report: Report, track: Track | None, evidence_failures: Sequence[str] = ()) -> tuple[str, str]:
    """(verdict, one-line reason): "record" (enters the SOTA chain), "non-record" or "rejected".

    rejected: a check other than significance failed, or the judge's evidence is not accepted or shows a failure
    (`evidence_failures`: the reasons verification_summary gives).
    non-record: everything passed but the t-test against SOTA (or the track is unranked).
    record: everything passed on a ranked track (the first record of a track has nothing to beat).
    """
    failure = _first_failure(report, STATIC_CHECKS_EXEMPT)
    if failure is not None:
        return "rejected", f"{failure.id}: {failure.message}"
    if evidence_failures:
        return "rejected", f"judge evidence: {'; '.join(evidence_failures)}"
    if track is None:
        return "rejected", "unknown track"
    significance = report.get("significance")
    if not track.ranked:
        return "non-record", f"unranked track {track.id}"
    if significance is not None and significance.status == "fail":
        return "non-record", significance.message
    return "record", significance.message if significance is not None else "no significance test"
