"""`files`: the record holds what it must, and nothing a judge should not touch (symlinks, huge or odd files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tools.records.model import CheckResult
from tools.records.rules import DEFAULT_ARTIFACT_CAP_BYTES, MAX_FILE_BYTES
from tools.verify.checks.common import RecordContext, first_and_count, result

ARTIFACT_PREFIX = "final_model_seed"
# Logs, code and README together stay far below the artifact cap; weights are capped per file by artifact_bytes.
NON_ARTIFACT_SLACK_BYTES = 4_000_000


def walk_without_following(folder: Path) -> tuple[list[tuple[str, os.stat_result]], list[str]]:
    """Every entry below `folder` with its lstat, never following a symlink; plus entries that could not be read."""
    entries: list[tuple[str, os.stat_result]] = []
    unreadable: list[str] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except OSError as problem:
            unreadable.append(f"{current.relative_to(folder)}: {problem.strerror or problem}")
            continue
        for entry in children:
            relative = str(Path(entry.path).relative_to(folder))
            info = entry.stat(follow_symlinks=False)
            entries.append((relative, info))
            if stat.S_ISDIR(info.st_mode):
                pending.append(Path(entry.path))
    return entries, unreadable


def check_files(ctx: RecordContext) -> CheckResult:
    folder = ctx.record.path
    entries, unreadable = walk_without_following(folder)
    problems: list[str] = [f"{name}: unreadable" for name in unreadable]
    regular: dict[str, int] = {}
    for relative, info in entries:
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(folder / relative)
            problems.append(f"{relative}: symlink (-> {target}); records may not contain symlinks")
        elif stat.S_ISREG(mode):
            regular[relative] = info.st_size
        elif not stat.S_ISDIR(mode):
            problems.append(f"{relative}: not a regular file")

    problems += [error if error.startswith(name) else f"{name}: {error}" for name, error in sorted(ctx.record.log_errors.items())]
    missing = [name for name in required_files(ctx) if name not in regular]
    if missing:
        problems.insert(0, f"missing {', '.join(missing)}")
    logs = [name for name in regular if name in ctx.record.logs or name in ctx.record.log_errors]
    if not logs:
        problems.append("no training log (train_seed<SEED>.log)")
    copies = ctx.duplicate_logs
    for relative, size in regular.items():
        if size > MAX_FILE_BYTES:
            problems.append(f"{relative}: {size:,} bytes > per-file cap {MAX_FILE_BYTES:,}")

    cap = ctx.track.artifact_cap_bytes if ctx.track else DEFAULT_ARTIFACT_CAP_BYTES
    non_artifact = sum(size for name, size in regular.items() if not Path(name).name.startswith(ARTIFACT_PREFIX))
    if non_artifact > cap + NON_ARTIFACT_SLACK_BYTES:
        problems.append(
            f"files other than model artifacts total {non_artifact:,} bytes > {cap + NON_ARTIFACT_SLACK_BYTES:,} "
            f"(artifact cap + {NON_ARTIFACT_SLACK_BYTES:,})"
        )

    evidence = {"files": len(regular), "logs": len(logs), "bytes": sum(regular.values()), "duplicate_logs": copies}
    if problems:
        return result("files", "fail", f"{folder.name}: {first_and_count(problems)}", problems=problems, **evidence)
    copied = "".join(f"; {copy} is a byte copy of {original} (counted once)" for copy, original in sorted(copies.items()))
    return result(
        "files", "pass",
        f"{folder.name}: {len(regular)} files, {len(logs)} logs, {sum(regular.values()):,} bytes{copied}", **evidence,
    )


def required_files(ctx: RecordContext) -> list[str]:
    """README.md, submission.json (a public record may name it submission_<x>.json) and the training script (the
    track's `entry_scripts`: train_gpt.py on our tracks)."""
    submission = ctx.record.submission_file if ctx.legacy else "submission.json"
    script = ctx.script_name or " or ".join(ctx.entry_patterns)
    return ["README.md", submission, script]
