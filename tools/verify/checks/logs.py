"""Evidence from the logs: `code_matches_logs` (each log ran the submitted script), `seeds_distinct`, `min_seeds`."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from tools.records.model import CheckResult
from tools.verify.checks.common import SCRIPT_NAME, RecordContext, first_and_count, result


def first_difference(ours: bytes, theirs: bytes) -> tuple[int, str, str]:
    """1-based number of the first differing line and both lines (shortened), '<end of file>' past the end."""
    a, b = ours.splitlines(keepends=True), theirs.splitlines(keepends=True)
    for number in range(1, max(len(a), len(b)) + 1):
        line_a = a[number - 1] if number <= len(a) else None
        line_b = b[number - 1] if number <= len(b) else None
        if line_a != line_b:
            return number, _show(line_a), _show(line_b)
    return max(len(a), len(b)), "", ""  # unreachable for different inputs


def _show(line: bytes | None, width: int = 80) -> str:
    if line is None:
        return "<end of file>"
    text = repr(line.decode("utf-8", errors="replace").rstrip("\n"))
    return text if len(text) <= width else text[: width - 3] + "..."


def check_code_matches_logs(ctx: RecordContext) -> CheckResult:
    script = ctx.script
    if script is None:
        return result("code_matches_logs", "skip", f"no readable {SCRIPT_NAME} (see files)")
    if not ctx.logs:
        return result("code_matches_logs", "skip", "no logs (see files)")
    script_sha = hashlib.sha256(script).hexdigest()
    problems, without_code = [], []
    for item in ctx.logs:
        log = item.log
        if log.code is None:
            without_code.append(item.name)
            continue
        embedded = log.code.encode("utf-8", errors="surrogateescape")
        if embedded != script:
            line, theirs, ours = first_difference(embedded, script)
            problems.append(f"{item.name}: embedded code differs from {SCRIPT_NAME} at line {line}: log {theirs} vs script {ours}")
        if log.code_sha256 is not None and log.code_sha256 != script_sha:
            problems.append(f"{item.name}: logged code_sha256 {log.code_sha256[:12]}... != {SCRIPT_NAME}'s {script_sha[:12]}...")
    if without_code and not ctx.legacy:
        problems.append(f"{without_code[0]}: no embedded code (no line of 100 '=' after the source)")
    evidence = {"script_sha256": script_sha, "without_code": without_code}
    if problems:
        return result("code_matches_logs", "fail", first_and_count(problems), problems=problems, **evidence)
    if len(without_code) == len(ctx.logs):
        return result("code_matches_logs", "skip", f"legacy logs embed no code: {', '.join(without_code)}", **evidence)
    note = f"; no code in {', '.join(without_code)}" if without_code else ""
    checked = len(ctx.logs) - len(without_code)
    return result(
        "code_matches_logs", "pass", f"{checked} log(s) embed {SCRIPT_NAME} byte for byte (sha256 {script_sha[:12]}...){note}",
        **evidence,
    )


# Settings that name the run or where its files live, not how it trains: they may differ between seeds.
PER_RUN_SETTINGS = frozenset({"SEED", "RUN_ID", "ARTIFACT_DIR", "DATA_PATH", "TOKENIZER_PATH", "MLFLOW_TRACKING_URI"})


def check_config_matches_logs(ctx: RecordContext) -> CheckResult:
    """Every seed ran the same configuration: the logs' `hyperparameters:` lines agree except for per-run
    settings (FAILURES.md F1: a third seed from another configuration runs the same script with other env vars)."""
    logged = [(item.name, dict(item.log.hyperparameters)) for item in ctx.logs if item.log.hyperparameters]
    if len(logged) < 2:
        return result("config_matches_logs", "skip", "fewer than two logs print a hyperparameters line")
    reference_name, reference = logged[0]
    problems = []
    for name, settings in logged[1:]:
        for key in sorted((set(reference) | set(settings)) - PER_RUN_SETTINGS):
            ours, theirs = reference.get(key, "<absent>"), settings.get(key, "<absent>")
            if ours != theirs:
                problems.append(f"{name}: {key}={theirs} but {reference_name} has {key}={ours}")
    if problems:
        return result("config_matches_logs", "fail", first_and_count(problems), problems=problems)
    return result("config_matches_logs", "pass",
                  f"{len(logged)} logs ran the same {len(reference) - len(PER_RUN_SETTINGS & set(reference))} settings")


def check_seeds_distinct(ctx: RecordContext) -> CheckResult:
    problems = []
    submission = ctx.record.submission
    if submission is not None:
        repeated = sorted({seed for seed in submission.seeds if submission.seeds.count(seed) > 1})
        if repeated:
            problems.append(f"submission.json: seed {repeated[0]} listed more than once")
    logs_by_seed: dict[int, list[str]] = defaultdict(list)
    for item in ctx.logs:
        if item.seed is not None:
            logs_by_seed[item.seed].append(item.name)
    for seed, names in sorted(logs_by_seed.items()):
        if len(names) > 1:
            problems.append(f"{', '.join(names[:-1])} and {names[-1]} {'both' if len(names) == 2 else 'all'} ran seed {seed}")
    if problems:
        return result("seeds_distinct", "fail", first_and_count(problems), problems=problems)
    if not logs_by_seed:
        return result("seeds_distinct", "skip", "no log has a seed line")
    return result("seeds_distinct", "pass", f"{len(logs_by_seed)} logs, each a different seed: {sorted(logs_by_seed)}")


def scored_seed_count(ctx: RecordContext) -> tuple[int, list[str]]:
    """Distinct seeds with a score in some log; a log without a seed line counts as one run of its own."""
    labels = []
    seen: set[int] = set()
    for item in ctx.logs:
        if item.log.val_bpb is None:
            continue
        if item.seed is None:
            labels.append(item.name)
        elif item.seed not in seen:
            seen.add(item.seed)
            labels.append(str(item.seed))
    return len(labels), labels


def check_min_seeds(ctx: RecordContext) -> CheckResult:
    if ctx.track is None:
        return result("min_seeds", "skip", "unknown track (see track): no minimum to check against")
    count, labels = scored_seed_count(ctx)
    needed = ctx.track.min_seeds
    shown = ", ".join(labels) or "none"
    if count < needed:
        return result("min_seeds", "fail", f"{count} scored seed(s) ({shown}) < track minimum {needed}", count=count)
    return result("min_seeds", "pass", f"{count} scored seeds ({shown}) >= track minimum {needed}", count=count)
