"""Budgets: `code_lines`, `artifact_bytes`, `train_time`, `eval_time`. Caps are exact: equal passes, one more fails.

Sizes come from every seed's log and, when the artifact file is shipped, from the file itself; times come from the
logs. A value a log does not have fails on a ranked track (the rule cannot be checked) and is a skip for a legacy
record (it predates the rule) or an unranked one.
"""

from __future__ import annotations

from tools.records.model import CheckResult
from tools.verify.checks.common import (
    SCRIPT_NAME,
    RecordContext,
    cap_seconds,
    first_and_count,
    fmt_seconds,
    result,
)


def count_lines(data: bytes) -> int:
    """Lines as an editor shows them: a last line without a newline still counts."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def check_code_lines(ctx: RecordContext) -> CheckResult:
    if ctx.track is None:
        return result("code_lines", "skip", "unknown track (see track): no line cap to check against")
    if ctx.script is None:
        return result("code_lines", "skip", f"no readable {SCRIPT_NAME} (see files)")
    lines, cap = count_lines(ctx.script), ctx.track.code_line_cap
    if lines > cap:
        return result("code_lines", "fail", f"{SCRIPT_NAME}: {lines} lines > cap {cap}", lines=lines, cap=cap)
    return result("code_lines", "pass", f"{SCRIPT_NAME}: {lines} lines <= cap {cap}", lines=lines, cap=cap)


def _missing_is_failure(ctx: RecordContext) -> bool:
    return not ctx.legacy and ctx.track is not None and ctx.track.ranked


# Files that document a record rather than feed its model; everything else a record ships (tokenizers, caches,
# tables, nested "artifacts") is available to its code at evaluation and counts toward the cap.
DOCUMENTATION_FILES = frozenset({"README.md", "submission.json", "requirements.txt", "curves.png", "verification.json"})


def shipped_extra_files(ctx: RecordContext) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file beyond the script, the logs, the per-seed artifacts and the docs."""
    accounted = {SCRIPT_NAME, *DOCUMENTATION_FILES, *ctx.record.logs, *getattr(ctx.record, "log_errors", {})}
    accounted |= {path.name for path in ctx.record.artifacts.values()}
    symlinks = set(getattr(ctx.record, "symlinks", ()))
    extra = []
    for relative in ctx.record.files:
        if relative in accounted or relative in symlinks:
            continue
        try:
            extra.append((relative, (ctx.record.path / relative).lstat().st_size))
        except OSError:
            continue  # unreadable files are the `files` check's business
    return extra


def check_artifact_bytes(ctx: RecordContext) -> CheckResult:
    if ctx.track is None:
        return result("artifact_bytes", "skip", "unknown track (see track): no artifact cap to check against")
    cap = ctx.track.artifact_cap_bytes
    script_bytes = len(ctx.script) if ctx.script is not None else None
    extra_files = shipped_extra_files(ctx)
    extra_bytes = sum(size for _, size in extra_files)
    extra_note = f" + {', '.join(name for name, _ in extra_files)}" if extra_files else ""
    problems: list[str] = []
    unknown: list[str] = []
    largest: tuple[int, str] | None = None

    def consider(total: int, where: str) -> None:
        nonlocal largest
        if total > cap:
            problems.append(f"{where}: {total:,} bytes > cap {cap:,} (over by {total - cap:,})")
        if largest is None or total > largest[0]:
            largest = (total, where)

    for item in ctx.logs:
        log = item.log
        total = log.bytes_total
        if total is None and log.model_bytes is not None and log.code_bytes is not None:
            total = log.model_bytes + log.code_bytes
        if total is None:
            unknown.append(item.name)
        else:
            consider(total + extra_bytes, f"{item.name} (logged total){extra_note}")
        if None not in (log.bytes_total, log.model_bytes, log.code_bytes) and log.model_bytes + log.code_bytes != log.bytes_total:
            problems.append(
                f"{item.name}: logged total {log.bytes_total:,} != model {log.model_bytes:,} + code {log.code_bytes:,}"
            )
        if log.code_bytes is not None and script_bytes is not None and log.code_bytes != script_bytes:
            problems.append(f"{item.name}: logged code size {log.code_bytes:,} bytes != {SCRIPT_NAME}'s {script_bytes:,} bytes")

    logged_model = {item.seed: (item.name, item.log.model_bytes) for item in ctx.logs if item.seed is not None}
    for seed, path in sorted(ctx.record.artifacts.items()):
        try:
            size = path.lstat().st_size
        except OSError as problem:
            problems.append(f"{path.name}: unreadable ({problem.strerror or problem})")
            continue
        consider(size + (script_bytes or 0) + extra_bytes, f"{path.name} + {SCRIPT_NAME}{extra_note}")
        log_name, model_bytes = logged_model.get(seed, (None, None))
        if model_bytes is not None and model_bytes != size:
            problems.append(f"{path.name}: {size:,} bytes but {log_name} logged {model_bytes:,}")

    if unknown and _missing_is_failure(ctx):
        problems.append(f"{unknown[0]}: no submission size logged (Total submission size / Serialized model + Code size)")
    evidence = {"cap": cap, "largest": largest[0] if largest else None, "unknown": unknown,
                "extra_files": dict(extra_files)}
    if problems:
        return result("artifact_bytes", "fail", first_and_count(problems), problems=problems, **evidence)
    if largest is None:
        return result("artifact_bytes", "skip", f"no size in any log and no artifact file ({', '.join(unknown) or 'no logs'})")
    note = f"; no size in {', '.join(unknown)}" if unknown else ""
    return result("artifact_bytes", "pass", f"largest {largest[0]:,} bytes ({largest[1]}) <= cap {cap:,}{note}", **evidence)


def _check_time(ctx: RecordContext, check_id: str, field: str, cap_s: float | None, label: str) -> CheckResult:
    if ctx.track is None:
        return result(check_id, "skip", "unknown track (see track): no time cap to check against")
    if cap_s is None:
        return result(check_id, "skip", f"track {ctx.track.id} has no {label} cap")
    if not ctx.logs:
        return result(check_id, "skip", "no logs to read times from (see files)")
    cap_ms = cap_s * 1000.0
    problems, unknown = [], []
    slowest: tuple[float, str] | None = None
    for item in ctx.logs:
        value = getattr(item.log, field)
        if value is None:
            unknown.append(item.name)
            continue
        if value > cap_ms:
            problems.append(f"{item.name}: {label} {fmt_seconds(value)} > cap {cap_seconds(cap_s)} (over by {fmt_seconds(value - cap_ms)})")
        if slowest is None or value > slowest[0]:
            slowest = (value, item.name)
    if unknown and _missing_is_failure(ctx):
        problems.append(f"{unknown[0]}: no {label} in the log (a ranked track needs it)")
    evidence = {"cap_s": cap_s, "max_ms": slowest[0] if slowest else None, "unknown": unknown}
    if problems:
        return result(check_id, "fail", first_and_count(problems), problems=problems, **evidence)
    if slowest is None:
        return result(check_id, "skip", f"no {label} in any log ({', '.join(unknown)})", **evidence)
    note = f"; not logged in {', '.join(unknown)}" if unknown else ""
    return result(
        check_id, "pass", f"max {label} {fmt_seconds(slowest[0])} ({slowest[1]}) <= cap {cap_seconds(cap_s)}{note}", **evidence
    )


def check_train_time(ctx: RecordContext) -> CheckResult:
    return _check_time(ctx, "train_time", "train_time_ms", ctx.track.train_time_cap_s if ctx.track else None, "train_time")


def check_eval_time(ctx: RecordContext) -> CheckResult:
    return _check_time(ctx, "eval_time", "eval_time_ms", ctx.track.eval_time_cap_s if ctx.track else None, "eval_time")
