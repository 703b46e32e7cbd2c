"""Budgets: `code_lines`, `artifact_bytes`, `train_time`, `eval_time`. Caps are exact: equal passes, one more fails.

Sizes come from every seed's log and, when the artifact file is shipped, from the file itself; times come from the
logs. A value a log does not have fails on a ranked track (the rule cannot be checked) and is a skip for a legacy
record (it predates the rule) or an unranked one.
"""

from __future__ import annotations

from tools.records.model import CheckResult, ParsedLog
from tools.records.rules import artifact_cap_problem, counted_files, submission_bytes, time_cap_verdict
from tools.verify.checks.code_bytes import compressed_size, counted_code_files
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
    if ctx.track.code_line_cap is None:
        return result("code_lines", "skip", f"ruleset {ctx.track.ruleset}: no line cap on a record's code "
                                            f"(it binds the repository's baseline script only)")
    if ctx.script is None:
        return result("code_lines", "skip", f"no readable {' or '.join(ctx.entry_patterns)} (see files)")
    name = ctx.script_name
    lines, cap = count_lines(ctx.script), ctx.track.code_line_cap
    if lines > cap:
        return result("code_lines", "fail", f"{name}: {lines} lines > cap {cap}", lines=lines, cap=cap)
    return result("code_lines", "pass", f"{name}: {lines} lines <= cap {cap}", lines=lines, cap=cap)


def _missing_is_failure(ctx: RecordContext) -> bool:
    return not ctx.legacy and ctx.track is not None and ctx.track.ranked


def shipped_extra_files(ctx: RecordContext) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file beyond the script (the track's entry script: train_gpt.py, or the run
    service's train.py), the logs, the per-seed artifacts and the docs (tools.records.rules.counted_files decides
    which)."""
    names = counted_files(ctx.record.files, script=ctx.script_name or SCRIPT_NAME,
                          logs=[*ctx.record.logs, *getattr(ctx.record, "log_errors", {})],
                          artifacts=[path.name for path in ctx.record.artifacts.values()],
                          symlinks=getattr(ctx.record, "symlinks", ()))
    extra = []
    for relative in names:
        try:
            extra.append((relative, (ctx.record.path / relative).lstat().st_size))
        except OSError:
            continue  # unreadable files are the `files` check's business
    return extra


def check_artifact_bytes(ctx: RecordContext) -> CheckResult:
    if ctx.track is None:
        return result("artifact_bytes", "skip", "unknown track (see track): no artifact cap to check against")
    if ctx.track.artifact_counts == "code_and_model":
        return check_code_and_model_bytes(ctx)
    cap = ctx.track.artifact_cap_bytes
    script_bytes = len(ctx.script) if ctx.script is not None else None
    script_name = ctx.script_name or SCRIPT_NAME
    extra_files = shipped_extra_files(ctx)
    extra_bytes = sum(size for _, size in extra_files)
    extra_note = f" + {', '.join(name for name, _ in extra_files)}" if extra_files else ""
    problems: list[str] = []
    unknown: list[str] = []
    largest: tuple[int, str] | None = None

    def consider(total: int, where: str) -> None:
        nonlocal largest
        if (problem := artifact_cap_problem(total, cap, where)) is not None:
            problems.append(problem)
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
            problems.append(f"{item.name}: logged code size {log.code_bytes:,} bytes != {script_name}'s {script_bytes:,} bytes")

    logged_model = {item.seed: (item.name, item.log.model_bytes) for item in ctx.logs if item.seed is not None}
    for seed, path in sorted(ctx.record.artifacts.items()):
        try:
            size = path.lstat().st_size
        except OSError as problem:
            problems.append(f"{path.name}: unreadable ({problem.strerror or problem})")
            continue
        consider(submission_bytes(size, script_bytes or 0, extra_bytes), f"{path.name} + {script_name}{extra_note}")
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


def _check_time(
    ctx: RecordContext, check_id: str, field: str, cap_s: float | None, label: str, grace_s: float = 0.0
) -> CheckResult:
    """Every log's time against the cap. `grace_s` (a ruleset's `train_time_grace_s`): a run that checks the clock
    between steps stops on the first step past the cap, so an overshoot up to the grace is warned with its size,
    never hidden and never a failure; beyond it fails."""
    if ctx.track is None:
        return result(check_id, "skip", "unknown track (see track): no time cap to check against")
    if cap_s is None:
        return result(check_id, "skip", f"track {ctx.track.id} has no {label} cap")
    if not ctx.logs:
        return result(check_id, "skip", "no logs to read times from (see files)")
    cap_ms = cap_s * 1000.0
    problems, unknown, overshoots = [], [], []
    slowest: tuple[float, str] | None = None
    for item in ctx.logs:
        value = getattr(item.log, field)
        if value is None:
            unknown.append(item.name)
            continue
        verdict = time_cap_verdict(value, cap_s, grace_s)
        if verdict == "warn":
            overshoots.append(f"{item.name}: {label} {fmt_seconds(value)} is {fmt_seconds(value - cap_ms)} past the cap "
                              f"{cap_seconds(cap_s)}, within the {grace_s:g} s grace track {ctx.track.id} allows "
                              f"past it (train_time_grace_s)")
        elif verdict == "fail":
            grace = f"; grace {grace_s:g} s" if grace_s else ""
            problems.append(f"{item.name}: {label} {fmt_seconds(value)} > cap {cap_seconds(cap_s)} (over by {fmt_seconds(value - cap_ms)}{grace})")
        if slowest is None or value > slowest[0]:
            slowest = (value, item.name)
    if unknown and _missing_is_failure(ctx):
        problems.append(f"{unknown[0]}: no {label} in the log (a ranked track needs it)")
    evidence = {"cap_s": cap_s, "max_ms": slowest[0] if slowest else None, "unknown": unknown, "grace_s": grace_s,
                "overshoots": overshoots}
    if problems:
        return result(check_id, "fail", first_and_count(problems), problems=problems, **evidence)
    if overshoots:
        return result(check_id, "warn", first_and_count(overshoots), problems=overshoots, **evidence)
    if slowest is None:
        return result(check_id, "skip", f"no {label} in any log ({', '.join(unknown)})", **evidence)
    note = f"; not logged in {', '.join(unknown)}" if unknown else ""
    return result(
        check_id, "pass", f"max {label} {fmt_seconds(slowest[0])} ({slowest[1]}) <= cap {cap_seconds(cap_s)}{note}", **evidence
    )


def check_train_time(ctx: RecordContext) -> CheckResult:
    track = ctx.track
    return _check_time(ctx, "train_time", "train_time_ms", track.train_time_cap_s if track else None, "train_time",
                       grace_s=track.train_time_grace_s if track else 0.0)


def check_eval_time(ctx: RecordContext) -> CheckResult:
    return _check_time(ctx, "eval_time", "eval_time_ms", ctx.track.eval_time_cap_s if ctx.track else None, "eval_time")


def _model_bytes(log: ParsedLog) -> int | None:
    """The compressed model's bytes as the log states them (directly, or its total less its code)."""
    if log.model_bytes is not None:
        return log.model_bytes
    code = log.code_bytes_compressed if log.code_bytes_compressed is not None else log.code_bytes
    if log.bytes_total is not None and code is not None:
        return log.bytes_total - code
    return None


def check_code_and_model_bytes(ctx: RecordContext) -> CheckResult:
    """The public rule: compressed model bytes (each seed's log, or the shipped artifact file) plus the bytes of the
    record's code (tools.verify.checks.code_bytes), counted raw or, where the ruleset allows, in the compressed
    self-extracting form the judge computes itself; a log's own compressed figure is used last, and said."""
    cap = ctx.track.artifact_cap_bytes
    if ctx.script_name is None or ctx.script is None:
        return _logged_totals_only(ctx, cap)
    regular = [name for name in ctx.record.files if name not in ctx.record.symlinks]
    code_files = counted_code_files(ctx.script_name, regular, ctx.read_file)
    sources = {name: ctx.read_file(name) or b"" for name in code_files}
    raw_code = sum(len(data) for data in sources.values())
    judge_compressed = sum(min(len(data), compressed_size(data)) for data in sources.values())
    # Code counts compressed only for a record that submitted it so (its logs state a compressed size), as the
    # competition accepted; a record that logged its raw code is held to its raw code.
    compressed_allowed = ctx.track.compressed_code and any(
        item.log.code_bytes_compressed is not None for item in ctx.counted_logs)
    code_note = " + ".join(code_files)
    models: list[tuple[str, int, ParsedLog | None]] = [
        (item.name, bytes_, item.log) for item in ctx.logs if (bytes_ := _model_bytes(item.log)) is not None
    ]
    for _seed, path in sorted(ctx.record.artifacts.items()):
        try:
            models.append((path.name, path.lstat().st_size, None))
        except OSError:
            continue
    unknown = [item.name for item in ctx.logs if _model_bytes(item.log) is None]
    evidence = {"cap": cap, "code_files": code_files, "code_bytes": raw_code, "code_bytes_compressed": judge_compressed,
                "unknown": unknown}
    if not models:
        return result("artifact_bytes", "skip", f"no model size in any log and no artifact file "
                                                f"({', '.join(unknown) or 'no logs'})", **evidence)
    problems, warnings = [], []
    largest = 0
    counted = {item.name for item in ctx.counted_logs}
    for where, model, log in models:
        if log is not None and where not in counted:
            continue  # a supplementary log (an ablation, another configuration) is not the submission
        if model + raw_code <= cap:
            largest = max(largest, model + raw_code)
            continue
        if compressed_allowed and model + judge_compressed <= cap:
            largest = max(largest, model + judge_compressed)
            continue
        logged = log.code_bytes_compressed if log is not None else None
        with_logged = model + logged + raw_code - len(ctx.script) if logged is not None else None
        if compressed_allowed and with_logged is not None and with_logged <= cap:
            warnings.append(f"{where}: {with_logged:,} bytes <= cap only with the log's own compressed code size "
                            f"{logged:,} (the judge's lzma form of {code_note} is {judge_compressed:,} bytes; "
                            f"raw {raw_code:,})")
            largest = max(largest, with_logged)
            continue
        best = model + (judge_compressed if compressed_allowed else raw_code)
        how = "compressed by the judge" if compressed_allowed else "raw, as its logs count it"
        problems.append(f"{where}: model {model:,} + code {best - model:,} ({code_note}, {how}) = {best:,} bytes "
                        f"> cap {cap:,} (over by {best - cap:,})")
    if problems:
        return result("artifact_bytes", "fail", first_and_count(problems), problems=problems, **evidence)
    how = f"code {code_note}: {raw_code:,} bytes raw, {judge_compressed:,} compressed"
    if warnings:
        return result("artifact_bytes", "warn", first_and_count(warnings), problems=warnings, **evidence)
    return result("artifact_bytes", "pass", f"largest {largest:,} bytes <= cap {cap:,} ({len(models)} model size(s); "
                                            f"{how})", **evidence)


def _logged_totals_only(ctx: RecordContext, cap: int) -> CheckResult:
    """No training script to count: the logs' own totals are the only evidence, and one over the cap fails."""
    totals = [(item.name, item.log.bytes_total) for item in ctx.counted_logs if item.log.bytes_total is not None]
    over = [f"{name}: logged total {total:,} bytes > cap {cap:,} (over by {total - cap:,})"
            for name, total in totals if total > cap]
    if over:
        return result("artifact_bytes", "fail", first_and_count(over), problems=over, cap=cap)
    return result("artifact_bytes", "skip", f"no readable training script ({' or '.join(ctx.entry_patterns)}): the "
                                            f"code cannot be counted (see files)", cap=cap)
