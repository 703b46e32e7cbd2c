"""`claims_match_logs`: every number submission.json claims is what the logs print.

Floats are compared at the coarser of the two printed precisions (a claim may round its log, not change it: a
claim that differs from an 8-decimal log in the 4th decimal fails); integers (steps, bytes) and hashes exactly.
Seeds: the claimed seeds are exactly the seeds the logs ran, each claimed seed has its log, every log belongs to a
claimed seed. The headline mean equals the mean of the seeds' logged scores, the std their sample std (ddof=1).
"""

from __future__ import annotations

import math
import re

from tools.records.model import CheckResult, ParsedLog, SeedResult
from tools.verify.checks.common import (
    RecordContext,
    SeedLog,
    agree_at_precision,
    decimals,
    first_and_count,
    printed_token,
    result,
    sample_std,
)

CHECK_ID = "claims_match_logs"
_DEFAULT_LOG_DECIMALS = 8  # when the printed text of a score cannot be recovered
_SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)")


# Scores must be claimed to at least 4 decimals (the bar: a 4th-decimal difference fails); times to 0.1 s.
SCORE_MIN_PLACES = 4
TIME_MIN_PLACES = 1


def _score_decimals(log: ParsedLog, key: str) -> int:
    token = printed_token(log.score_line, key)
    return decimals(token) if token else _DEFAULT_LOG_DECIMALS


def _time_decimals_s(ms: float) -> int:
    return decimals(ms) + 3  # "175000ms" is printed to the millisecond: 3 decimals in seconds


def _compare_seed(claim: SeedResult, item: SeedLog) -> list[str]:
    """Mismatches between one seed's claim and its log, each naming both sides."""
    log, name = item.log, item.name
    where = f"submission.json: seed {claim.seed}"
    problems: list[str] = []
    if log.seed is not None and log.seed != claim.seed:
        problems.append(f"{where}: its log {name} ran seed {log.seed}")
    for key in ("val_bpb", "val_loss"):
        claimed, logged = getattr(claim, key), getattr(log, key)
        if claimed is None:
            continue
        if logged is None:
            problems.append(f"{where}: {key} {claimed} claimed but {name} has no score line")
        elif not agree_at_precision(claimed, logged, _score_decimals(log, key), SCORE_MIN_PLACES):
            problems.append(f"{where}: {key} {claimed!r} but {name} says {printed_token(log.score_line, key) or logged}")
    for key, log_key in (("train_time_s", "train_time_ms"), ("eval_time_s", "eval_time_ms")):
        claimed, logged_ms = getattr(claim, key), getattr(log, log_key)
        if claimed is None:
            continue
        if logged_ms is None:
            problems.append(f"{where}: {key} {claimed} claimed but {name} logs no {log_key[:-3]}")
        elif not agree_at_precision(claimed, logged_ms / 1000.0, _time_decimals_s(logged_ms), TIME_MIN_PLACES):
            problems.append(f"{where}: {key} {claimed!r} but {name} says {logged_ms:g} ms")
    for key, log_key in (("steps", "steps"), ("artifact_bytes", "model_bytes"), ("code_bytes", "code_bytes"),
                         ("bytes_total", "bytes_total"), ("code_sha256", "code_sha256")):  # fmt: skip
        claimed, logged = getattr(claim, key), getattr(log, log_key)
        if claimed is None:
            continue
        if logged is None:
            problems.append(f"{where}: {key} {claimed} claimed but {name} does not log it")
        elif claimed != logged:
            problems.append(f"{where}: {key} {claimed} but {name} says {logged}")
    return problems


def _match_logs(ctx: RecordContext) -> tuple[dict[int, SeedLog], list[str]]:
    """Each claimed seed's log: the one its result names, else the log that ran that seed."""
    submission = ctx.record.submission
    by_name = {item.name: item for item in ctx.logs}
    by_seed: dict[int, SeedLog] = {}
    for item in ctx.logs:
        if item.seed is not None:
            by_seed.setdefault(item.seed, item)
    if ctx.legacy:  # public logs print no seed line; their file names usually carry it (train_seed42.log)
        for item in ctx.logs:
            named_seed = _SEED_IN_NAME.search(item.name)
            if item.seed is None and named_seed:
                by_seed.setdefault(int(named_seed.group(1)), item)
    matched: dict[int, SeedLog] = {}
    problems: list[str] = []
    for seed in submission.seeds:
        claim = submission.seed_results.get(seed)
        named = claim.log if claim is not None else None
        if named is not None:
            if named in by_name:
                matched[seed] = by_name[named]
            elif named in ctx.record.log_errors:
                problems.append(f"submission.json: seed {seed}'s log {named} is unreadable (see files)")
            else:
                problems.append(f"submission.json: seed {seed}'s log {named} is not in the record")
        elif seed in by_seed:
            matched[seed] = by_seed[seed]
        else:
            problems.append(f"submission.json: seed {seed} has no log")
    return matched, problems


def _aggregate_problems(ctx: RecordContext, values: list[float], losses: list[float], precision: int) -> list[str]:
    """The headline numbers against the seeds' logged values."""
    submission = ctx.record.submission
    problems: list[str] = []
    if values and submission.val_bpb is not None:
        mean = math.fsum(values) / len(values)
        if not agree_at_precision(submission.val_bpb, mean, precision, SCORE_MIN_PLACES):
            problems.append(f"submission.json: val_bpb {submission.val_bpb!r} but the seeds' logged mean is {mean:.8f}")
    if losses and submission.val_loss is not None:
        mean_loss = math.fsum(losses) / len(losses)
        if not agree_at_precision(submission.val_loss, mean_loss, precision, SCORE_MIN_PLACES):
            problems.append(f"submission.json: val_loss {submission.val_loss!r} but the seeds' logged mean is {mean_loss:.8f}")
    if submission.val_bpb_std is not None:
        std = sample_std(values)
        if std is not None:
            if not agree_at_precision(submission.val_bpb_std, std, precision, SCORE_MIN_PLACES):
                problems.append(f"submission.json: val_bpb_std {submission.val_bpb_std!r} but the seeds' sample std is {std:.8f}")
        elif len(values) == 1 and submission.val_bpb_std != 0:
            problems.append(f"submission.json: val_bpb_std {submission.val_bpb_std!r} claimed for a single seed")
    return problems


def check_claims_match_logs(ctx: RecordContext) -> CheckResult:
    submission = ctx.record.submission
    if submission is None:
        return result(CHECK_ID, "skip", "no readable submission.json (see schema)")
    if not ctx.logs:
        return result(CHECK_ID, "skip", "no logs to compare the claims with (see files)")

    if not submission.seeds:
        # Public files: only headline numbers. Compare them with the logs' mean where the logs have scores.
        scored = [item for item in ctx.logs if item.log.val_bpb is not None]
        if not scored:
            return result(CHECK_ID, "skip", "legacy record: no scores in the logs to compare the headline with")
        precision = min(_score_decimals(item.log, "val_bpb") for item in scored)
        values = [item.log.val_bpb for item in scored]
        losses = [item.log.val_loss for item in scored if item.log.val_loss is not None]
        problems = _aggregate_problems(ctx, values, losses if len(losses) == len(values) else [], precision)
        if problems:
            return result(CHECK_ID, "fail", first_and_count(problems), problems=problems)
        return result(CHECK_ID, "pass", f"legacy record: headline val_bpb {submission.val_bpb} matches {len(values)} log(s)")

    problems: list[str] = []
    claimed = set(submission.seeds)
    for item in ctx.logs:
        if item.seed is None:
            if not ctx.legacy:  # a public log prints no seed line; it is matched by its file name instead
                problems.append(f"{item.name}: no seed line, cannot tell which claimed seed it belongs to")
        elif item.seed not in claimed:
            problems.append(f"{item.name}: ran seed {item.seed}, which submission.json does not claim")
    matched, matching_problems = _match_logs(ctx)
    problems += matching_problems
    for seed, item in matched.items():
        claim = submission.seed_results.get(seed)
        if claim is not None:
            problems += _compare_seed(claim, item)
        elif item.seed is not None and item.seed != seed:
            problems.append(f"submission.json: seed {seed}: its log {item.name} ran seed {item.seed}")

    scored = [item for item in matched.values() if item.log.val_bpb is not None]
    if scored and len(scored) == len(matched):
        precision = min(_score_decimals(item.log, "val_bpb") for item in scored)
        losses = [item.log.val_loss for item in scored]
        problems += _aggregate_problems(
            ctx, [item.log.val_bpb for item in scored], losses if None not in losses else [], precision
        )
    evidence = {"seeds": list(submission.seeds), "logs": {seed: item.name for seed, item in matched.items()}}
    if problems:
        return result(CHECK_ID, "fail", first_and_count(problems), problems=problems, **evidence)
    return result(
        CHECK_ID, "pass",
        f"submission.json: {len(matched)} seeds' claims and the headline mean/std match their logs", **evidence,
    )
